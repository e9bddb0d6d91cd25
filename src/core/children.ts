// The one way a controller writes an object it owns (a "child"): read it
// from the cache, check it really is ours, compare, and server-side apply
// only when something differs. The ownership check is what keeps a CR from
// taking over (and later, through garbage collection, deleting) an object
// that belongs to someone else — a FamilyHub's admin Secret, another
// claim's credentials — by naming it in its spec.
import { createHash } from 'node:crypto';
import { canonical } from './canonical.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, encodeSecretData, ownerReference, secretDigest } from './kube-client.js';
import { childWritesTotal } from './metrics.js';
import { ReconcileError, type KubeObject, type ReconcileContext } from './reconciler.js';
import { resourceFor, type ResourceType } from './resources.js';

/** Hash of the desired object as last applied, so a later difference can be told apart from a change of ours. */
export const APPLIED_HASH_ANNOTATION = 'familyhub.dev/applied-hash';

/** A child that exists but is not controlled by the owner that wants to write it. */
export class ChildConflictError extends ReconcileError {
  constructor(readonly child: KubeObject, readonly currentOwner: string | undefined, conditionType?: string) {
    const what = `${child.kind} ${child.metadata.namespace ? `${child.metadata.namespace}/` : ''}${child.metadata.name}`;
    super(
      child.kind === 'Secret' ? 'SecretConflict' : 'ChildConflict',
      `${what} already exists and is ${currentOwner ? `controlled by ${currentOwner}` : 'not managed by this object'}; nothing was written — choose another name`,
      { conditionType, terminal: true },
    );
  }
}

export interface EnsureOwnedOptions<T extends KubeObject> {
  /**
   * True when `current` already matches `desired`. Default: every field of
   * `desired` (outside metadata) is present in `current` with the same value
   * (server defaults may add more), plus labels and annotations; Secrets
   * compare data digests.
   */
  upToDate?: (current: T, desired: T) => boolean;
  /** Take over an existing object that no controller owns (an explicit user choice, never a default). */
  adopt?: boolean;
  /** Condition the conflict is reported on (e.g. CredentialsReady). */
  conditionType?: string;
}

export interface EnsureOwnedResult<T extends KubeObject> {
  /** The object as the apiserver has it now (for Secrets read from the cache: digests, not values). */
  object: T;
  changed: boolean;
  created: boolean;
  /** It was ours and up to date when we last wrote it, and someone changed it since: restored. */
  drifted: boolean;
  adopted: boolean;
}

const controllerOf = (o: KubeObject) => o.metadata.ownerReferences?.find((r) => r.controller);

export function describeOwner(o: KubeObject): string | undefined {
  const c = controllerOf(o);
  return c ? `${c.kind} ${c.name}` : undefined;
}

/**
 * Creates or updates `desired` as a child of `owner`: ownerReference
 * (controller), managed-by label and our field manager are added here.
 * Throws ChildConflictError when the object exists and is controlled by
 * something else, or by nothing and `adopt` is not set.
 */
export async function ensureOwned<T extends KubeObject>(ctx: ReconcileContext, owner: KubeObject, desired: T, opts: EnsureOwnedOptions<T> = {}): Promise<EnsureOwnedResult<T>> {
  const type = resourceFor(desired.apiVersion!, desired.kind!);
  const ns = type.namespaced ? desired.metadata.namespace ?? owner.metadata.namespace : undefined;
  const current = await checkWritable<T>(ctx, owner, type, ns, desired.metadata.name, opts);
  const adopted = !!current && !controllerOf(current);
  const appliedHash = hashOf(desired);
  const want: T = {
    ...desired,
    metadata: {
      ...desired.metadata,
      namespace: ns,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, ...(desired.metadata.labels ?? {}) },
      annotations: { ...(desired.metadata.annotations ?? {}), [APPLIED_HASH_ANNOTATION]: appliedHash },
      ownerReferences: [ownerReference(owner)],
    },
  };
  if (current && !adopted && (opts.upToDate ?? defaultUpToDate)(current, want) && metadataUpToDate(current, want)) {
    return { object: current, changed: false, created: false, drifted: false, adopted: false };
  }
  // Same desired state as our last write, yet the object differs: someone else changed it.
  const drifted = !!current && !adopted && current.metadata.annotations?.[APPLIED_HASH_ANNOTATION] === appliedHash;
  const object = await ctx.kube.apply<T>(want);
  childWritesTotal.inc({ controller: ctx.controller, kind: desired.kind!, action: !current ? 'create' : drifted ? 'restore' : adopted ? 'adopt' : 'update' });
  const what = `${desired.kind} ${ns ? `${ns}/` : ''}${desired.metadata.name}`;
  if (drifted) {
    ctx.events.warning(owner, 'Drifted', `${what} was changed outside the operator; restored`);
    ctx.log.info({ child: what }, 'child drifted; restored');
  } else if (adopted) {
    ctx.events.normal(owner, 'Adopted', `took over existing ${what}`);
  }
  return { object, changed: true, created: !current, drifted, adopted };
}

/**
 * The child as cached, if `owner` may write it: absent, or controlled by
 * `owner` (or by nobody, with `adopt`). Otherwise ChildConflictError — call
 * this before doing external work whose result would land in the child.
 */
export async function checkWritable<T extends KubeObject>(
  ctx: Pick<ReconcileContext, 'cache'>, owner: KubeObject, type: ResourceType, namespace: string | undefined, name: string,
  opts: Pick<EnsureOwnedOptions<T>, 'adopt' | 'conditionType'> = {},
): Promise<T | undefined> {
  const current = await ctx.cache.get<T>(type, namespace, name);
  if (current) {
    const c = controllerOf(current);
    if (c ? c.uid !== owner.metadata.uid : !opts.adopt) throw new ChildConflictError({ apiVersion: type.apiVersion, kind: type.kind, ...current }, describeOwner(current), opts.conditionType);
  }
  return current;
}

/** True when `child` is controlled by `owner` (the only case in which an owner may read, write or delete it). */
export function isControlledBy(child: KubeObject | undefined, owner: KubeObject): boolean {
  return !!child && controllerOf(child)?.uid === owner.metadata.uid;
}

function hashOf(o: KubeObject): string {
  const { metadata, ...rest } = o;
  return createHash('sha256').update(canonical({ rest, labels: metadata.labels ?? {}, annotations: metadata.annotations ?? {} })).digest('hex').slice(0, 16);
}

function metadataUpToDate(current: KubeObject, want: KubeObject): boolean {
  const subset = (w: Record<string, string> | undefined, c: Record<string, string> | undefined) => Object.entries(w ?? {}).every(([k, v]) => c?.[k] === v);
  return subset(want.metadata.labels, current.metadata.labels) && subset(want.metadata.annotations, current.metadata.annotations);
}

function defaultUpToDate(current: KubeObject, want: KubeObject): boolean {
  if (want.apiVersion === 'v1' && want.kind === 'Secret') {
    // The cache holds digests of the values (see secretDigest).
    const data = want.data ?? (want.stringData ? encodeSecretData(want.stringData) : {});
    const have = current.data ?? {};
    const keys = Object.keys(data);
    return (want.type ?? 'Opaque') === (current.type ?? 'Opaque')
      // Keys someone else added are not ours to judge (SSA would keep them anyway).
      && keys.every((k) => have[k] === secretDigest(data[k]!));
  }
  const { metadata: _m, apiVersion: _a, kind: _k, status: _s, ...fields } = want;
  return isSubset(fields, current);
}

/** Every value in `want` is in `have` (objects: recursively; arrays: same length, element-wise). */
export function isSubset(want: unknown, have: unknown): boolean {
  if (Array.isArray(want)) return Array.isArray(have) && want.length === have.length && want.every((w, i) => isSubset(w, have[i]));
  if (want && typeof want === 'object') {
    if (!have || typeof have !== 'object' || Array.isArray(have)) return false;
    return Object.entries(want).every(([k, v]) => v === undefined || isSubset(v, (have as Record<string, unknown>)[k]));
  }
  return want === have;
}
