// The generated CRDs against a real kube-apiserver: OpenAPI + CEL must
// reject every invalid sample with a message naming the field, accept the
// valid ones with the same defaults zod fills in, and enforce immutability.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { waitFor } from '../../hack/local/process.js';
import { KubeApiError, KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { kinds, type KindName } from '../../src/crds/index.js';
import { buildCrds } from '../../scripts/generate-crds.js';

const samplesDir = path.resolve(import.meta.dirname, '../../config/samples');
const invalidDir = path.join(samplesDir, 'invalid');
const NS = 'crd-validation';
const API = 'familyhub.dev/v1alpha1';

let cp: ControlPlane;
let kube: KubeClient;

function sample(file: string): { obj: KubeObject & { kind: KindName }; expectError?: string } {
  const text = readFileSync(file, 'utf8');
  const obj = parse(text) as KubeObject & { kind: KindName };
  obj.metadata.namespace = NS;
  return { obj, expectError: /^# expect-error: (.+)$/m.exec(text)?.[1]?.trim() };
}

/** The apiserver's rejection of `fn`, which must fail with 422 Invalid. */
async function rejection(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).statusCode).toBe(422);
    return (err as KubeApiError).message;
  }
  throw new Error('the apiserver accepted an object it should have rejected');
}

beforeAll(async () => {
  cp = await startControlPlane({ audit: false });
  kube = new KubeClient(cp.kubeConfig);
  await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  for (const crd of buildCrds()) await kube.create(crd as unknown as KubeObject);
  for (const crd of buildCrds()) {
    await waitFor(`CRD ${crd.metadata.name} Established`, async () => {
      const c = await kube.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, crd.metadata.name);
      return !!c?.status?.conditions?.some((x: { type: string; status: string }) => x.type === 'Established' && x.status === 'True');
    }, { timeoutMs: 30_000 });
  }
  // Established can precede discovery of the new group by the REST handler.
  await waitFor('familyhub.dev served', async () => {
    try {
      await kube.list(API, 'DatabaseClaim', NS);
      return true;
    } catch {
      return false;
    }
  }, { timeoutMs: 30_000 });
});

afterAll(async () => {
  await cp?.stop();
});

describe('CRDs on a real kube-apiserver', () => {
  it('are accepted as structural with names, short names and printer columns', async () => {
    for (const k of Object.values(kinds)) {
      const crd = await kube.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, `${k.plural}.${k.group}`);
      expect(crd?.status?.acceptedNames).toMatchObject({ kind: k.kind, plural: k.plural, shortNames: k.shortNames, categories: ['familyhub-all'] });
      expect(crd?.status?.conditions?.find((c: { type: string }) => c.type === 'NonStructuralSchema')).toBeUndefined();
    }
  });

  const invalid = readdirSync(invalidDir).filter((f) => f.endsWith('.yaml')).sort();
  it.each(invalid)('rejects invalid/%s naming the field', async (f) => {
    const { obj, expectError } = sample(path.join(invalidDir, f));
    expect(expectError).toBeTruthy();
    const message = await rejection(() => kube.create(obj));
    expect(message).toContain(expectError);
    // A CEL rule that errors (instead of returning false) means a missing guard.
    expect(message).not.toMatch(/type conversion error|no such key|no such overload/);
  });

  const valid = readdirSync(samplesDir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
  it.each(valid)('accepts %s and fills the same defaults as zod', async (f) => {
    const { obj } = sample(path.join(samplesDir, f));
    const created = await kube.create(obj);
    const zodDefaulted = kinds[obj.kind].specSchema.parse(obj.spec);
    expect(created.spec).toEqual(zodDefaulted);
    // Defaults the other controllers rely on, spelled out so a silent change shows up here.
    const expectations: Record<KindName, Record<string, unknown>> = {
      FamilyHub: { postgres: expect.objectContaining({ port: 5432, sslMode: 'require' }), identity: expect.objectContaining({ defaultScopes: ['openid', 'email', 'profile'] }) },
      DatabaseClaim: { credentials: { mode: 'VaultDynamic', defaultTtl: '1h', maxTtl: '24h', rotationGracePeriod: '5m', rotateGeneration: 0 }, deletionPolicy: 'Retain' },
      OIDCClient: { clientType: 'confidential', pkce: true, grantTypes: ['authorization_code', 'refresh_token'], deletionPolicy: 'Delete', adoptExisting: false, rotation: { generation: 0 } },
      Route: { pathPrefix: '/', auth: expect.objectContaining({ required: true }) },
      // No replicas default: left out, the field belongs to an HPA.
      Service: { suspend: false, automountServiceAccountToken: false, probes: { readiness: expect.objectContaining({ periodSeconds: 5 }), liveness: expect.objectContaining({ periodSeconds: 10 }) }, needs: expect.objectContaining({ route: expect.objectContaining({ auth: { required: true } }) }) },
    };
    expect(created.spec).toMatchObject(expectations[obj.kind]);
    expect(created.spec).not.toBe(obj.spec);
  });

  it('lets the status subresource carry conditions and rejects bad condition status', async () => {
    const name = 'status-check';
    await kube.create({ apiVersion: API, kind: 'Route', metadata: { name, namespace: NS }, spec: { familyHubRef: { name: 'home' }, hostname: 'x.example.org', backendRef: { name: 'x', port: 80 } } });
    const cond = { type: 'Ready', status: 'True', reason: 'Published', message: 'ok', observedGeneration: 1, lastTransitionTime: '2025-01-01T00:00:00Z' };
    const patched = await kube.mergePatch(API, 'Route', NS, name, { status: { conditions: [cond], hostname: 'x.example.org', observedGeneration: 1 } }, 'status');
    expect(patched.status.conditions).toEqual([cond]);
    const msg = await rejection(() => kube.mergePatch(API, 'Route', NS, name, { status: { conditions: [{ ...cond, status: 'Yes' }] } }, 'status'));
    expect(msg).toContain('status.conditions[0].status');
  });

  it('publishes descriptions in the OpenAPI document kubectl explain reads', async () => {
    const doc = await kube.request<{ components: { schemas: Record<string, { properties?: Record<string, any> }> } }>('GET', '/openapi/v3/apis/familyhub.dev/v1alpha1');
    const claim = doc.components.schemas['dev.familyhub.v1alpha1.DatabaseClaim'];
    const maxTtl = claim?.properties?.spec?.properties?.credentials?.properties?.maxTtl;
    expect(maxTtl?.description).toMatch(/must be >= defaultTtl/);
    expect(maxTtl?.default).toBe('24h');
  });

  it('serves spec.familyHubRef.name as a field selector', async () => {
    const list = await kube.list(API, 'DatabaseClaim', NS, { fieldSelector: 'spec.familyHubRef.name=home' });
    expect(list.items.map((i) => i.metadata.name)).toContain('photos');
    const none = await kube.list(API, 'DatabaseClaim', NS, { fieldSelector: 'spec.familyHubRef.name=elsewhere' });
    expect(none.items).toEqual([]);
  });
});

describe('immutability', () => {
  it('refuses to add, change or remove DatabaseClaim schemaName, but allows other edits', async () => {
    const name = 'immutable-schema';
    await kube.create({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name, namespace: NS }, spec: { familyHubRef: { name: 'home' }, schemaName: 'first' } });
    expect(await rejection(() => kube.mergePatch(API, 'DatabaseClaim', NS, name, { spec: { schemaName: 'second' } }))).toContain('schemaName is immutable');
    expect(await rejection(() => kube.mergePatch(API, 'DatabaseClaim', NS, name, { spec: { schemaName: null } }))).toContain('schemaName is immutable');
    expect(await rejection(() => kube.mergePatch(API, 'DatabaseClaim', NS, name, { spec: { familyHubRef: { name: 'other' } } }))).toContain('familyHubRef is immutable');
    const edited = await kube.mergePatch(API, 'DatabaseClaim', NS, name, { spec: { extensions: ['pgcrypto'], credentials: { rotateGeneration: 1 } } });
    expect(edited.spec.extensions).toEqual(['pgcrypto']);
    expect(edited.spec.schemaName).toBe('first');

    const unset = 'derived-schema';
    await kube.create({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name: unset, namespace: NS }, spec: { familyHubRef: { name: 'home' } } });
    expect(await rejection(() => kube.mergePatch(API, 'DatabaseClaim', NS, unset, { spec: { schemaName: 'late' } }))).toContain('schemaName is immutable');
  });

  it('refuses to change OIDCClient clientId', async () => {
    const name = 'immutable-client';
    await kube.create({ apiVersion: API, kind: 'OIDCClient', metadata: { name, namespace: NS }, spec: { familyHubRef: { name: 'home' }, clientId: 'photos-web', redirectUris: ['https://p.example.org/cb'] } });
    expect(await rejection(() => kube.mergePatch(API, 'OIDCClient', NS, name, { spec: { clientId: 'photos-web-2' } }))).toContain('clientId is immutable');
    const rotated = await kube.mergePatch(API, 'OIDCClient', NS, name, { spec: { rotation: { generation: 1 } } });
    expect(rotated.spec.rotation.generation).toBe(1);
  });

  it('checks CEL cross-field rules on update too', async () => {
    const name = 'ttl-update';
    await kube.create({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name, namespace: NS }, spec: { familyHubRef: { name: 'home' }, credentials: { defaultTtl: '30m', maxTtl: '1h' } } });
    expect(await rejection(() => kube.mergePatch(API, 'DatabaseClaim', NS, name, { spec: { credentials: { defaultTtl: '90m' } } }))).toContain('credentials.maxTtl');
    const ok = await kube.mergePatch(API, 'DatabaseClaim', NS, name, { spec: { credentials: { defaultTtl: '1h' } } });
    expect(ok.spec.credentials.defaultTtl).toBe('1h');
  });
});
