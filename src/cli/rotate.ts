// `rotate dbc/<name>|oidc/<name>`: bumps the rotation trigger the CRDs
// define (DatabaseClaim spec.credentials.rotateGeneration, OIDCClient
// spec.rotation.generation) and waits until the operator reports the new
// credentials for that generation. A claim a FamilyHub Service owns takes
// its rotateGeneration from the Service (needs.database.rotateGeneration),
// so the bump goes there; otherwise the Service would set it back.
import type { KubeClient } from '../core/kube-client.js';
import type { KubeObject } from '../core/reconciler.js';
import { API_VERSION } from '../core/constants.js';
import { CLI_FIELD_MANAGER, controllerOf, type Target } from './kube.js';
import type { ConditionLike } from './output.js';

export interface RotateResult {
  kind: 'DatabaseClaim' | 'OIDCClient';
  namespace: string;
  name: string;
  generation: number;
  /** Where the bump was written ("DatabaseClaim app" or "Service recipes"). */
  via: string;
  done: boolean;
  secretName?: string;
  rotatedAt?: string;
}

async function mergePatch(kube: KubeClient, kind: string, namespace: string, name: string, patch: unknown, resourceVersion?: string): Promise<KubeObject> {
  // With the object's resourceVersion, a concurrent bump fails (409) instead of both landing on the same number.
  const body = resourceVersion ? { ...(patch as object), metadata: { resourceVersion } } : patch;
  return kube.request('PATCH', kube.path(API_VERSION, kind, namespace, name), {
    body, contentType: 'application/merge-patch+json', query: { fieldManager: CLI_FIELD_MANAGER },
  });
}

const ready = (o: KubeObject) => ((o.status?.conditions ?? []) as ConditionLike[]).find((c) => c.type === 'Ready');

export async function rotate(t: Target, kind: 'DatabaseClaim' | 'OIDCClient', name: string, opts: { wait: boolean; timeoutMs: number; onProgress?: (msg: string) => void }): Promise<RotateResult> {
  const ns = t.namespace;
  const obj = await t.kube.get(API_VERSION, kind, ns, name);
  if (!obj) throw new Error(`${kind} ${ns}/${name} not found`);
  const before = { rotatedAt: obj.status?.lastRotatedAt as string | undefined, hash: obj.status?.secretHash as string | undefined };
  let generation: number;
  let via = `${kind} ${name}`;
  if (kind === 'DatabaseClaim') {
    const owner = controllerOf(obj);
    const current = obj.spec?.credentials?.rotateGeneration ?? 0;
    if (owner?.kind === 'Service' && owner.apiVersion === API_VERSION) {
      const svc = await t.kube.get(API_VERSION, 'Service', ns, owner.name);
      if (!svc || svc.metadata.uid !== owner.uid) throw new Error(`${kind} ${ns}/${name} is controlled by Service ${owner.name}, which is gone`);
      generation = Math.max(current, svc.spec?.needs?.database?.rotateGeneration ?? 0) + 1;
      await mergePatch(t.kube, 'Service', ns, owner.name, { spec: { needs: { database: { rotateGeneration: generation } } } }, svc.metadata.resourceVersion);
      via = `Service ${owner.name} (spec.needs.database.rotateGeneration)`;
    } else {
      generation = current + 1;
      await mergePatch(t.kube, kind, ns, name, { spec: { credentials: { rotateGeneration: generation } } }, obj.metadata.resourceVersion);
      via = `DatabaseClaim ${name} (spec.credentials.rotateGeneration)`;
    }
  } else {
    generation = (obj.spec?.rotation?.generation ?? 0) + 1;
    await mergePatch(t.kube, kind, ns, name, { spec: { rotation: { generation } } }, obj.metadata.resourceVersion);
    via = `OIDCClient ${name} (spec.rotation.generation)`;
  }
  const result: RotateResult = { kind, namespace: ns, name, generation, via, done: false };
  if (!opts.wait) return result;

  opts.onProgress?.(`waiting for ${kind} ${ns}/${name} to issue credentials for generation ${generation}…`);
  const observedField = kind === 'DatabaseClaim' ? 'observedRotateGeneration' : 'observedRotationGeneration';
  const deadline = Date.now() + opts.timeoutMs;
  let last: KubeObject | undefined;
  for (;;) {
    last = await t.kube.get(API_VERSION, kind, ns, name);
    const s = last?.status ?? {};
    const r = last && ready(last);
    const current = !!last && s.observedGeneration === last.metadata.generation;
    const rotated = (s[observedField] ?? 0) >= generation && (s.lastRotatedAt !== before.rotatedAt || (kind === 'OIDCClient' && s.secretHash !== before.hash));
    if (last && current && rotated && r?.status === 'True') {
      return { ...result, done: true, secretName: s.secretName, rotatedAt: s.lastRotatedAt };
    }
    if (Date.now() > deadline) {
      const why = r ? `Ready=${r.status} ${r.reason ?? ''}: ${r.message ?? ''}` : 'no Ready condition';
      throw new Error(`timed out after ${Math.round(opts.timeoutMs / 1000)}s waiting for ${kind} ${ns}/${name} to rotate (${observedField}=${s[observedField] ?? '-'}, want ${generation}; ${why})`);
    }
    await new Promise((res) => setTimeout(res, 500));
  }
}
