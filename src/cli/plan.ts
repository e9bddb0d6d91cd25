// `plan <file>`: what applying a Service or Route would do, without writing
// anything. The object itself goes through a server-side dry-run apply
// (admission, defaulting, CRD schema and CEL validation all run; nothing is
// stored). What the operator would then create is read off the applied spec
// (each `needs` entry becomes a child named after the Service, as the CRD
// documents), and every such name is checked against what exists. A Service
// already in plan mode in the cluster also shows the operator's own
// per-child dry runs (status.plan).
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { KubeApiError, type KubeClient } from '../core/kube-client.js';
import type { KubeObject } from '../core/reconciler.js';
import { API_VERSION } from '../core/constants.js';
import { resourceTypes } from '../crds/index.js';
import { controllerOf, UsageError, type Target } from './kube.js';
import { oneLine, table, type Style } from './output.js';

export type Action = 'Create' | 'Update' | 'Unchanged' | 'Delete' | 'Conflict' | 'Waiting' | 'Refused' | 'Exists';

export interface PlanLine {
  kind: string;
  name: string;
  action: Action;
  fields?: string[];
  message?: string;
}

export interface ObjectPlan {
  kind: string;
  namespace: string;
  name: string;
  /** The object itself, from the apiserver's dry run. */
  object: PlanLine;
  /** What the operator would create, update or delete next. */
  children: PlanLine[];
  /** status.plan of the object in the cluster, when it is in plan mode (the operator's own dry runs). */
  operatorPlan?: { summary: string; changes: PlanLine[] };
}

const PLAN_ANNOTATION = 'familyhub.dev/plan';

export function readManifests(file: string): KubeObject[] {
  const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  const docs = parseAllDocuments(text);
  const objs: KubeObject[] = [];
  for (const d of docs) {
    if (d.errors.length) throw new UsageError(`${file}: ${d.errors[0]!.message}`);
    const o = d.toJS() as KubeObject | null;
    if (o && typeof o === 'object') objs.push(o);
  }
  if (!objs.length) throw new UsageError(`${file}: no objects`);
  return objs;
}

/** Field paths whose values differ between two JSON values ("spec.image", "spec.env[0].value"). */
export function changedFields(a: unknown, b: unknown, prefix = ''): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => changedFields(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    return a.flatMap((v, i) => changedFields(v, b[i], `${prefix}[${i}]`));
  }
  return [prefix || '.'];
}

const comparable = (o: KubeObject) => ({ spec: o.spec, labels: o.metadata.labels ?? {}, annotations: o.metadata.annotations ?? {} });
const rename = (p: string) => p.replace(/^labels/, 'metadata.labels').replace(/^annotations/, 'metadata.annotations');

async function dryRun(kube: KubeClient, obj: KubeObject, current: KubeObject | undefined, fieldManager: string): Promise<{ line: PlanLine; result?: KubeObject }> {
  const base = { kind: obj.kind!, name: obj.metadata.name };
  const diff = (result: KubeObject, note?: string): PlanLine => {
    if (!current) return { ...base, action: 'Create', ...(note ? { message: note } : {}) };
    const fields = changedFields(comparable(current), comparable(result)).map(rename);
    return { ...base, action: fields.length ? 'Update' : 'Unchanged', ...(fields.length ? { fields } : {}), ...(note ? { message: note } : {}) };
  };
  try {
    // force: false first, so fields another manager owns are named, as
    // `kubectl apply --server-side` would refuse them.
    const result = await kube.apply(obj, { dryRun: true, force: false, fieldManager });
    return { line: diff(result), result };
  } catch (e) {
    if (e instanceof KubeApiError && e.statusCode === 409) {
      const result = await kube.apply(obj, { dryRun: true, force: true, fieldManager }).catch(() => undefined);
      const note = `conflict: ${oneLine(e.message, 300)} (kubectl apply --server-side --force-conflicts takes them over)`;
      return result ? { line: diff(result, note), result } : { line: { ...base, action: 'Conflict', message: note } };
    }
    if (e instanceof KubeApiError && (e.statusCode === 422 || e.statusCode === 400 || e.statusCode === 403)) return { line: { ...base, action: 'Refused', message: oneLine(e.message, 400) } };
    throw e;
  }
}

interface Expected { kind: string; apiVersion: string; name: string; wanted: boolean; when?: string }

function serviceChildren(name: string, spec: any): Expected[] {
  const needs = spec?.needs ?? {};
  const db = !!needs.database?.enabled;
  const oidc = !!needs.oidc?.enabled;
  const secrets = [db && 'database', oidc && 'OIDC'].filter(Boolean).join(' and ');
  const afterSecrets = secrets ? `once the ${secrets} Secret${db && oidc ? 's exist' : ' exists'}` : undefined;
  return [
    { kind: 'DatabaseClaim', apiVersion: API_VERSION, name, wanted: db },
    { kind: 'OIDCClient', apiVersion: API_VERSION, name, wanted: oidc },
    { kind: 'Deployment', apiVersion: 'apps/v1', name, wanted: true, when: afterSecrets },
    { kind: 'Service', apiVersion: 'v1', name, wanted: true, when: afterSecrets },
    { kind: 'Route', apiVersion: API_VERSION, name, wanted: needs.route !== undefined, when: 'once a replica is available' },
  ];
}

async function childLines(kube: KubeClient, namespace: string, owner: KubeObject | undefined, expected: Expected[]): Promise<PlanLine[]> {
  const lines: PlanLine[] = [];
  for (const e of expected) {
    const existing = await kube.get(e.apiVersion, e.kind, namespace, e.name);
    const ref = existing && controllerOf(existing);
    const ours = !!existing && !!owner && ref?.uid === owner.metadata.uid;
    const label = e.apiVersion === 'v1' ? `Service (core)` : e.kind;
    if (!e.wanted) {
      if (ours) lines.push({ kind: label, name: e.name, action: 'Delete', message: 'no longer in spec.needs' });
      continue;
    }
    if (existing && !ours) {
      lines.push({
        kind: label, name: e.name, action: 'Conflict',
        message: `${e.kind} ${namespace}/${e.name} exists and is ${ref ? `controlled by ${ref.kind} ${ref.name}` : 'not managed by this Service'}: the operator would refuse it (ChildConflict) and write nothing`,
      });
    } else if (existing) {
      lines.push({ kind: label, name: e.name, action: 'Exists', message: 'owned by this Service; the operator updates it to match (plan mode shows the fields)' });
    } else {
      lines.push({ kind: label, name: e.name, action: e.when ? 'Waiting' : 'Create', ...(e.when ? { message: `created ${e.when}` } : {}) });
    }
  }
  return lines;
}

async function routeChecks(kube: KubeClient, namespace: string, obj: KubeObject, spec: any): Promise<PlanLine[]> {
  const lines: PlanLine[] = [];
  const hubName = spec?.familyHubRef?.name;
  const hub = hubName ? await kube.get(API_VERSION, 'FamilyHub', namespace, hubName) : undefined;
  const host: string | undefined = spec?.hostname;
  if (!hub) lines.push({ kind: 'FamilyHub', name: hubName ?? '?', action: 'Refused', message: `FamilyHub ${namespace}/${hubName} not found: the Route would wait for it` });
  else if (host && host !== hub.spec.domain && !host.endsWith(`.${hub.spec.domain}`)) {
    lines.push({ kind: 'Route', name: obj.metadata.name, action: 'Refused', message: `hostname ${host} is outside the hub's domain ${hub.spec.domain} (HostnameOutsideDomain)` });
  }
  let others: KubeObject[] = [];
  try {
    others = (await kube.list(API_VERSION, 'Route')).items;
  } catch {
    others = (await kube.list(API_VERSION, 'Route', namespace)).items;
  }
  const path = spec?.pathPrefix ?? '/';
  const clash = others.find((r) => !(r.metadata.namespace === namespace && r.metadata.name === obj.metadata.name) && r.spec?.hostname === host && (r.spec?.pathPrefix ?? '/') === path);
  if (clash) {
    lines.push({ kind: 'Route', name: obj.metadata.name, action: 'Conflict', message: `Route ${clash.metadata.namespace}/${clash.metadata.name} already serves ${host}${path}; the older Route keeps it (Conflict)` });
  }
  lines.push({ kind: 'HTTPRoute', name: obj.metadata.name, action: 'Waiting', message: 'created with the gateway\'s policy objects (auth, rate limit) once the hostname is accepted' });
  return lines;
}

/** `kubectl apply --server-side` applies as field manager "kubectl": the dry run does the same unless told otherwise. */
export async function plan(t: Target, file: string, fieldManager = 'kubectl'): Promise<ObjectPlan[]> {
  const out: ObjectPlan[] = [];
  for (const raw of readManifests(file)) {
    if (raw.apiVersion !== API_VERSION || (raw.kind !== 'Service' && raw.kind !== 'Route')) {
      throw new UsageError(`plan handles ${API_VERSION} Service and Route objects; got ${raw.apiVersion ?? '?'} ${raw.kind ?? '?'}${raw.metadata?.name ? ` ${raw.metadata.name}` : ''}`);
    }
    if (!raw.metadata?.name) throw new UsageError(`${raw.kind} without metadata.name`);
    const namespace = raw.metadata.namespace ?? t.namespace;
    const obj: KubeObject = { ...raw, metadata: { ...raw.metadata, namespace } };
    const type = resourceTypes[raw.kind as 'Service' | 'Route'];
    const current = await t.kube.get(type.apiVersion, type.kind, namespace, obj.metadata.name);
    const { line, result } = await dryRun(t.kube, obj, current, fieldManager);
    // The applied spec has the CRD defaults in it; if the dry run failed, the file's spec is the best guess.
    const spec = result?.spec ?? obj.spec;
    const children = raw.kind === 'Service'
      ? await childLines(t.kube, namespace, current, serviceChildren(obj.metadata.name, spec))
      : await routeChecks(t.kube, namespace, obj, spec);
    const p: ObjectPlan = { kind: raw.kind, namespace, name: obj.metadata.name, object: line, children };
    if (current?.metadata.annotations?.[PLAN_ANNOTATION] === 'true' || current?.spec?.suspend) {
      if (current.status?.plan && current.status.observedGeneration === current.metadata.generation) p.operatorPlan = current.status.plan;
    }
    out.push(p);
  }
  return out;
}

export function renderPlan(plans: ObjectPlan[], st: Style): string {
  const paint = (a: Action) => (a === 'Conflict' || a === 'Refused' || a === 'Delete' ? st.bad(a) : a === 'Unchanged' || a === 'Exists' ? st.dim(a) : st.good(a));
  const row = (l: PlanLine) => [l.kind, l.name, paint(l.action), oneLine([l.fields?.join(', '), l.message].filter(Boolean).join(' — '), 200)];
  const out: string[] = [];
  for (const p of plans) {
    out.push(st.bold(`${p.kind} ${p.namespace}/${p.name}`));
    out.push(table(['KIND', 'NAME', 'ACTION', 'DETAIL'], [row(p.object), ...p.children.map(row)]));
    if (p.operatorPlan) {
      out.push(`operator's plan mode (its own dry run of every child): ${p.operatorPlan.summary}`);
      out.push(table(['KIND', 'NAME', 'ACTION', 'DETAIL'], p.operatorPlan.changes.map(row)));
    }
    out.push('');
  }
  out.push(st.dim([
    'Nothing was written: the object went through a server-side dry-run apply (admission, defaults, schema and CEL',
    'validation ran; nothing stored), the children above were looked up, not created. Applying for real: kubectl apply',
    '--server-side -f <file>. For the operator\'s own dry run of every child, apply with the annotation',
    'familyhub.dev/plan: "true" and run `kubectl familyhub status fhsvc/<name>`.',
  ].join('\n')));
  return out.join('\n');
}
