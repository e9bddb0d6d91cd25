// `doctor`: checks a cluster for what the operator needs and says what to
// fix. Exit code 1 when any check fails.
//  - every CRD installed, Established, and the same as the CRDs this CLI was
//    built with (a hash of names, scope and each version's schema, printer
//    columns, subresources and selectable fields);
//  - an operator leader: the Lease has a holder whose renewTime is within
//    its lease duration;
//  - no admission webhook intercepts familyhub.dev objects (the operator
//    needs none; validation is in the CRD schemas, so a leftover webhook can
//    only block or change applies);
//  - every FamilyHub Ready for its current generation, else each failing
//    dependency condition with its message.
import { createHash } from 'node:crypto';
import { canonical } from '../core/canonical.js';
import { KubeApiError, isMissingResourceType, type KubeClient } from '../core/kube-client.js';
import type { KubeObject } from '../core/reconciler.js';
import { registerResource } from '../core/resources.js';
import { API_VERSION, CRD_GROUP } from '../core/constants.js';
import { buildCrds, type CustomResourceDefinition } from '../crds/to-crd.js';
import type { Target } from './kube.js';
import { oneLine, type ConditionLike, type Style } from './output.js';

export interface Check {
  area: 'crds' | 'leader' | 'webhooks' | 'familyhub';
  subject: string;
  ok: boolean;
  /** A warning does not fail the run. */
  warning?: boolean;
  message: string;
  fix?: string;
}

const LEASE_NAME = 'familyhub-operator';
const VWC = registerResource({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', plural: 'validatingwebhookconfigurations', namespaced: false });
const MWC = registerResource({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', plural: 'mutatingwebhookconfigurations', namespaced: false });

/** What makes two CRDs serve the same API; the apiserver's own additions (status, conversion defaults) are left out. */
export function crdSchemaHash(crd: { spec: Record<string, any> }): string {
  const s = crd.spec;
  const versions = [...(s.versions ?? [])]
    .sort((a, b) => String(a.name).localeCompare(String(b.name)))
    .map((v: any) => ({
      name: v.name, served: v.served, storage: v.storage, schema: v.schema ?? null,
      subresources: v.subresources ?? null, additionalPrinterColumns: v.additionalPrinterColumns ?? [], selectableFields: v.selectableFields ?? [],
    }));
  const names = { kind: s.names?.kind, plural: s.names?.plural, singular: s.names?.singular, shortNames: s.names?.shortNames ?? [], categories: s.names?.categories ?? [] };
  return createHash('sha256').update(canonical({ group: s.group, scope: s.scope, names, versions })).digest('hex').slice(0, 16);
}

async function checkCrds(kube: KubeClient, expected: CustomResourceDefinition[]): Promise<Check[]> {
  const out: Check[] = [];
  for (const want of expected) {
    const name = want.metadata.name;
    let got: KubeObject | undefined;
    try {
      got = await kube.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, name);
    } catch (e) {
      out.push({ area: 'crds', subject: name, ok: false, message: `cannot read CRD: ${(e as Error).message}`, fix: 'run doctor with rights to get customresourcedefinitions' });
      continue;
    }
    if (!got) {
      out.push({ area: 'crds', subject: name, ok: false, message: 'not installed', fix: 'install the CRDs: kubectl apply --server-side -f config/crd (or the Helm chart with CRDs enabled)' });
      continue;
    }
    const established = (got.status?.conditions as ConditionLike[] | undefined)?.find((c) => c.type === 'Established');
    if (established?.status !== 'True') {
      out.push({ area: 'crds', subject: name, ok: false, message: `not Established: ${established?.reason ?? 'no condition'} ${established?.message ?? ''}`.trim(), fix: 'see kubectl describe crd ' + name });
      continue;
    }
    const [h1, h2] = [crdSchemaHash(got as unknown as { spec: Record<string, any> }), crdSchemaHash(want as unknown as { spec: Record<string, any> })];
    out.push(h1 === h2
      ? { area: 'crds', subject: name, ok: true, message: `installed and current (schema ${h1})` }
      : { area: 'crds', subject: name, ok: false, message: `installed but differs from this version's CRD (installed schema ${h1}, expected ${h2})`, fix: 're-apply the CRDs of this release: kubectl apply --server-side -f config/crd (a CLI older than the operator reports this too: use the matching CLI)' });
  }
  return out;
}

async function findLease(kube: KubeClient, namespace?: string): Promise<{ lease?: KubeObject; where: string; error?: string }> {
  if (namespace) return { lease: await kube.get('coordination.k8s.io/v1', 'Lease', namespace, LEASE_NAME), where: namespace };
  try {
    const all = await kube.list('coordination.k8s.io/v1', 'Lease', undefined, { fieldSelector: `metadata.name=${LEASE_NAME}` });
    const lease = all.items.sort((a, b) => Date.parse(b.spec?.renewTime ?? '') - Date.parse(a.spec?.renewTime ?? ''))[0];
    return { lease, where: 'any namespace' };
  } catch (e) {
    if (!(e instanceof KubeApiError && e.statusCode === 403)) throw e;
    // Not allowed cluster-wide: the chart's default namespace.
    return { lease: await kube.get('coordination.k8s.io/v1', 'Lease', 'familyhub-system', LEASE_NAME), where: 'familyhub-system' };
  }
}

async function checkLeader(kube: KubeClient, namespace: string | undefined, now: number): Promise<Check> {
  const { lease, where } = await findLease(kube, namespace);
  const subject = lease ? `Lease ${lease.metadata.namespace}/${LEASE_NAME}` : `Lease ${LEASE_NAME}`;
  if (!lease) {
    return { area: 'leader', subject, ok: false, message: `no Lease ${LEASE_NAME} in ${where}: the operator has never run with leader election here`, fix: 'install or start the operator (helm install familyhub-operator charts/familyhub-operator); if it runs in another namespace, pass --lease-namespace' };
  }
  const holder = lease.spec?.holderIdentity as string | undefined;
  if (!holder) {
    return { area: 'leader', subject, ok: false, message: 'no leader: the Lease has no holder (the last leader released it on shutdown)', fix: 'start the operator: kubectl -n ' + lease.metadata.namespace + ' get pods; check that its Deployment has ready replicas' };
  }
  const durationMs = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
  const renewed = Date.parse(lease.spec?.renewTime ?? lease.spec?.acquireTime ?? '');
  const ago = now - renewed;
  // Clocks differ between machines: allow one retry period of slack beyond the lease.
  if (!Number.isFinite(renewed) || ago > durationMs + 5000) {
    return { area: 'leader', subject, ok: false, message: `leader ${holder} last renewed ${Number.isFinite(ago) ? `${Math.round(ago / 1000)}s` : 'never'} ago, lease ${durationMs / 1000}s: the leader is gone or cannot reach the apiserver`, fix: `check the operator's pods and logs (kubectl -n ${lease.metadata.namespace} logs deploy/familyhub-operator); a standby takes over once the lease expires` };
  }
  return { area: 'leader', subject, ok: true, message: `leader ${holder}, renewed ${(Math.max(0, ago) / 1000).toFixed(1)}s ago (lease ${durationMs / 1000}s)` };
}

function targetsUs(rules: Array<{ apiGroups?: string[] }> | undefined): 'explicit' | 'wildcard' | undefined {
  let wildcard = false;
  for (const r of rules ?? []) {
    if (r.apiGroups?.includes(CRD_GROUP)) return 'explicit';
    if (r.apiGroups?.includes('*')) wildcard = true;
  }
  return wildcard ? 'wildcard' : undefined;
}

async function checkWebhooks(kube: KubeClient): Promise<Check[]> {
  const out: Check[] = [];
  for (const t of [VWC, MWC]) {
    let items: KubeObject[];
    try {
      items = (await kube.list(t.apiVersion, t.kind)).items;
    } catch (e) {
      if (isMissingResourceType(e)) continue;
      out.push({ area: 'webhooks', subject: t.plural, ok: true, warning: true, message: `cannot list ${t.plural}: ${(e as Error).message}` });
      continue;
    }
    for (const cfg of items) {
      for (const w of (cfg.webhooks ?? []) as Array<{ name: string; rules?: Array<{ apiGroups?: string[] }>; failurePolicy?: string }>) {
        const hit = targetsUs(w.rules);
        if (!hit) continue;
        const blocking = (w.failurePolicy ?? 'Fail') === 'Fail';
        out.push({
          area: 'webhooks', subject: `${t.kind} ${cfg.metadata.name} (${w.name})`, ok: hit !== 'explicit', warning: hit === 'wildcard',
          message: `${hit === 'explicit' ? `intercepts ${CRD_GROUP} objects` : 'matches every API group, familyhub.dev included'}${blocking ? ' with failurePolicy Fail: applies fail while it is unreachable' : ''}`,
          fix: hit === 'explicit' ? `the operator needs no webhook; remove it if it is left over: kubectl delete ${t.plural.replace(/s$/, '')} ${cfg.metadata.name}` : undefined,
        });
      }
    }
  }
  if (!out.some((c) => !c.ok || c.warning)) out.push({ area: 'webhooks', subject: 'admission', ok: true, message: `no admission webhook intercepts ${CRD_GROUP} objects (none is needed: validation is in the CRD schemas)` });
  return out;
}

const HINTS: Record<string, string> = {
  PostgresReady: 'check spec.postgres (host, port, database, sslMode) and the admin credentials Secret it names; the message says which',
  VaultReady: 'check spec.vault (address, auth method) and its token/role; the message says which',
  IdentityReady: 'check spec.identity (issuerUrl reachable from the operator, admin/initial-access credentials Secret)',
  RedisReady: 'check spec.redis (address, password Secret)',
  GatewayReady: 'check spec.gateway: the Gateway and GatewayClass exist and the gateway controller runs',
};

async function checkHubs(t: Target, allNamespaces: boolean): Promise<Check[]> {
  let hubs: KubeObject[];
  try {
    hubs = (await t.kube.list(API_VERSION, 'FamilyHub', allNamespaces ? undefined : t.namespace)).items;
  } catch (e) {
    if (isMissingResourceType(e)) return []; // the CRD check already says so
    if (allNamespaces && e instanceof KubeApiError && e.statusCode === 403) return checkHubs(t, false);
    throw e;
  }
  if (!hubs.length) return [{ area: 'familyhub', subject: 'FamilyHub', ok: true, warning: true, message: `no FamilyHub ${allNamespaces ? 'in any namespace' : `in ${t.namespace}`}`, fix: 'create one: kubectl apply -f config/samples/familyhub.yaml' }];
  const out: Check[] = [];
  for (const h of hubs) {
    const subject = `FamilyHub ${h.metadata.namespace}/${h.metadata.name}`;
    const conds = (h.status?.conditions ?? []) as ConditionLike[];
    const ready = conds.find((c) => c.type === 'Ready');
    const observed = h.status?.observedGeneration;
    if (observed === undefined || observed < (h.metadata.generation ?? 0)) {
      out.push({ area: 'familyhub', subject, ok: false, message: `generation ${h.metadata.generation} not reconciled yet (observed ${observed ?? 'never'})`, fix: 'is the operator running? (see the leader check)' });
      continue;
    }
    if (ready?.status === 'True') {
      out.push({ area: 'familyhub', subject, ok: true, message: `Ready: ${conds.filter((c) => c.type.endsWith('Ready') && c.type !== 'Ready').map((c) => c.type).join(', ') || 'no dependencies'} reachable` });
      continue;
    }
    const failing = conds.filter((c) => !['Ready', 'Reconciling', 'Degraded', 'Stalled'].includes(c.type) && c.status !== 'True');
    if (!failing.length) out.push({ area: 'familyhub', subject, ok: false, message: `Ready=${ready?.status ?? 'Unknown'} ${ready?.reason ?? ''}: ${oneLine(ready?.message ?? '')}`.trim() });
    for (const c of failing) {
      out.push({ area: 'familyhub', subject: `${subject} ${c.type}`, ok: false, message: `${c.status} ${c.reason ?? ''}: ${oneLine(c.message ?? '', 300)}`, fix: HINTS[c.type] });
    }
  }
  return out;
}

export async function doctor(t: Target, opts: { allNamespaces: boolean; leaseNamespace?: string; now?: number }): Promise<Check[]> {
  const [crds, leader, webhooks] = await Promise.all([
    checkCrds(t.kube, buildCrds()),
    checkLeader(t.kube, opts.leaseNamespace, opts.now ?? Date.now()),
    checkWebhooks(t.kube),
  ]);
  return [...crds, leader, ...webhooks, ...(await checkHubs(t, opts.allNamespaces))];
}

export const failed = (checks: Check[]) => checks.some((c) => !c.ok && !c.warning);

export function renderDoctor(checks: Check[], st: Style): string {
  const lines: string[] = [];
  for (const c of checks) {
    const mark = !c.ok && !c.warning ? st.bad('FAIL') : c.warning ? st.warn('warn') : st.good('ok  ');
    lines.push(`${mark}  ${c.area.padEnd(9)} ${c.subject}: ${c.message}`);
    if (c.fix && (!c.ok || c.warning)) lines.push(`      ${' '.repeat(9)} fix: ${c.fix}`);
  }
  const bad = checks.filter((c) => !c.ok && !c.warning).length;
  lines.push('', bad ? st.bad(`${bad} problem${bad === 1 ? '' : 's'} found`) : st.good('no problems found'));
  return lines.join('\n');
}
