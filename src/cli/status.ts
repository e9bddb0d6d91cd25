// `status [kind/name]`: one object with its conditions and everything it
// owns (by ownerReference, recursively) as a tree; without a name, a table
// of every FamilyHub object with its Ready condition.
import type { KubeClient } from '../core/kube-client.js';
import type { KubeObject } from '../core/reconciler.js';
import { kinds, kindNames, resourceTypes, type KindName } from '../crds/index.js';
import { CHILD_TYPES, listKind, type Target } from './kube.js';
import { age, conditionLines, oneLine, renderTree, table, type ConditionLike, type Style, type TreeNode } from './output.js';

export interface StatusNode {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
  uid?: string;
  generation?: number;
  observedGeneration?: number;
  conditions: ConditionLike[];
  /** Plain facts worth a glance (URL, schema, replicas, rotation times); never a credential. */
  facts: Record<string, string>;
  children: StatusNode[];
}

export interface ObjectStatus {
  node: StatusNode;
  events: Array<{ type: string; reason: string; message: string; count: number; lastSeen?: string }>;
  /** Child kinds that could not be listed (RBAC), so an empty branch is not mistaken for "owns nothing". */
  unlisted: string[];
  /** status.plan while the object is in plan mode (Service). */
  plan?: { summary: string; changes: Array<{ kind: string; name: string; action: string; fields?: string[]; message?: string }> };
}

const str = (v: unknown) => (v === undefined || v === null || v === '' ? undefined : String(v));

function factsOf(o: KubeObject): Record<string, string> {
  const s = o.status ?? {};
  const f: Record<string, string | undefined> = {};
  switch (`${o.apiVersion}/${o.kind}`) {
    case 'familyhub.dev/v1alpha1/FamilyHub':
      f.domain = str(s.domain ?? o.spec?.domain);
      f.services = str((s.services as string[] | undefined)?.join(', '));
      for (const [k, v] of Object.entries((s.endpoints ?? {}) as Record<string, string>)) f[`endpoint ${k}`] = v;
      break;
    case 'familyhub.dev/v1alpha1/Service':
      f.url = str(s.url);
      f.replicas = s.readyReplicas !== undefined ? `${s.readyReplicas} ready${o.spec?.replicas !== undefined ? ` of ${o.spec.replicas}` : ''}` : undefined;
      f.plan = str(s.plan?.summary);
      break;
    case 'familyhub.dev/v1alpha1/DatabaseClaim':
      f.schema = str(s.schema);
      f.secret = str(s.secretName);
      f.mode = str(s.credentialsMode);
      f.rotated = str(s.lastRotatedAt);
      f.expires = str(s.leaseExpiresAt);
      f.rotateGeneration = `${o.spec?.credentials?.rotateGeneration ?? 0} (observed ${s.observedRotateGeneration ?? '-'})`;
      break;
    case 'familyhub.dev/v1alpha1/OIDCClient':
      f.clientId = str(s.clientId);
      f.secret = str(s.secretName);
      f.rotated = str(s.lastRotatedAt);
      f.rotationGeneration = `${o.spec?.rotation?.generation ?? 0} (observed ${s.observedRotationGeneration ?? '-'})`;
      break;
    case 'familyhub.dev/v1alpha1/Route':
      f.url = str(s.url);
      f.host = str(o.spec?.hostname);
      break;
    case 'apps/v1/Deployment':
    case 'apps/v1/ReplicaSet':
      f.replicas = `${s.readyReplicas ?? 0}/${o.spec?.replicas ?? '-'} ready`;
      f.image = str(o.spec?.template?.spec?.containers?.map((c: { image: string }) => c.image).join(', '));
      break;
    case 'v1/Pod': {
      f.phase = str(s.phase);
      const waiting = (s.containerStatuses ?? []).map((c: any) => c.state?.waiting?.reason ?? (c.state?.terminated ? `terminated: ${c.state.terminated.reason}` : undefined)).filter(Boolean);
      f.containers = waiting.length ? waiting.join(', ') : undefined;
      break;
    }
    case 'v1/Secret':
    case 'v1/ConfigMap':
      f.rotated = str(o.metadata.annotations?.['familyhub.dev/rotated-at']);
      break;
  }
  f.age = age(o.metadata.creationTimestamp);
  return Object.fromEntries(Object.entries(f).filter((e): e is [string, string] => e[1] !== undefined));
}

function conditionsOf(o: KubeObject): ConditionLike[] {
  const own = (o.status?.conditions ?? []) as ConditionLike[];
  // Gateway API routes keep conditions per parent Gateway.
  const parents = ((o.status?.parents ?? []) as Array<{ parentRef?: { name?: string }; conditions?: ConditionLike[] }>)
    .flatMap((p) => (p.conditions ?? []).map((c) => ({ ...c, type: `${c.type} (${p.parentRef?.name ?? 'parent'})` })));
  return [...own, ...parents];
}

function toNode(o: KubeObject): StatusNode {
  return {
    apiVersion: o.apiVersion!, kind: o.kind!, namespace: o.metadata.namespace, name: o.metadata.name, uid: o.metadata.uid,
    generation: o.metadata.generation, observedGeneration: o.status?.observedGeneration,
    conditions: conditionsOf(o), facts: factsOf(o), children: [],
  };
}

export async function objectStatus(kube: KubeClient, kind: KindName, namespace: string, name: string): Promise<ObjectStatus> {
  const t = resourceTypes[kind];
  const root = await kube.get(t.apiVersion, t.kind, namespace, name);
  if (!root) throw new Error(`${kind} ${namespace}/${name} not found`);
  const lists = await Promise.all(CHILD_TYPES.map(async (ct) => ({ ct, res: await listKind(kube, ct, namespace) })));
  const byOwner = new Map<string, KubeObject[]>();
  const unlisted: string[] = [];
  for (const { ct, res } of lists) {
    if ('absent' in res) continue;
    if ('error' in res) {
      unlisted.push(`${ct.kind} (${res.error.split(':')[0]})`);
      continue;
    }
    for (const o of res.items) {
      for (const ref of o.metadata.ownerReferences ?? []) {
        const l = byOwner.get(ref.uid) ?? [];
        l.push(o);
        byOwner.set(ref.uid, l);
      }
    }
  }
  const seen = new Set<string>();
  const build = (o: KubeObject): StatusNode => {
    const n = toNode(o);
    seen.add(o.metadata.uid!);
    const kids = (byOwner.get(o.metadata.uid!) ?? [])
      .filter((c) => !seen.has(c.metadata.uid!))
      // A Deployment's old ReplicaSets scaled to zero are history, not state.
      .filter((c) => !(c.kind === 'ReplicaSet' && !c.spec?.replicas && !byOwner.get(c.metadata.uid!)?.length))
      .sort((a, b) => CHILD_TYPES.findIndex((x) => x.kind === a.kind && x.apiVersion === a.apiVersion) - CHILD_TYPES.findIndex((x) => x.kind === b.kind && x.apiVersion === b.apiVersion) || a.metadata.name.localeCompare(b.metadata.name));
    n.children = kids.map(build);
    return n;
  };
  const node = build(root);
  let events: ObjectStatus['events'] = [];
  try {
    const ev = await kube.list('v1', 'Event', namespace, { fieldSelector: `involvedObject.uid=${root.metadata.uid}` });
    events = ev.items
      .map((e) => ({ type: e.type, reason: e.reason, message: e.message ?? '', count: e.count ?? 1, lastSeen: e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp }))
      .sort((a, b) => Date.parse(a.lastSeen ?? '') - Date.parse(b.lastSeen ?? ''))
      .slice(-8);
  } catch {
    // Events are a bonus; a cluster that refuses them still gets the tree.
  }
  return { node, events, unlisted, ...(root.status?.plan ? { plan: root.status.plan } : {}) };
}

function headline(n: StatusNode, st: Style, qualified: boolean): string {
  const kind = n.apiVersion === 'v1' && n.kind === 'Service' ? 'Service (core)' : n.kind;
  const id = `${st.bold(kind)} ${qualified && n.namespace ? `${n.namespace}/` : ''}${n.name}`;
  const ready = n.conditions.find((c) => c.type === 'Ready') ?? n.conditions.find((c) => c.type === 'Available');
  const parts = [id];
  if (ready) {
    const ok = ready.status === 'True';
    const s = `${ready.type}=${ready.status}${ready.reason && ready.reason !== ready.type ? ` (${ready.reason})` : ''}`;
    parts.push(ok ? st.good(s) : ready.status === 'False' ? st.bad(s) : st.warn(s));
  }
  if (n.generation !== undefined && n.observedGeneration !== undefined && n.observedGeneration < n.generation) {
    parts.push(st.warn(`not yet reconciled: generation ${n.generation}, observed ${n.observedGeneration}`));
  }
  return parts.join('  ');
}

function toTree(n: StatusNode, st: Style, root: boolean): TreeNode {
  const facts = Object.entries(n.facts).filter(([k]) => root || k !== 'age').map(([k, v]) => `${st.dim(`${k}:`)} ${v}`);
  return {
    label: headline(n, st, root),
    details: [...facts, ...(n.conditions.length || n.apiVersion.startsWith('familyhub.dev/') ? conditionLines(n.conditions, st) : [])],
    children: n.children.map((c) => toTree(c, st, false)),
  };
}

export function renderObjectStatus(s: ObjectStatus, st: Style): string {
  const out = [renderTree(toTree(s.node, st, true))];
  const plan = s.plan?.changes;
  if (plan?.length) {
    out.push('', st.bold('Plan (plan mode: nothing is written):'));
    out.push(table(['KIND', 'NAME', 'ACTION', 'DETAIL'], plan.map((c) => [c.kind, c.name, c.action, oneLine([c.fields?.join(', '), c.message].filter(Boolean).join(' — '))])));
  }
  if (s.unlisted.length) out.push('', st.warn(`not shown (could not list): ${s.unlisted.join(', ')}`));
  if (s.events.length) {
    out.push('', st.bold('Events:'));
    out.push(table(['TYPE', 'REASON', 'AGE', 'COUNT', 'MESSAGE'], s.events.map((e) => [e.type === 'Warning' ? st.warn(e.type) : e.type, e.reason, age(e.lastSeen), String(e.count), oneLine(e.message)])));
  }
  return out.join('\n');
}

export interface SummaryRow { kind: string; namespace: string; name: string; ready: string; reason: string; message: string; age: string }

export async function summary(t: Target, allNamespaces: boolean): Promise<{ rows: SummaryRow[]; errors: string[] }> {
  const rows: SummaryRow[] = [];
  const errors: string[] = [];
  for (const k of kindNames) {
    const res = await listKind(t.kube, resourceTypes[k], allNamespaces ? undefined : t.namespace);
    if ('absent' in res) {
      errors.push(`${k}: CRD ${kinds[k].plural}.${kinds[k].group} not installed`);
      continue;
    }
    if ('error' in res) {
      errors.push(`${k}: ${res.error}`);
      continue;
    }
    for (const o of res.items.sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`))) {
      const ready = ((o.status?.conditions ?? []) as ConditionLike[]).find((c) => c.type === 'Ready');
      const stale = o.status?.observedGeneration !== undefined && o.metadata.generation !== undefined && o.status.observedGeneration < o.metadata.generation;
      rows.push({
        kind: k, namespace: o.metadata.namespace ?? '', name: o.metadata.name,
        ready: ready?.status ?? 'Unknown', reason: stale ? 'NotYetObserved' : ready?.reason ?? 'NotReconciled',
        message: ready?.status === 'True' ? '' : oneLine(ready?.message ?? '', 100), age: age(o.metadata.creationTimestamp),
      });
    }
  }
  return { rows, errors };
}

export function renderSummary(r: { rows: SummaryRow[]; errors: string[] }, st: Style, allNamespaces: boolean): string {
  const out: string[] = [];
  if (!r.rows.length) out.push('No FamilyHub objects found.');
  else {
    out.push(table(
      [...['KIND'], ...(allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'READY', 'REASON', 'AGE', 'MESSAGE'],
      r.rows.map((x) => [x.kind, ...(allNamespaces ? [x.namespace] : []), x.name, x.ready === 'True' ? st.good(x.ready) : x.ready === 'False' ? st.bad(x.ready) : st.warn(x.ready), x.reason, x.age, x.message]),
    ));
  }
  for (const e of r.errors) out.push(st.warn(e));
  return out.join('\n');
}
