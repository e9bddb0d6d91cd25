// The Grafana dashboard the chart ships (metrics.grafanaDashboard), written
// by `npm run generate` to charts/familyhub-operator/dashboards/. Declared
// here, panel by panel, so a unit test can check that every query names a
// metric the operator or the runtime really exports.

interface Panel {
  title: string;
  type: 'timeseries' | 'table' | 'stat';
  unit?: string;
  description: string;
  targets: Array<{ expr: string; legend?: string; instant?: boolean }>;
  width?: number;
}

interface Row {
  title: string;
  panels: Panel[];
}

// The job alone: the ServiceMonitor honours the series' own labels, so the
// per-object series keep the object's namespace in `namespace`.
const OP = 'job="$job"';

export const rows: Row[] = [
  {
    title: 'Operator',
    panels: [
      { title: 'Reconciles', type: 'timeseries', unit: 'ops', description: 'Reconciles per second by controller and result (success, requeue, error).', targets: [{ expr: `sum by (controller, result) (rate(familyhub_reconcile_total{${OP}}[$__rate_interval]))`, legend: '{{controller}} {{result}}' }] },
      { title: 'Reconcile errors', type: 'timeseries', unit: 'ops', description: 'Failed reconciles per second; FamilyHubReconcileErrorsRising fires above 20% of all.', targets: [{ expr: `sum by (controller) (rate(familyhub_reconcile_total{${OP}, result="error"}[$__rate_interval]))`, legend: '{{controller}}' }] },
      { title: 'Reconcile latency (p50, p99)', type: 'timeseries', unit: 's', description: 'Time spent in one reconcile, by controller.', targets: [
        { expr: `histogram_quantile(0.5, sum by (le, controller) (rate(familyhub_reconcile_duration_seconds_bucket{${OP}}[$__rate_interval])))`, legend: 'p50 {{controller}}' },
        { expr: `histogram_quantile(0.99, sum by (le, controller) (rate(familyhub_reconcile_duration_seconds_bucket{${OP}}[$__rate_interval])))`, legend: 'p99 {{controller}}' },
      ] },
      { title: 'Work queue depth', type: 'timeseries', unit: 'short', description: 'Keys waiting per controller (leader only).', targets: [{ expr: `max by (controller) (familyhub_workqueue_depth{${OP}})`, legend: '{{controller}}' }] },
      { title: 'Retries with backoff', type: 'timeseries', unit: 'ops', description: 'Keys re-queued after an error.', targets: [{ expr: `sum by (controller) (rate(familyhub_workqueue_retries_total{${OP}}[$__rate_interval]))`, legend: '{{controller}}' }] },
      { title: 'Leader', type: 'stat', description: 'Replica holding the lease (1).', targets: [{ expr: `max by (pod) (familyhub_leader_election_status{${OP}})`, legend: '{{pod}}', instant: true }] },
    ],
  },
  {
    title: 'Objects',
    panels: [
      { title: 'Objects by Ready status', type: 'timeseries', unit: 'short', description: 'familyhub.dev objects by kind and Ready condition (True, False, Unknown).', targets: [{ expr: `sum by (kind, condition) (max by (kind, namespace, name, condition) (familyhub_object_ready{${OP}}))`, legend: '{{kind}} {{condition}}' }] },
      { title: 'Objects not Ready', type: 'table', description: 'Every object whose Ready condition is not True now.', width: 12, targets: [{ expr: `max by (kind, namespace, name) (familyhub_object_ready{${OP}, condition="True"}) == 0`, instant: true }] },
      { title: 'Credentials expire or rotate in', type: 'table', unit: 's', description: 'DatabaseClaim lease expiry and OIDCClient rotation due, from now; negative is overdue.', width: 12, targets: [{ expr: `min by (kind, namespace, name) (familyhub_credentials_expiry_timestamp_seconds{${OP}}) - time()`, instant: true }] },
      { title: 'Child writes', type: 'timeseries', unit: 'ops', description: 'Writes of owned children by controller, kind and action; restores mean someone edited a child by hand.', targets: [{ expr: `sum by (controller, kind, action) (rate(familyhub_child_writes_total{${OP}}[$__rate_interval]))`, legend: '{{controller}} {{kind}} {{action}}' }] },
    ],
  },
  {
    title: 'Kubernetes API and identity provider',
    panels: [
      { title: 'Kubernetes API requests', type: 'timeseries', unit: 'reqps', description: 'Requests the operator sends to the kube-apiserver, by verb.', targets: [{ expr: `sum by (verb) (rate(familyhub_kube_requests_total{${OP}}[$__rate_interval]))`, legend: '{{verb}}' }] },
      { title: 'Watch restarts', type: 'timeseries', unit: 'short', description: 'Watch reconnects by kind and cause per hour (closed, gone, error, idle).', targets: [{ expr: `sum by (kind, cause) (increase(familyhub_informer_watch_restarts_total{${OP}}[1h]))`, legend: '{{kind}} {{cause}}' }] },
      { title: 'IdP request latency (p99)', type: 'timeseries', unit: 's', description: 'Requests to the identity provider by method and outcome.', targets: [{ expr: `histogram_quantile(0.99, sum by (le, idp, method, outcome) (rate(familyhub_idp_request_duration_seconds_bucket{${OP}}[$__rate_interval])))`, legend: '{{idp}} {{method}} {{outcome}}' }] },
      { title: 'Operator memory', type: 'timeseries', unit: 'bytes', description: 'Resident set size per replica.', targets: [{ expr: `familyhub_process_process_resident_memory_bytes{${OP}}`, legend: '{{pod}}' }] },
      { title: 'Event loop lag (p99)', type: 'timeseries', unit: 's', description: 'Node.js event loop lag per replica.', targets: [{ expr: `familyhub_process_nodejs_eventloop_lag_p99_seconds{${OP}}`, legend: '{{pod}}' }] },
    ],
  },
  {
    title: 'Runtime services (where their pods are scraped)',
    panels: [
      { title: 'HTTP requests', type: 'timeseries', unit: 'reqps', description: 'Requests to the runtime services by route and status.', targets: [{ expr: 'sum by (route, status) (rate(runtime_http_requests_total[$__rate_interval]))', legend: '{{route}} {{status}}' }] },
      { title: 'HTTP latency (p99)', type: 'timeseries', unit: 's', description: 'Runtime request duration by route.', targets: [{ expr: 'histogram_quantile(0.99, sum by (le, route) (rate(runtime_http_request_duration_seconds_bucket[$__rate_interval])))', legend: '{{route}}' }] },
      { title: 'Forward-auth decisions', type: 'timeseries', unit: 'ops', description: 'Answers of the auth service by outcome.', targets: [{ expr: 'sum by (outcome) (rate(auth_decisions_total[$__rate_interval]))', legend: '{{outcome}}' }] },
      { title: 'Audit: persisted and pending', type: 'timeseries', unit: 'short', description: 'Audit events committed per second, and entries delivered but not yet acknowledged (FamilyHubAuditConsumerLag).', targets: [
        { expr: 'sum(rate(audit_events_persisted_total[$__rate_interval]))', legend: 'persisted/s' },
        { expr: 'max by (pod) (audit_stream_pending_entries)', legend: 'pending {{pod}}' },
      ] },
      { title: 'Chat messages', type: 'timeseries', unit: 'ops', description: 'Chat messages persisted per second.', targets: [{ expr: 'sum(rate(chat_messages_total[$__rate_interval]))', legend: 'messages/s' }] },
      { title: 'Media uploads', type: 'timeseries', unit: 'ops', description: 'Upload attempts by result.', targets: [{ expr: 'sum by (result) (rate(media_uploads_total[$__rate_interval]))', legend: '{{result}}' }] },
      { title: 'Gaming events', type: 'timeseries', unit: 'ops', description: 'Stream entries handled by result.', targets: [{ expr: 'sum by (result) (rate(gaming_events_total[$__rate_interval]))', legend: '{{result}}' }] },
    ],
  },
];

const PROMQL_WORDS = new Set(['by', 'without', 'and', 'or', 'unless', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'le']);

/** Metric names a PromQL expression reads (histograms by their base name). */
export function metricNamesIn(expr: string): string[] {
  const bare = expr
    .replace(/"[^"]*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, ' ');
  return [...bare.matchAll(/\b([a-zA-Z_:][\w:]*)\b(?!\s*\()/g)]
    .map((m) => m[1]!)
    .filter((n) => !PROMQL_WORDS.has(n) && !/^\d/.test(n))
    .map((n) => n.replace(/_bucket$/, ''));
}

/** Metric names the dashboard queries. */
export function dashboardMetricNames(): string[] {
  return [...new Set(rows.flatMap((r) => r.panels.flatMap((p) => p.targets.flatMap((t) => metricNamesIn(t.expr)))))].sort();
}

export function dashboard(): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const row of rows) {
    panels.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0;
    for (const p of row.panels) {
      const w = p.width ?? 8;
      if (x + w > 24) {
        x = 0;
        y += 8;
      }
      panels.push({
        id: id++,
        type: p.type,
        title: p.title,
        description: p.description,
        datasource: { type: 'prometheus', uid: '${datasource}' },
        gridPos: { h: 8, w, x, y },
        fieldConfig: { defaults: { unit: p.unit ?? 'short' }, overrides: [] },
        options: p.type === 'table' ? { showHeader: true } : {},
        targets: p.targets.map((t, i) => ({
          refId: String.fromCharCode(65 + i),
          datasource: { type: 'prometheus', uid: '${datasource}' },
          expr: t.expr,
          ...(t.legend ? { legendFormat: t.legend } : {}),
          ...(t.instant ? { instant: true, range: false, format: p.type === 'table' ? 'table' : 'time_series' } : {}),
        })),
      });
      x += w;
    }
    y += 8;
  }
  const query = (name: string, label: string, q: string) => ({
    name, label, type: 'query', datasource: { type: 'prometheus', uid: '${datasource}' },
    query: { query: q, refId: name }, definition: q, refresh: 2, includeAll: false, multi: false, current: {},
  });
  return {
    title: 'FamilyHub Operator',
    uid: 'familyhub-operator',
    description: 'Reconciles, errors, queues, objects by Ready status, credential expiry and the runtime services of the FamilyHub operator.',
    tags: ['familyhub', 'kubernetes-operator'],
    editable: true,
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-6h', to: 'now' },
    refresh: '30s',
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0 },
        query('job', 'Job', 'label_values(familyhub_reconcile_total, job)'),
      ],
    },
    panels,
  };
}

export function renderDashboard(): string {
  return `${JSON.stringify(dashboard(), null, 2)}\n`;
}
