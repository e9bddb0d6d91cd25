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
