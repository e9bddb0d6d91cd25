// Plan mode: what applying would do, learnt from the apiserver itself
// (server-side dry-run applies: admission, defaults and CRD validation all
// run, nothing is stored) and summed up in status.plan.
import { isControlledBy, isSubset, describeOwner } from '../../core/children.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, ownerReference } from '../../core/kube-client.js';
import type { KubeObject, ReconcileContext } from '../../core/reconciler.js';
import { resourceFor, type ResourceType } from '../../core/resources.js';
import type { ServiceStatus } from '../../crds/service.js';
import { changedPaths } from './compare.js';

export interface PlannedChild {
  desired: KubeObject;
  upToDate?: (current: KubeObject, want: KubeObject) => boolean;
  /** Set when applying would not create it yet (ordering), and why. */
  waitingFor?: string;
}

type Plan = NonNullable<ServiceStatus['plan']>;
type Entry = Plan['changes'][number];

function defaultUpToDate(current: KubeObject, want: KubeObject): boolean {
  const { metadata: _m, apiVersion: _a, kind: _k, status: _s, ...fields } = want;
  return isSubset(fields, current);
}

/** What ensureOwned would send, minus its hash annotation (the dry run needs the ownership to be real). */
function asChild(owner: KubeObject, desired: KubeObject): KubeObject {
  return {
    ...desired,
    metadata: {
      ...desired.metadata,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, ...(desired.metadata.labels ?? {}) },
      ownerReferences: [ownerReference(owner)],
    },
  };
}

const specOf = (o: KubeObject) => {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
  return rest;
};

export async function planChildren(ctx: ReconcileContext, owner: KubeObject, children: PlannedChild[], unwanted: ResourceType[]): Promise<Plan> {
  const changes: Entry[] = [];
  for (const c of children) {
    const d = c.desired;
    const type = resourceFor(d.apiVersion!, d.kind!);
    const base = { kind: d.kind!, name: d.metadata.name };
    const current = await ctx.cache.get(type, owner.metadata.namespace, d.metadata.name);
    if (current && !isControlledBy(current, owner)) {
      changes.push({ ...base, action: 'Conflict', message: `exists and is ${describeOwner(current) ? `controlled by ${describeOwner(current)}` : 'not managed by this Service'}` });
      continue;
    }
    const want = asChild(owner, d);
    if (current && (c.upToDate ?? defaultUpToDate)(current, want)) {
      changes.push({ ...base, action: 'Unchanged' });
      continue;
    }
    let result: KubeObject;
    try {
      result = await ctx.kube.apply(want, { dryRun: true });
    } catch (err) {
      changes.push({ ...base, action: current ? 'Update' : 'Create', message: `dry run refused: ${err instanceof Error ? err.message : String(err)}`.slice(0, 512) });
      continue;
    }
    if (!current) {
      changes.push({ ...base, action: c.waitingFor ? 'Waiting' : 'Create', ...(c.waitingFor ? { message: `would be created ${c.waitingFor}` } : {}) });
    } else {
      const fields = changedPaths(specOf(current), specOf(result));
      changes.push({ ...base, action: 'Update', fields: fields.length ? fields : ['metadata'] });
    }
  }
  for (const type of unwanted) {
    const current = await ctx.cache.get(type, owner.metadata.namespace, owner.metadata.name);
    if (current && isControlledBy(current, owner)) changes.push({ kind: type.kind, name: owner.metadata.name, action: 'Delete', message: 'no longer in spec.needs' });
  }
  const count = (a: Entry['action']) => changes.filter((e) => e.action === a).length;
  const parts = ([['Create', 'to create'], ['Update', 'to update'], ['Delete', 'to delete'], ['Waiting', 'waiting'], ['Conflict', 'in conflict'], ['Unchanged', 'unchanged']] as const)
    .filter(([a]) => count(a) > 0).map(([a, label]) => `${count(a)} ${label}`);
  return { summary: parts.join(', ') || 'nothing', changes };
}
