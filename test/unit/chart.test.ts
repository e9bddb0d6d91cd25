// The Helm chart without a cluster: the generated values schema and
// dashboard are current, every value is documented, and the project-built
// helm lints and renders the chart, refuses wrong values by name, and every
// alert and dashboard query names a metric that really exists.
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, parse } from 'yaml';
import { z } from 'zod';
import { beforeAll, describe, expect, it } from 'vitest';
import { chartDashboard, chartDir, chartValuesSchema as schemaFile } from '../../scripts/generate-crds.js';
import { dashboard, dashboardMetricNames, metricNamesIn, renderDashboard } from '../../scripts/chart-dashboard.js';
import { chartValuesSchema, renderValuesSchema } from '../../scripts/chart-values.js';
import { runtimeServiceOf } from '../../src/controllers/familyhub/runtime.js';
import { registry } from '../../src/core/metrics.js';
import { familyHubSpecSchema } from '../../src/crds/index.js';
import { POD_LABELS_FROM_SERVICE, RUNTIME_SERVICE_LABEL } from '../../src/platform/runtime.js';
import '../../src/idp/metrics.js';
import { prebuilt } from '../support/prebuilt.js';
import { nodeTool } from '../support/tools.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const repo = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

let helm: string;
const helmEnv = () => ({ ...process.env, HELM_CACHE_HOME: '/tmp/fh-helm-unit', HELM_CONFIG_HOME: '/tmp/fh-helm-unit', HELM_DATA_HOME: '/tmp/fh-helm-unit' });

async function template(...args: string[]): Promise<Obj[]> {
  const { stdout } = await run(helm, ['template', 'familyhub', chartDir, '-n', 'familyhub-system', ...args], { env: helmEnv(), maxBuffer: 32 * 1024 * 1024 });
  return parseAllDocuments(stdout).map((d) => d.toJS() as Obj).filter(Boolean);
}

/** helm's error text for values it refuses; fails the test if helm accepts them. */
async function refused(...args: string[]): Promise<string> {
  try {
    await template(...args);
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
  throw new Error(`helm template accepted ${args.join(' ')}`);
}

const runtimeHub = {
  apiVersion: 'familyhub.dev/v1alpha1', kind: 'FamilyHub', metadata: { name: 'home', namespace: 'family' },
  spec: familyHubSpecSchema.parse({
    domain: 'family.test', allowedEmailDomains: ['family.test'],
    postgres: { host: 'pg', database: 'fh', adminCredentialsSecretRef: { name: 'pg' } },
    identity: { kind: 'oidc-dcr', issuerUrl: 'https://id.family.test' },
    runtime: { image: 'rt:1' },
  }),
};

const byKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
const one = (objs: Obj[], kind: string) => {
  const found = byKind(objs, kind);
  expect(found, kind).toHaveLength(1);
  return found[0]!;
};

const ALL_ON = [
  '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.prometheusRule.enabled=true', '--set', 'metrics.runtimePodMonitor.enabled=true',
  '--set', 'metrics.grafanaDashboard.enabled=true', '--set', 'networkPolicy.enabled=true',
];

beforeAll(() => {
  // Cached after the first build (hack/test.sh builds it in the background first).
  helm = nodeTool('helm');
}, 900_000);

describe('generated chart files', () => {
  it('values.schema.json is generated from scripts/chart-values.ts', () => {
    expect(readFileSync(schemaFile, 'utf8'), 'values.schema.json is out of date: run `npm run generate`').toBe(renderValuesSchema());
  });

  it('the dashboard is generated from scripts/chart-dashboard.ts', () => {
    expect(readFileSync(chartDashboard, 'utf8'), 'dashboards/familyhub-operator.json is out of date: run `npm run generate`').toBe(renderDashboard());
  });
});

/** Paths of values.yaml keys whose zod node is a value (not a strict object of further values). */
function valuePaths(schema: z.ZodTypeAny, at = ''): string[] {
  const inner = schema instanceof z.ZodOptional ? schema.unwrap() : schema;
  if (!(inner instanceof z.ZodObject)) return [at];
  return Object.entries(inner.shape as Record<string, z.ZodTypeAny>)
    .filter(([k]) => k !== 'global')
    .flatMap(([k, v]) => valuePaths(v, at ? `${at}.${k}` : k));
}

describe('values.yaml', () => {
  const text = readFileSync(path.join(chartDir, 'values.yaml'), 'utf8');
  const values = parse(text);

  it('parses with the values schema (defaults are valid)', () => {
    const r = chartValuesSchema.safeParse(values);
    expect(r.success, r.success ? '' : JSON.stringify(r.error.issues)).toBe(true);
  });

  it('documents every value with a "# --" comment right above it, and has no value the schema lacks', () => {
    const lines = text.split('\n');
    const stack: Array<{ indent: number; key: string }> = [];
    const seen = new Map<string, number>();
    lines.forEach((line, i) => {
      const m = /^(\s*)([A-Za-z_][\w]*):/.exec(line);
      if (!m) return;
      const indent = m[1]!.length;
      while (stack.length && stack.at(-1)!.indent >= indent) stack.pop();
      stack.push({ indent, key: m[2]! });
      seen.set(stack.map((s) => s.key).join('.'), i);
    });
    const wanted = valuePaths(chartValuesSchema);
    const undocumented: string[] = [];
    for (const p of wanted) {
      const i = seen.get(p);
      expect(i, `${p} is in the schema but not in values.yaml`).toBeDefined();
      let j = i! - 1;
      const block: string[] = [];
      while (j >= 0 && lines[j]!.trim().startsWith('#')) block.unshift(lines[j--]!.trim());
      if (!block.some((l) => l.startsWith('# --'))) undocumented.push(p);
    }
    expect(undocumented).toEqual([]);
    // Nothing in values.yaml outside the schema (a typo there would be refused by helm anyway).
    const top = Object.keys(values);
    expect(top.filter((k) => !(k in chartValuesSchema.shape))).toEqual([]);
  });
});

describe('helm lint and template (project-built helm)', () => {
  it('lints cleanly with the defaults and with every toggle on', async () => {
    await run(helm, ['lint', '--strict', chartDir], { env: helmEnv() });
    await run(helm, ['lint', '--strict', chartDir, ...ALL_ON], { env: helmEnv() });
  });

  it('renders the CRDs with helm.sh/resource-policy: keep by default, without it for crds.keep=false, none for crds.enabled=false', async () => {
    const crds = byKind(await template(), 'CustomResourceDefinition');
    expect(crds.map((c) => c.metadata.name).sort()).toEqual(['databaseclaims.familyhub.dev', 'familyhubs.familyhub.dev', 'oidcclients.familyhub.dev', 'routes.familyhub.dev', 'services.familyhub.dev']);
    for (const c of crds) expect(c.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
    // The chart's copy is config/crd's, object for object.
    for (const c of crds) {
      const file = readdirSync(path.join(repo, 'config/crd')).find((f) => f.endsWith(`_${c.spec.names.plural}.yaml`))!;
      const { metadata: { annotations: _a, ...meta }, ...rest } = c;
      expect({ ...rest, metadata: meta }).toEqual(parse(readFileSync(path.join(repo, 'config/crd', file), 'utf8')));
    }
    for (const c of byKind(await template('--set', 'crds.keep=false'), 'CustomResourceDefinition')) expect(c.metadata.annotations).toBeUndefined();
    expect(byKind(await template('--set', 'crds.enabled=false'), 'CustomResourceDefinition')).toEqual([]);
  });

  it('renders by default: Deployment under the restricted Pod Security profile, spread over nodes, a PDB, the metrics Service; no monitoring objects', async () => {
    const objs = await template();
    expect(objs.map((o) => o.kind).filter((k) => k !== 'CustomResourceDefinition').sort()).toEqual(
      ['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Service', 'ServiceAccount'],
    );
    const pod = one(objs, 'Deployment').spec.template.spec;
    // The restricted profile's checks (pod-security.kubernetes.io/enforce: restricted).
    expect(pod.securityContext).toEqual({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.containers[0].securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(pod.topologySpreadConstraints).toEqual([{
      maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway',
      labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'familyhub-operator' } },
    }]);
    expect(one(objs, 'PodDisruptionBudget').spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: { 'app.kubernetes.io/name': 'familyhub-operator' } } });
    expect(one(objs, 'Service').spec.ports).toEqual([{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }]);
  });

  it('the leader-election Role has exactly the rules of config/rbac', async () => {
    const role = one(await template(), 'Role');
    const source = parseAllDocuments(readFileSync(path.join(repo, 'config/rbac/leader_election_role.yaml'), 'utf8')).map((d) => d.toJS() as Obj).find((o) => o.kind === 'Role')!;
    expect(role.rules).toEqual(source.rules);
  });

  it('renders the runtime PodMonitor: runtime pods by their familyhub.dev/runtime-service label, in every namespace or the ones listed', async () => {
    const pm = one(await template('--set', 'metrics.runtimePodMonitor.enabled=true', '--set', 'metrics.runtimePodMonitor.labels.release=kps'), 'PodMonitor');
    expect(pm.metadata.labels?.release).toBe('kps');
    expect(pm.spec.selector).toEqual({ matchExpressions: [{ key: RUNTIME_SERVICE_LABEL, operator: 'Exists' }] });
    // The FamilyHub puts that label on its runtime Services, and the Service controller on their pods.
    expect(POD_LABELS_FROM_SERVICE).toContain(RUNTIME_SERVICE_LABEL);
    expect(Object.keys(runtimeServiceOf(runtimeHub, 'audit').metadata.labels ?? {})).toContain(RUNTIME_SERVICE_LABEL);
    expect(pm.spec.namespaceSelector).toEqual({ any: true });
    // The pods' container port is named http (src/controllers/service/desired.ts), /metrics on it.
    expect(pm.spec.podMetricsEndpoints).toMatchObject([{ port: 'http', path: '/metrics', interval: '30s', scrapeTimeout: '10s' }]);
    const listed = one(await template('--set', 'metrics.runtimePodMonitor.enabled=true', '--set-json', 'metrics.runtimePodMonitor.namespaces=["family","kids"]'), 'PodMonitor');
    expect(listed.spec.namespaceSelector).toEqual({ matchNames: ['family', 'kids'] });
    expect(byKind(await template(), 'PodMonitor')).toEqual([]);
  });

  it('renders the ServiceMonitor, PrometheusRule, dashboard ConfigMap and NetworkPolicy when enabled', async () => {
    const objs = await template(...ALL_ON, '--set', 'metrics.serviceMonitor.labels.release=kps', '--set-json', 'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]');
    const sm = one(objs, 'ServiceMonitor');
    expect(sm.metadata.labels?.release).toBe('kps');
    const svc = one(objs, 'Service');
    // The ServiceMonitor selects the metrics Service of this release, in its namespace.
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels as Record<string, string>)) expect(svc.metadata.labels?.[k]).toBe(v);
    expect(sm.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', honorLabels: true, interval: '30s', scrapeTimeout: '10s' }]);

    const rule = one(objs, 'PrometheusRule');
    const alerts = (rule.spec.groups as Array<{ rules: Array<{ alert: string; expr: string; for: string }> }>).flatMap((g) => g.rules);
    expect(alerts.map((a) => a.alert).sort()).toEqual([
      'FamilyHubAuditConsumerLag', 'FamilyHubCredentialsExpiring', 'FamilyHubCredentialsRotationOverdue', 'FamilyHubObjectDegraded',
      'FamilyHubOperatorDown', 'FamilyHubOperatorNoLeader', 'FamilyHubReconcileErrorsRising', 'FamilyHubWorkqueueBacklog',
    ]);
    expect(alerts.find((a) => a.alert === 'FamilyHubObjectDegraded')!.for).toBe('15m');
    // Prometheus' own template placeholders reach the rule unrendered by helm.
    expect(JSON.stringify(rule)).toContain('{{ $labels.namespace }}/{{ $labels.name }}');

    const cm = one(objs, 'ConfigMap');
    expect(cm.metadata.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse(cm.data['familyhub-operator.json'])).toEqual(dashboard());

    const np = one(objs, 'NetworkPolicy');
    expect(np.spec.policyTypes).toEqual(['Ingress']);
    expect(np.spec.ingress).toEqual([{ ports: [{ port: 'metrics', protocol: 'TCP' }], from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }] }]);
  });

  it('a helm upgrade that changes a setting changes the pod template (so the pods roll)', async () => {
    const env = async (...args: string[]) => (one(await template(...args), 'Deployment').spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>);
    expect((await env()).find((e) => e.name === 'LOG_LEVEL')?.value).toBe('info');
    expect((await env('--set', 'logLevel=debug')).find((e) => e.name === 'LOG_LEVEL')?.value).toBe('debug');
    expect((await env('--set-json', 'extraEnv=[{"name":"FAMILYHUB_CONCURRENCY","value":"16"}]')).find((e) => e.name === 'FAMILYHUB_CONCURRENCY')?.value).toBe('16');
  });

  it.each([
    [['--set', 'logLevel=verbose'], 'logLevel'],
    [['--set', 'replicaCount=0'], 'replicaCount'],
    [['--set', 'resyncPeriod=ten minutes'], 'resyncPeriod'],
    // The old boolean form of the toggle.
    [['--set', 'metrics.serviceMonitor=true'], 'metrics/serviceMonitor'],
    [['--set', 'metrcs.port=9090'], 'metrcs'],
    [['--set', 'image.pullPolicy=Sometimes'], 'image/pullPolicy'],
    [['--set', 'podDisruptionBudget.maxUnavailable=half'], 'podDisruptionBudget/maxUnavailable'],
  ])('refuses %j naming %s', async (args, field) => {
    const err = await refused(...args);
    expect(err).toMatch(/values don't meet the specifications of the schema/);
    expect(err).toContain(field);
  });
});

describe('metric names in alerts and the dashboard', () => {
  /** Metrics the operator registers, and the ones the runtime services register (by their source). */
  async function knownMetrics(): Promise<Set<string>> {
    const names = new Set<string>(['up']);
    for (const m of (await registry.metrics()).matchAll(/^# TYPE (\S+) /gm)) names.add(m[1]!);
    const runtimeSources = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? runtimeSources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
    for (const f of runtimeSources(path.join(repo, 'src/runtime-services'))) {
      for (const m of readFileSync(f, 'utf8').matchAll(/new (?:Counter|Gauge|Histogram|client\.\w+)\(\{\s*name: '([a-z_]+)'/g)) names.add(m[1]!);
    }
    return names;
  }

  it('every alert expression uses metrics that exist', async () => {
    const known = await knownMetrics();
    const rule = one(await template('--set', 'metrics.prometheusRule.enabled=true'), 'PrometheusRule');
    const used = (rule.spec.groups as Array<{ rules: Array<{ expr: string }> }>).flatMap((g) => g.rules.flatMap((r) => metricNamesIn(r.expr)));
    expect(used).toEqual(expect.arrayContaining(['familyhub_object_ready', 'familyhub_credentials_expiry_timestamp_seconds', 'familyhub_leader_election_status', 'audit_stream_pending_entries']));
    expect([...new Set(used)].filter((n) => !known.has(n))).toEqual([]);
  });

  it('every dashboard query uses metrics that exist', async () => {
    const known = await knownMetrics();
    const used = dashboardMetricNames();
    expect(used.length).toBeGreaterThan(15);
    expect(used).toEqual(expect.arrayContaining(['familyhub_object_ready', 'familyhub_credentials_expiry_timestamp_seconds', 'audit_stream_pending_entries', 'runtime_http_requests_total']));
    expect(used.filter((n) => !known.has(n))).toEqual([]);
  });
});
