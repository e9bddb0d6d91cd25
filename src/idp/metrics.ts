// IdP traffic on the operator's /metrics: how often and how long the
// operator talks to the identity provider, by HTTP method and outcome.
import client from 'prom-client';
import { registry } from '../core/metrics.js';

export const idpRequests = new client.Histogram({
  name: 'familyhub_idp_request_duration_seconds',
  help: 'Requests to the identity provider by IdP family, HTTP method and outcome (ok, error, unreachable).',
  labelNames: ['idp', 'method', 'outcome'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15],
  registers: [registry],
});
