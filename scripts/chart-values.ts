// The Helm chart's values as a zod schema: `npm run generate` writes
// charts/familyhub-operator/values.schema.json from it, so `helm install`,
// `upgrade`, `template` and `lint` refuse a misspelt key or a wrong type with
// the value's path. Objects are strict (an unknown key is an error) except
// where the value is handed to Kubernetes as it is (resources, affinity, ...),
// which the apiserver validates.
import { z } from 'zod';
import { zodToJsonSchema } from 'zod-to-json-schema';

const GO_DURATION = '^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$';
const duration = (what: string) => z.string().regex(new RegExp(GO_DURATION), 'must be a Go duration such as 30s, 10m, 1h').describe(`${what} (Go duration, e.g. 30s, 10m).`);
const labels = (what: string) => z.record(z.string()).describe(what);
/** Handed to Kubernetes unchanged: the apiserver validates the fields. */
const k8s = (what: string) => z.record(z.unknown()).describe(what);
const k8sList = (what: string) => z.array(z.record(z.unknown())).describe(what);

export const chartValuesSchema = z.object({
  global: z.record(z.unknown()).optional().describe('Helm passes parent-chart globals here; unused by this chart.'),
  replicaCount: z.number().int().min(1).max(10).describe('Operator replicas; one leads (Lease), the others are hot standbys.'),
  image: z.object({
    repository: z.string().min(1).describe('Operator image repository.'),
    tag: z.string().describe('Image tag; empty means the chart\'s appVersion.'),
    pullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).describe('Image pull policy.'),
  }).strict().describe('Operator image.'),
  imagePullSecrets: z.array(z.object({ name: z.string().min(1).describe('Secret name.') }).strict()).describe('Secrets for pulling the image from a private registry.'),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).describe('Operator log level (LOG_LEVEL).'),
  resyncPeriod: duration('How often every object is re-checked against its external system'),
  leaderElection: z.object({
    enabled: z.boolean().describe('Lease-based leader election; disable only with exactly one replica.'),
    leaseDuration: duration('How long a lease lasts without renewal'),
    renewDeadline: duration('A leader that cannot renew within this exits'),
    retryPeriod: duration('How often leaders renew and standbys retry'),
  }).strict().describe('Leader election between the replicas.'),
  extraEnv: z.array(z.object({ name: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).describe('Variable name.'), value: z.string().describe('Value.') }).strict())
    .describe('Further operator settings as environment variables (FAMILYHUB_CONCURRENCY, ...; see src/config.ts).'),
  crds: z.object({
    enabled: z.boolean().describe('Install and upgrade the familyhub.dev CRDs with the release.'),
    keep: z.boolean().describe('Annotate the CRDs helm.sh/resource-policy: keep, so helm uninstall leaves them (and every custom resource) in place.'),
  }).strict().describe('The CustomResourceDefinitions of the five kinds.'),
  metrics: z.object({
    port: z.number().int().min(1).max(65535).describe('Port of /metrics, /healthz and /readyz.'),
    service: z.object({
      annotations: labels('Annotations of the metrics Service (e.g. prometheus.io/scrape for annotation-based scrapers).'),
    }).strict().describe('The Service in front of the metrics port.'),
    serviceMonitor: z.object({
      enabled: z.boolean().describe('Create a Prometheus Operator ServiceMonitor (needs its CRD).'),
      interval: duration('Scrape interval'),
      scrapeTimeout: duration('Scrape timeout'),
      labels: labels('Extra labels, e.g. the release label your Prometheus selects ServiceMonitors by.'),
    }).strict().describe('Prometheus Operator ServiceMonitor.'),
    runtimePodMonitor: z.object({
      enabled: z.boolean().describe('Create a Prometheus Operator PodMonitor for the FamilyHub runtime\'s pods (needs its CRD); FamilyHubAuditConsumerLag needs their metrics.'),
      namespaces: z.array(z.string().min(1)).describe('Namespaces of the FamilyHubs whose runtime pods are scraped; empty: every namespace.'),
      interval: duration('Scrape interval'),
      scrapeTimeout: duration('Scrape timeout'),
      labels: labels('Extra labels, e.g. the release label your Prometheus selects PodMonitors by.'),
    }).strict().describe('Prometheus Operator PodMonitor for the runtime pods.'),
    prometheusRule: z.object({
      enabled: z.boolean().describe('Create a PrometheusRule with the operator\'s alerts (needs its CRD).'),
      labels: labels('Extra labels, e.g. the label your Prometheus selects rules by.'),
      degradedFor: duration('How long an object may stay not Ready before FamilyHubObjectDegraded fires'),
      credentialsExpiryWarning: z.number().int().min(60).describe('FamilyHubCredentialsExpiring fires when DatabaseClaim credentials expire within this many seconds; keep it below a third of the shortest credentials.defaultTtl, since renewal starts at two thirds of a lease.'),
      auditPendingThreshold: z.number().int().min(1).describe('FamilyHubAuditConsumerLag fires when this many audit entries stay unacknowledged for 10 minutes.'),
    }).strict().describe('Prometheus Operator PrometheusRule with alerts.'),
    grafanaDashboard: z.object({
      enabled: z.boolean().describe('Create a ConfigMap with the Grafana dashboard, labelled for the Grafana sidecar.'),
      labels: labels('Labels of the ConfigMap; the sidecar of the Grafana chart selects grafana_dashboard: "1" by default.'),
      annotations: labels('Annotations of the ConfigMap (e.g. the sidecar\'s folder annotation).'),
    }).strict().describe('Grafana dashboard as a ConfigMap.'),
  }).strict().describe('Metrics, scraping, alerts and dashboards.'),
  resources: k8s('Container resources.'),
  serviceAccount: z.object({ name: z.string().min(1).describe('Name of the ServiceAccount.') }).strict().describe('The operator\'s ServiceAccount (created by the chart).'),
  podAnnotations: labels('Annotations of the operator pods.'),
  podLabels: labels('Extra labels of the operator pods.'),
  podSecurityContext: k8s('Pod security context; the default meets the restricted Pod Security Standard.'),
  securityContext: k8s('Operator container security context; the default meets the restricted Pod Security Standard.'),
  priorityClassName: z.string().describe('PriorityClass of the operator pods; empty for none.'),
  nodeSelector: labels('Node selector of the operator pods.'),
  tolerations: k8sList('Tolerations of the operator pods.'),
  affinity: k8s('Affinity of the operator pods.'),
  topologySpreadConstraints: k8sList('Topology spread constraints; a constraint without labelSelector gets the operator pods\' selector.'),
  podDisruptionBudget: z.object({
    enabled: z.boolean().describe('Create a PodDisruptionBudget for the operator pods.'),
    maxUnavailable: z.union([z.number().int().min(0), z.string().regex(/^[0-9]+%$/)]).describe('Pods a voluntary disruption may take at once (number or percentage).'),
  }).strict().describe('PodDisruptionBudget of the operator pods.'),
  networkPolicy: z.object({
    enabled: z.boolean().describe('Create a NetworkPolicy for the operator pods.'),
    metricsFrom: k8sList('Peers (NetworkPolicyPeer) allowed to reach the metrics port; empty allows any source, on that port only.'),
    egress: k8sList('Egress rules (NetworkPolicyEgressRule); empty leaves egress open, since the apiserver, PostgreSQL, Vault and IdP addresses come from each FamilyHub.'),
  }).strict().describe('NetworkPolicy of the operator pods (ingress: metrics port only).'),
  extraContainers: k8sList('Additional containers in the operator pod; they share its network namespace.'),
}).strict().describe('Values of the familyhub-operator chart.');

export type ChartValues = z.infer<typeof chartValuesSchema>;

/** values.schema.json, as written to the chart. */
export function renderValuesSchema(): string {
  const schema = zodToJsonSchema(chartValuesSchema, { target: 'jsonSchema7', $refStrategy: 'none' }) as Record<string, unknown>;
  return `${JSON.stringify({ ...schema, title: 'familyhub-operator values', $comment: 'Generated by scripts/generate-crds.ts from scripts/chart-values.ts; do not edit. Run `npm run generate`.' }, null, 2)}\n`;
}
