// Prometheus metrics of the operator, all in the familyhub_ namespace.
import client from 'prom-client';

export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry, prefix: 'familyhub_process_' });

export const reconcileTotal = new client.Counter({
  name: 'familyhub_reconcile_total',
  help: 'Reconciles by controller and result (success, error, requeue).',
  labelNames: ['controller', 'result'] as const,
  registers: [registry],
});

export const reconcileDuration = new client.Histogram({
  name: 'familyhub_reconcile_duration_seconds',
  help: 'Time spent in one reconcile, by controller.',
  labelNames: ['controller'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const workqueueDepth = new client.Gauge({
  name: 'familyhub_workqueue_depth',
  help: 'Keys waiting in the work queue, by controller.',
  labelNames: ['controller'] as const,
  registers: [registry],
});

export const workqueueRetries = new client.Counter({
  name: 'familyhub_workqueue_retries_total',
  help: 'Keys re-queued with backoff after an error, by controller.',
  labelNames: ['controller'] as const,
  registers: [registry],
});

export const leaderStatus = new client.Gauge({
  name: 'familyhub_leader_election_status',
  help: '1 while this process holds the leader lease, else 0.',
  labelNames: ['lease'] as const,
  registers: [registry],
});

export const kubeRequestsTotal = new client.Counter({
  name: 'familyhub_kube_requests_total',
  help: 'Requests this process sent to the kube-apiserver, by verb.',
  labelNames: ['verb'] as const,
  registers: [registry],
});

export const watchRestarts = new client.Counter({
  name: 'familyhub_informer_watch_restarts_total',
  help: 'Watch reconnects by kind and cause (closed, gone, error, idle).',
  labelNames: ['kind', 'cause'] as const,
  registers: [registry],
});

export const childWritesTotal = new client.Counter({
  name: 'familyhub_child_writes_total',
  help: 'Writes of owned child objects, by controller, child kind and action (create, update, restore, adopt).',
  labelNames: ['controller', 'kind', 'action'] as const,
  registers: [registry],
});

/**
 * What a controller tells the per-object gauges at scrape time: its kind, the
 * objects in its cache, and (optionally) when an object's credentials expire
 * or are due for rotation, in ms since the epoch.
 */
export interface ObjectMetricsSource {
  kind: string;
  list(): Array<{ metadata: { namespace?: string; name: string }; status?: { conditions?: Array<{ type: string; status: string }> } }>;
  credentialsExpiry?(obj: never): number | undefined;
}

const objectSources = new Set<ObjectMetricsSource>();

/** Registers a source for the per-object gauges; call the returned function when its controller stops. */
export function trackObjects<T>(source: { kind: string; list(): T[]; credentialsExpiry?(obj: T): number | undefined }): () => void {
  const s = source as unknown as ObjectMetricsSource;
  objectSources.add(s);
  return () => objectSources.delete(s);
}

const READY_STATES = ['True', 'False', 'Unknown'] as const;

type TrackedObject = ReturnType<ObjectMetricsSource['list']>[number];

/** Every cached object with its kind/namespace/name labels, for the gauges below. */
function* trackedObjects(): Generator<{ src: ObjectMetricsSource; o: TrackedObject; labels: { kind: string; namespace: string; name: string } }> {
  for (const src of objectSources) {
    for (const o of src.list()) yield { src, o, labels: { kind: src.kind, namespace: o.metadata.namespace ?? '', name: o.metadata.name } };
  }
}

// Computed from the informer caches on every scrape (as kube-state-metrics
// does from its own), so a deleted object's series disappear with it and a
// standby, whose caches are empty, exports none.
export const objectReady = new client.Gauge({
  name: 'familyhub_object_ready',
  help: 'Ready condition of every familyhub.dev object: 1 on the series whose condition label (True, False, Unknown) is the current status, 0 on the other two.',
  labelNames: ['kind', 'namespace', 'name', 'condition'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const { o, labels } of trackedObjects()) {
      const status = o.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown';
      const current = (READY_STATES as readonly string[]).includes(status) ? status : 'Unknown';
      for (const condition of READY_STATES) this.set({ ...labels, condition }, condition === current ? 1 : 0);
    }
  },
});

// Beside familyhub_object_ready: a suspended object (a Service in plan mode)
// is not Ready on purpose, and alerts on "not Ready" leave it out.
export const objectSuspended = new client.Gauge({
  name: 'familyhub_object_suspended',
  help: 'Whether a familyhub.dev object applies nothing on purpose (Suspended=True: a Service in plan mode or with spec.suspend): 1 or 0.',
  labelNames: ['kind', 'namespace', 'name'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const { o, labels } of trackedObjects()) {
      const suspended = o.status?.conditions?.some((c) => c.type === 'Suspended' && c.status === 'True') ?? false;
      this.set(labels, suspended ? 1 : 0);
    }
  },
});

export const credentialsExpiry = new client.Gauge({
  name: 'familyhub_credentials_expiry_timestamp_seconds',
  help: 'When an object\'s current credentials expire (DatabaseClaim lease) or are due for rotation (OIDCClient rotation.interval), as a Unix timestamp; no series when nothing expires.',
  labelNames: ['kind', 'namespace', 'name'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const { src, o, labels } of trackedObjects()) {
      const at = src.credentialsExpiry?.(o as never);
      if (at !== undefined && Number.isFinite(at)) this.set(labels, at / 1000);
    }
  },
});
