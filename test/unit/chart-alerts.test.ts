// The chart's alerts evaluated by Prometheus' own rule engine: the
// PrometheusRule rendered by the project-built helm, checked with
// `promtool check rules` and unit-tested with `promtool test rules`
// (hack/go/promtool, built from github.com/prometheus/prometheus): every
// alert fires on series that should make it fire, with the labels and the
// rendered annotations a receiver gets, and stays silent on series that
// should not.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { chartDir } from '../../scripts/generate-crds.js';
import { prebuilt } from '../support/prebuilt.js';
import { goTool, nodeTool } from '../support/tools.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const run = promisify(execFile);
const NS = 'familyhub-system';
const JOB = 'job="familyhub-operator-metrics"';

type Series = { series: string; values: string };
interface AlertCase {
  alert: string;
  what: string;
  series: Series[];
  /** when the alert is looked at, e.g. "20m" */
  at: string;
  /** the firing alert's labels besides alertname (severity included) and rendered annotations; absent: must not fire */
  fires?: { labels: Record<string, string>; annotations: Record<string, string> };
}

const op = (metric: string, labels = '') => `${metric}{${JOB}${labels ? `, ${labels}` : ''}}`;
const object = (kind: string, name: string) => `kind="${kind}", namespace="family", name="${name}"`;

const CASES: AlertCase[] = [
  {
    alert: 'FamilyHubOperatorDown', what: 'the only replica is scraped but down', at: '10m',
    series: [{ series: op('up', 'instance="10.88.0.5:8080"'), values: '0x15' }],
    fires: {
      labels: { severity: 'critical' },
      annotations: { summary: `No FamilyHub operator replica in ${NS} is being scraped successfully.`, description: 'Nothing reconciles familyhub.dev objects; credentials are neither renewed nor rotated.' },
    },
  },
  {
    alert: 'FamilyHubOperatorDown', what: 'no operator target at all (only another job)', at: '10m',
    series: [{ series: 'up{job="node-exporter", instance="10.88.0.9:9100"}', values: '1x15' }],
    fires: {
      labels: { severity: 'critical' },
      annotations: { summary: `No FamilyHub operator replica in ${NS} is being scraped successfully.`, description: 'Nothing reconciles familyhub.dev objects; credentials are neither renewed nor rotated.' },
    },
  },
  {
    alert: 'FamilyHubOperatorDown', what: 'one of two replicas down', at: '10m',
    series: [{ series: op('up', 'instance="10.88.0.5:8080"'), values: '1x15' }, { series: op('up', 'instance="10.88.0.6:8080"'), values: '0x15' }],
  },
  {
    alert: 'FamilyHubOperatorNoLeader', what: 'two replicas up, neither holds the lease', at: '5m',
    series: [{ series: op('familyhub_leader_election_status', 'pod="op-a"'), values: '0x10' }, { series: op('familyhub_leader_election_status', 'pod="op-b"'), values: '0x10' }],
    fires: {
      labels: { severity: 'critical' },
      annotations: { summary: 'FamilyHub operator replicas are running but none holds the leader lease.', description: `Standbys reconcile nothing; check the Lease familyhub-operator in ${NS} and the replicas' logs.` },
    },
  },
  {
    alert: 'FamilyHubOperatorNoLeader', what: 'a hand-over that takes a minute', at: '5m',
    series: [{ series: op('familyhub_leader_election_status', 'pod="op-a"'), values: '1 0 1x8' }, { series: op('familyhub_leader_election_status', 'pod="op-b"'), values: '0 0 0x8' }],
  },
  {
    alert: 'FamilyHubReconcileErrorsRising', what: 'a third of the reconciles fail, 15 errors in 15 minutes', at: '40m',
    series: [
      { series: op('familyhub_reconcile_total', 'controller="databaseclaim", result="error"'), values: '0+1x60' },
      { series: op('familyhub_reconcile_total', 'controller="databaseclaim", result="success"'), values: '0+2x60' },
      { series: op('familyhub_reconcile_total', 'controller="route", result="success"'), values: '0+5x60' },
    ],
    fires: {
      labels: { controller: 'databaseclaim', severity: 'warning' },
      annotations: { summary: 'More than 20% of the databaseclaim controller\'s reconciles fail.', description: 'kubectl get familyhub-all -A shows which objects are not Ready and why (Reason column with -o wide).' },
    },
  },
  {
    alert: 'FamilyHubReconcileErrorsRising', what: 'errors, but under a tenth of the reconciles', at: '40m',
    series: [
      { series: op('familyhub_reconcile_total', 'controller="databaseclaim", result="error"'), values: '0+1x60' },
      { series: op('familyhub_reconcile_total', 'controller="databaseclaim", result="success"'), values: '0+10x60' },
    ],
  },
  {
    alert: 'FamilyHubReconcileErrorsRising', what: 'every reconcile fails, but only three in 15 minutes', at: '40m',
    series: [{ series: op('familyhub_reconcile_total', 'controller="oidcclient", result="error"'), values: '0+0.2x60' }],
  },
  {
    alert: 'FamilyHubObjectDegraded', what: 'a DatabaseClaim not Ready for 20 minutes', at: '20m',
    series: [
      { series: op('familyhub_object_ready', `${object('DatabaseClaim', 'photos')}, condition="True"`), values: '0x30' },
      { series: op('familyhub_object_ready', `${object('DatabaseClaim', 'photos')}, condition="False"`), values: '1x30' },
      { series: op('familyhub_object_suspended', object('DatabaseClaim', 'photos')), values: '0x30' },
    ],
    fires: {
      labels: { kind: 'DatabaseClaim', namespace: 'family', name: 'photos', severity: 'warning' },
      annotations: { summary: 'DatabaseClaim family/photos has not been Ready for 15m.', description: 'kubectl -n family describe databaseclaim.familyhub.dev photos shows the failing condition.' },
    },
  },
  {
    alert: 'FamilyHubObjectDegraded', what: 'not Ready for 10 minutes, then Ready', at: '20m',
    series: [{ series: op('familyhub_object_ready', `${object('Route', 'photos')}, condition="True"`), values: '0x9 1x20' }],
  },
  {
    alert: 'FamilyHubObjectDegraded', what: 'a Service in plan mode: not Ready on purpose', at: '20m',
    series: [
      { series: op('familyhub_object_ready', `${object('Service', 'planned')}, condition="True"`), values: '0x30' },
      { series: op('familyhub_object_suspended', object('Service', 'planned')), values: '1x30' },
    ],
  },
  {
    alert: 'FamilyHubCredentialsExpiring', what: 'a lease that is not renewed runs out', at: '12m',
    // Expires at t=900 s; under 600 s left from t=5 min on.
    series: [{ series: op('familyhub_credentials_expiry_timestamp_seconds', object('DatabaseClaim', 'photos')), values: '900x20' }],
    fires: {
      labels: { kind: 'DatabaseClaim', namespace: 'family', name: 'photos', severity: 'critical' },
      annotations: {
        summary: 'DatabaseClaim family/photos: credentials expire in 3m 0s and were not renewed.',
        description: 'Renewal starts at two thirds of a lease; a lease this close to its end means Vault or PostgreSQL refuse the renewal. Apps lose their database logins when it ends.',
      },
    },
  },
  {
    alert: 'FamilyHubCredentialsExpiring', what: 'a lease renewed ahead of its end', at: '20m',
    series: [{ series: op('familyhub_credentials_expiry_timestamp_seconds', object('DatabaseClaim', 'photos')), values: '3600+60x30' }],
  },
  {
    alert: 'FamilyHubCredentialsExpiring', what: 'an OIDCClient\'s rotation time close by (not a lease)', at: '12m',
    series: [{ series: op('familyhub_credentials_expiry_timestamp_seconds', object('OIDCClient', 'photos')), values: '900x20' }],
  },
  {
    alert: 'FamilyHubCredentialsRotationOverdue', what: 'a rotation due at t=0 that never happened', at: '25m',
    series: [{ series: op('familyhub_credentials_expiry_timestamp_seconds', object('OIDCClient', 'photos')), values: '0x40' }],
    fires: {
      labels: { kind: 'OIDCClient', namespace: 'family', name: 'photos', severity: 'warning' },
      annotations: {
        summary: 'OIDCClient family/photos: the client secret is 25m 0s past its rotation.interval.',
        description: 'The operator could not rotate the secret at the identity provider; its Ready condition says why.',
      },
    },
  },
  {
    alert: 'FamilyHubCredentialsRotationOverdue', what: 'rotated ten minutes after it was due', at: '30m',
    series: [{ series: op('familyhub_credentials_expiry_timestamp_seconds', object('OIDCClient', 'photos')), values: '0x10 3600x30' }],
  },
  {
    alert: 'FamilyHubWorkqueueBacklog', what: '150 keys queued for 20 minutes', at: '20m',
    series: [{ series: op('familyhub_workqueue_depth', 'controller="oidcclient"'), values: '150x30' }],
    fires: {
      labels: { controller: 'oidcclient', severity: 'warning' },
      annotations: { summary: 'The oidcclient work queue has held over 100 keys for 15 minutes.', description: 'Reconciles do not keep up (slow external systems or too few workers; see FAMILYHUB_CONCURRENCY).' },
    },
  },
  {
    alert: 'FamilyHubWorkqueueBacklog', what: 'a burst worked off in 5 minutes', at: '20m',
    series: [{ series: op('familyhub_workqueue_depth', 'controller="oidcclient"'), values: '150x5 10x25' }],
  },
  {
    // The runtime's series come from its own pods (the chart's runtime PodMonitor), not the operator's job.
    alert: 'FamilyHubAuditConsumerLag', what: '5000 unacknowledged audit entries for 15 minutes', at: '15m',
    series: [{ series: 'audit_stream_pending_entries{job="family/familyhub-runtime", namespace="family", pod="home-audit-7d9f-abcde"}', values: '5000x20' }],
    fires: {
      labels: { namespace: 'family', pod: 'home-audit-7d9f-abcde', severity: 'warning' },
      annotations: {
        summary: 'Audit consumer family/home-audit-7d9f-abcde holds 5000 delivered but unacknowledged entries.',
        description: 'Audit events are not reaching PostgreSQL; check the audit service\'s readiness and its PostgreSQL connection.',
      },
    },
  },
  {
    alert: 'FamilyHubAuditConsumerLag', what: 'a backlog drained within 4 minutes', at: '15m',
    series: [{ series: 'audit_stream_pending_entries{job="family/familyhub-runtime", namespace="family", pod="home-audit-7d9f-abcde"}', values: '5000 4000 2000 500 0x20' }],
  },
];

let helm: string;
let promtool: string;
let dir: string;
let rulesFile: string;
let alertNames: string[];

/** A promtool unit-test file: one test group per case, so each case's series stand alone. */
function testFile(cases: AlertCase[]): string {
  const file = path.join(dir, `tests-${Date.now()}-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify({
    rule_files: [rulesFile],
    evaluation_interval: '1m',
    tests: cases.map((c) => ({
      name: `${c.alert}: ${c.what}`,
      interval: '1m',
      input_series: c.series,
      alert_rule_test: [{
        eval_time: c.at,
        alertname: c.alert,
        exp_alerts: c.fires ? [{ exp_labels: c.fires.labels, exp_annotations: c.fires.annotations }] : [],
      }],
    })),
  }, { lineWidth: 0 }));
  return file;
}

async function promtoolTest(cases: AlertCase[]): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout, stderr } = await run(promtool, ['test', 'rules', testFile(cases)]);
    return { ok: true, out: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

beforeAll(async () => {
  // Both cached after the first build (hack/test.sh builds them in the background first).
  helm = nodeTool('helm');
  promtool = goTool('promtool');
  dir = mkdtempSync(path.join(tmpdir(), 'chart-alerts-'));
  const { stdout } = await run(helm, ['template', 'familyhub', chartDir, '-n', NS, '--set', 'metrics.prometheusRule.enabled=true', '--show-only', 'templates/prometheusrule.yaml'], {
    env: { ...process.env, HELM_CACHE_HOME: '/tmp/fh-helm-unit', HELM_CONFIG_HOME: '/tmp/fh-helm-unit', HELM_DATA_HOME: '/tmp/fh-helm-unit' },
  });
  const rule = parseAllDocuments(stdout).map((d) => d.toJS()).find((o) => o?.kind === 'PrometheusRule');
  // promtool reads Prometheus' rule-file format: the PrometheusRule's spec is exactly that.
  rulesFile = path.join(dir, 'rules.yaml');
  writeFileSync(rulesFile, stringify(rule.spec, { lineWidth: 0 }));
  alertNames = (rule.spec.groups as Array<{ rules: Array<{ alert?: string }> }>).flatMap((g) => g.rules.map((r) => r.alert!).filter(Boolean));
}, 1_800_000);

describe('the chart\'s alerts in Prometheus\' rule engine (promtool)', () => {
  it('promtool check rules accepts the rendered rules', async () => {
    const { stdout } = await run(promtool, ['check', 'rules', rulesFile]);
    expect(stdout).toMatch(new RegExp(`SUCCESS: ${alertNames.length} rules found`));
    expect(alertNames.length).toBeGreaterThanOrEqual(8);
  });

  it('every alert has a case that fires and one that does not', () => {
    for (const a of alertNames) {
      expect(CASES.some((c) => c.alert === a && c.fires), `${a}: a firing case`).toBe(true);
      expect(CASES.some((c) => c.alert === a && !c.fires), `${a}: a silent case`).toBe(true);
    }
    expect(CASES.map((c) => c.alert).filter((a) => !alertNames.includes(a))).toEqual([]);
  });

  it('promtool test rules: each alert fires with its labels and rendered annotations, and stays silent where it should', async () => {
    const { ok, out } = await promtoolTest(CASES);
    expect(out, out).toMatch(/SUCCESS/);
    expect(ok, out).toBe(true);
  });

  it('the harness fails when an expectation is wrong (a silent case expected to fire, a firing one expected silent)', async () => {
    const silent = CASES.find((c) => !c.fires)!;
    const firing = CASES.find((c) => c.fires)!;
    const wrongFire = await promtoolTest([{ ...silent, fires: { labels: { severity: 'critical' }, annotations: {} } }]);
    expect(wrongFire.ok, wrongFire.out).toBe(false);
    expect(wrongFire.out).toMatch(/FAILED/);
    const wrongSilent = await promtoolTest([{ ...firing, fires: undefined }]);
    expect(wrongSilent.ok, wrongSilent.out).toBe(false);
  });
});
