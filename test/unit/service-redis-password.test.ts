// The hub's Redis password reaches a Deployment only when the Service is the
// hub's own runtime Service of a Redis user (chat, audit, media, gaming):
// proven by the controller ownerReference to that hub's uid, the name the hub
// gives it and its runtime-service label — a developer's Service that copies
// the label, the name or the ownerReference gets nothing. The Secret is
// mounted read-only (one key) under the operator's reserved prefix, gates the
// Deployment until it exists, and its key's digest is part of the
// credentials hash.
import { describe, expect, it } from 'vitest';
import { REDIS_MOUNT, deploymentOf } from '../../src/controllers/service/desired.js';
import { observe, type ServiceObject } from '../../src/controllers/service/reconciler.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { RESERVED_MOUNT_PREFIX, familyHubSpecSchema, serviceSpecSchema } from '../../src/crds/index.js';
import { hubRuntimeService, type RuntimeServiceName } from '../../src/platform/runtime.js';
import type { Hub } from '../../src/platform/hub.js';
import { cacheContext } from '../support/cache.js';

const NS = 'platform';
const HUB_UID = 'hub-uid-1';

const hubObject = (redis: Record<string, unknown> = { host: 'redis', passwordSecretRef: { name: 'redis-auth' } }): KubeObject => ({
  apiVersion: 'familyhub.dev/v1alpha1', kind: 'FamilyHub', metadata: { name: 'home', namespace: NS, uid: HUB_UID },
  spec: {
    domain: 'family.test', allowedEmailDomains: ['family.test'],
    postgres: { host: 'pg', database: 'fh', adminCredentialsSecretRef: { name: 'pg' } },
    redis,
    identity: { kind: 'oidc-dcr', issuerUrl: 'https://id.family.test' },
    runtime: { image: 'rt:1', services: { chat: { enabled: true }, audit: { enabled: true }, auth: { enabled: true } } },
  },
});
const typed = (raw: KubeObject): Hub => ({ ...raw, spec: familyHubSpecSchema.parse(raw.spec) }) as Hub;

const hubRef = (uid = HUB_UID) => ({ apiVersion: 'familyhub.dev/v1alpha1', kind: 'FamilyHub', name: 'home', uid, controller: true, blockOwnerDeletion: true });

/** A Service as the hub writes it (runtimeServiceOf), or with one of its proofs changed. */
const service = (o: { name?: string; label?: string; owner?: ReturnType<typeof hubRef> | null; namespace?: string } = {}): ServiceObject => ({
  apiVersion: 'familyhub.dev/v1alpha1', kind: 'Service',
  metadata: {
    name: o.name ?? 'home-chat', namespace: o.namespace ?? NS, uid: 'svc-uid',
    labels: { 'familyhub.dev/familyhub': 'home', ...(o.label !== '' ? { 'familyhub.dev/runtime-service': o.label ?? 'chat' } : {}) },
    ...(o.owner === null ? {} : { ownerReferences: [o.owner ?? hubRef()] }),
  },
  spec: serviceSpecSchema.parse({ familyHubRef: { name: 'home' }, image: 'rt:1', port: 8080, host: 'chat.family.test' }),
} as ServiceObject);

const secret = (data: Record<string, string>): KubeObject => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'redis-auth', namespace: NS }, data });


const redisVolume = (d: KubeObject) => (d.spec.template.spec.volumes as Array<{ name: string; secret?: unknown }>).find((v) => v.name === 'redis-credentials');
const envNames = (d: KubeObject) => (d.spec.template.spec.containers[0].env as Array<{ name: string }>).map((e) => e.name);

describe('the hub\'s Redis password in its runtime Services', () => {
  it('is mounted (that key only, read-only, under the reserved prefix) with REDIS_PASSWORD_FILE for the hub\'s own chat Service', async () => {
    const hub = hubObject();
    const o = await observe(service(), cacheContext([hub, secret({ password: 'sha256:1', other: 'sha256:x' })]));
    expect(o.facts.redis).toEqual({ secretName: 'redis-auth', key: 'password' });
    expect(o.missingSecrets).toEqual([]);
    const d = deploymentOf(o.input, o.hub, o.facts);
    expect(redisVolume(d)).toEqual({ name: 'redis-credentials', secret: { secretName: 'redis-auth', items: [{ key: 'password', path: 'password' }] } });
    expect(d.spec.template.spec.containers[0].volumeMounts).toContainEqual({ name: 'redis-credentials', mountPath: REDIS_MOUNT, readOnly: true });
    expect(REDIS_MOUNT.startsWith(`${RESERVED_MOUNT_PREFIX}/`)).toBe(true);
    expect(d.spec.template.spec.containers[0].env).toContainEqual({ name: 'REDIS_PASSWORD_FILE', value: `${REDIS_MOUNT}/password` });
    // A key other than the default is mounted under the same file name.
    const custom = await observe(service(), cacheContext([hubObject({ host: 'redis', passwordSecretRef: { name: 'redis-auth', key: 'requirepass' } }), secret({ requirepass: 'sha256:1' })]));
    expect(redisVolume(deploymentOf(custom.input, custom.hub, custom.facts))).toMatchObject({ secret: { items: [{ key: 'requirepass', path: 'password' }] } });
  });

  it('is not mounted for a developer\'s Service carrying the same label, nor one copying the name or the ownerReference, nor for auth', async () => {
    const objects = [hubObject(), secret({ password: 'sha256:1' })];
    const cases: Array<[string, ServiceObject]> = [
      ['label only', service({ name: 'recipes', owner: null })],
      ['label and ownerReference, another name', service({ name: 'recipes', label: 'chat' })],
      ['name and label, no ownerReference', service({ owner: null })],
      ['ownerReference to a former hub of that name', service({ owner: hubRef('old-uid') })],
      ['another label under the hub\'s name', service({ label: 'audit' })],
      ['no runtime-service label', service({ label: '' })],
      ['auth needs no Redis', service({ name: 'home-auth', label: 'auth' })],
      ['a runtime service the hub does not run', service({ name: 'home-gaming', label: 'gaming' })],
    ];
    for (const [what, svc] of cases) {
      const o = await observe(svc, cacheContext(objects));
      expect(o.facts.redis, what).toBeUndefined();
      const d = deploymentOf(o.input, o.hub, o.facts);
      expect(redisVolume(d), what).toBeUndefined();
      expect(envNames(d), what).not.toContain('REDIS_PASSWORD_FILE');
    }
    // A hub without a password mounts nothing either.
    const none = await observe(service(), cacheContext([hubObject({ host: 'redis' }), secret({ password: 'sha256:1' })]));
    expect(none.facts.redis).toBeUndefined();
    expect(none.facts.hash).toBeUndefined();
  });

  it('the recognition is by the hub\'s uid, name and label (hubRuntimeService)', () => {
    const hub = typed(hubObject());
    expect(hubRuntimeService(hub, service())).toBe<RuntimeServiceName>('chat');
    expect(hubRuntimeService(hub, service({ name: 'home-audit', label: 'audit' }))).toBe('audit');
    expect(hubRuntimeService(hub, service({ owner: { ...hubRef(), controller: false } as ReturnType<typeof hubRef> }))).toBeUndefined();
    expect(hubRuntimeService(hub, service({ namespace: 'apps' }))).toBeUndefined();
  });

  it('a missing Secret (or key) holds the Deployment back, naming it', async () => {
    const missing = await observe(service(), cacheContext([hubObject()]));
    expect(missing.missingSecrets).toEqual(['redis-auth']);
    const noKey = await observe(service(), cacheContext([hubObject(), secret({ pass: 'sha256:1' })]));
    expect(noKey.missingSecrets).toEqual(['redis-auth (no key password)']);
  });

  it('the credentials hash changes with the password and with nothing else in that Secret', async () => {
    const hashOf = async (data: Record<string, string>) => (await observe(service(), cacheContext([hubObject(), secret(data)]))).facts.hash;
    const h1 = await hashOf({ password: 'sha256:1', other: 'sha256:x' });
    expect(h1).toMatch(/^[0-9a-f]{16}$/);
    expect(await hashOf({ password: 'sha256:2', other: 'sha256:x' })).not.toBe(h1);
    expect(await hashOf({ password: 'sha256:1', other: 'sha256:y' })).toBe(h1);
    const o = await observe(service(), cacheContext([hubObject(), secret({ password: 'sha256:2' })]));
    // The pod template carries it: a new password rolls the pods.
    expect(deploymentOf(o.input, o.hub, o.facts).spec.template.metadata.annotations).toEqual({ 'familyhub.dev/credentials-hash': o.facts.hash });
  });
});
