// The FamilyHub as every other kind sees it: resolveHub(ctx, obj, ref) reads
// the referenced hub from the informer cache and returns it typed, with its
// spec parsed by the same zod schema the CRD was generated from (defaults
// applied), so no controller re-implements defaults or `?? 'x'` fallbacks.
import type { WatchSpec } from '../core/controller.js';
import { objectKey } from '../core/informer.js';
import { ReconcileError, type KubeObject, type ReconcileContext, type Resource } from '../core/reconciler.js';
import { familyHubSpecSchema, type FamilyHubSpec, type FamilyHubStatus } from '../crds/familyhub.js';
import { resourceTypes } from '../crds/index.js';

export type Hub = Resource<FamilyHubSpec, FamilyHubStatus>;

export const FAMILYHUB = resourceTypes.FamilyHub;

export interface HubRef {
  name: string;
  namespace?: string;
}

const parsed = new WeakMap<KubeObject, Hub | string>();

/** A hub as cached, typed; the parse is remembered per cached object version. */
export function typedHub(raw: KubeObject): Hub {
  let p = parsed.get(raw);
  if (p === undefined) {
    const r = familyHubSpecSchema.safeParse(raw.spec);
    p = r.success ? ({ ...raw, spec: r.data } as Hub) : r.error.issues.map((i) => `spec.${i.path.join('.')}: ${i.message}`).join('; ');
    parsed.set(raw, p);
  }
  if (typeof p === 'string') {
    throw new ReconcileError('FamilyHubInvalid', `FamilyHub ${raw.metadata.namespace}/${raw.metadata.name} is invalid: ${p}`, { retryAfterMs: 60_000 });
  }
  return p;
}

export async function resolveHub(ctx: Pick<ReconcileContext, 'cache'>, obj: KubeObject, ref: HubRef): Promise<Hub> {
  const ns = ref.namespace ?? obj.metadata.namespace!;
  const raw = await ctx.cache.get(FAMILYHUB, ns, ref.name);
  if (!raw) throw new ReconcileError('FamilyHubNotFound', `FamilyHub ${ns}/${ref.name} not found`, { retryAfterMs: 15_000 });
  return typedHub({ apiVersion: FAMILYHUB.apiVersion, kind: FAMILYHUB.kind, ...raw });
}

/** True when `ref` (in an object of namespace `ns`) names `hub`. */
export function refersTo(ref: HubRef | undefined, ns: string | undefined, hub: KubeObject): boolean {
  return !!ref && ref.name === hub.metadata.name && (ref.namespace ?? ns) === hub.metadata.namespace;
}

/**
 * Watch for controllers whose kind has spec.familyHubRef: a hub change
 * (domain, identity, connection) re-converges the objects on it at once, and
 * the hub informer serves every resolveHub without an apiserver read.
 */
export function hubWatch(): WatchSpec {
  return {
    resource: FAMILYHUB,
    map: (hub, objs) => objs().filter((o) => refersTo(o.spec?.familyHubRef, o.metadata.namespace, hub)).map(objectKey),
  };
}

/** A Secret a FamilyHub reads: its admin credentials, tokens, CA, gateway certificate. */
export interface HubInputSecret {
  namespace: string;
  name: string;
  /** The hub field that names it. */
  field: string;
}

/**
 * Every Secret `hub` names in its spec: each `*SecretRef` (in the hub's
 * namespace) and the TLS Secret of the Gateway it would create. Read from
 * the raw spec, so a hub that fails to parse still protects its inputs.
 */
export function hubInputSecrets(hub: KubeObject): HubInputSecret[] {
  const ns = hub.metadata.namespace!;
  const found: HubInputSecret[] = [];
  const walk = (node: unknown, at: string) => {
    if (!node || typeof node !== 'object' || Array.isArray(node)) return;
    for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
      const name = (v as { name?: unknown } | null)?.name;
      if (k.endsWith('SecretRef') && typeof name === 'string') found.push({ namespace: ns, name, field: `spec${at}.${k}` });
      else walk(v, `${at}.${k}`);
    }
  };
  walk(hub.spec, '');
  const gw = hub.spec?.gateway as { gatewayName?: string; gatewayNamespace?: string; listeners?: { certificateSecretName?: string } } | undefined;
  if (gw?.gatewayName && gw.gatewayNamespace) {
    found.push({ namespace: gw.gatewayNamespace, name: gw.listeners?.certificateSecretName ?? `${gw.gatewayName}-tls`, field: 'spec.gateway.listeners.certificateSecretName' });
  }
  return found;
}

/**
 * Refuses a Secret name that some FamilyHub reads, whether or not that Secret
 * exists yet: the ownership check alone would let a claim create the hub's
 * admin Secret before the admin does, and the garbage collector would later
 * delete it with the claim. Terminal: only a change of either spec helps.
 */
export async function assertNotHubInput(ctx: Pick<ReconcileContext, 'cache'>, namespace: string, name: string, conditionType: string): Promise<void> {
  for (const hub of await ctx.cache.list(FAMILYHUB)) {
    const input = hubInputSecrets(hub).find((s) => s.namespace === namespace && s.name === name);
    if (input) {
      throw new ReconcileError(
        'SecretConflict',
        `Secret ${namespace}/${name} is an input of FamilyHub ${hub.metadata.namespace}/${hub.metadata.name} (${input.field}); nothing was written — choose another name`,
        { conditionType, terminal: true },
      );
    }
  }
}
