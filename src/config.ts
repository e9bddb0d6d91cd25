// The operator's settings: one zod schema over the environment, parsed once
// in main.ts and passed down. A bad value stops the process with one line
// naming the variable — never NaN workers or a 1 ms retry loop.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseDuration } from './crds/duration.js';

/** Go duration ("15s", "10m") or plain milliseconds, at least `minMs`. */
const ms = (fallback: string, minMs: number, what: string) =>
  z.string().default(fallback).transform((v, ctx) => {
    let n: number;
    try {
      n = /^\d+$/.test(v) ? Number(v) : parseDuration(v);
    } catch {
      ctx.addIssue({ code: 'custom', message: `must be a Go duration ("30s", "5m") or milliseconds, got "${v}"` });
      return z.NEVER;
    }
    if (n < minMs) {
      ctx.addIssue({ code: 'custom', message: `must be at least ${minMs} ms (${what}), got "${v}"` });
      return z.NEVER;
    }
    return n;
  }).describe(what);

const int = (fallback: number, min: number, max: number, what: string) =>
  z.string().default(String(fallback)).transform((v, ctx) => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
      ctx.addIssue({ code: 'custom', message: `must be a whole number from ${min} to ${max}, got "${v}"` });
      return z.NEVER;
    }
    return Number(v);
  }).describe(what);

const bool = (fallback: boolean, what: string) =>
  z.enum(['true', 'false']).default(fallback ? 'true' : 'false').transform((v) => v === 'true').describe(what);

/** Every setting, by environment variable. The README's table is this list. */
export const operatorEnvSchema = z.object({
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info').describe('pino log level'),
  FAMILYHUB_METRICS_PORT: int(8080, 0, 65535, '/metrics, /healthz, /readyz port (0: any free port)'),
  FAMILYHUB_BIND: z.string().min(1).default('0.0.0.0').describe('address the metrics/health server listens on'),
  FAMILYHUB_CONTROLLERS: z.string().optional().describe('comma-separated subset of controllers to run (default: all)'),
  FAMILYHUB_LEADER_ELECTION: bool(true, 'Lease-based leader election'),
  FAMILYHUB_LEASE_NAMESPACE: z.string().min(1).optional().describe('namespace of the Lease (default: the pod namespace)'),
  FAMILYHUB_IDENTITY: z.string().min(1).optional().describe('leader election identity (default: hostname_pid)'),
  FAMILYHUB_LEASE_DURATION_MS: ms('15s', 1_000, 'how long a lease lasts without renewal'),
  FAMILYHUB_RENEW_DEADLINE_MS: ms('10s', 500, 'a leader that cannot renew within this exits'),
  FAMILYHUB_RETRY_PERIOD_MS: ms('2s', 100, 'how often leaders renew and standbys retry'),
  FAMILYHUB_WATCH_IDLE_MS: ms('90s', 1_000, 'a watch that delivered nothing (not even a bookmark) this long is restarted'),
  FAMILYHUB_RESYNC_MS: ms('10m', 500, 'periodic re-check of every object (no writes when unchanged)'),
  FAMILYHUB_STALLED_RETRY_MS: ms('5m', 1_000, 'retry of an object stalled on an error whose cause may lie outside what is watched'),
  FAMILYHUB_CONCURRENCY: int(8, 1, 256, 'workers per controller unless the controller sets its own'),
  FAMILYHUB_DATABASECLAIM_CONCURRENCY: int(8, 1, 256, 'DatabaseClaim workers'),
  FAMILYHUB_OIDCCLIENT_WORKERS: int(4, 1, 256, 'OIDCClient workers (each mostly waits on the IdP)'),
  FAMILYHUB_RECHECK_MS: ms('30s', 100, 'FamilyHub: re-check while a dependency is not ready; also the in-use wait on deletion'),
  FAMILYHUB_DEPENDENCY_RETRY_MS: ms('5s', 100, 'DatabaseClaim: retry while PostgreSQL or Vault is away'),
  FAMILYHUB_IDP_RETRY_MS: ms('15s', 100, 'OIDCClient: retry while the IdP is away or failing'),
  FAMILYHUB_IDP_HEALTH_TTL_MS: ms('30s', 100, 'how long an IdP health probe and e-mail domain check are reused'),
  FAMILYHUB_IDENTITY_CHECK_MAX_AGE_MS: ms('5s', 0, 'FamilyHub IdentityReady accepts an IdP probe at most this old'),
  FAMILYHUB_OIDC_RECENT_MS: ms('3s', 0, 'OIDCClient: a wake-up this soon after converging reuses the result'),
  FAMILYHUB_VAULT_VERIFY_TTL_MS: ms('10s', 0, 'how long Vault state just verified or written is trusted'),
  FAMILYHUB_VAULT_TIMEOUT_MS: ms('5s', 100, 'timeout of one Vault request'),
  FAMILYHUB_PG_POOL_MAX: int(8, 1, 100, 'connections per PostgreSQL admin pool'),
  FAMILYHUB_CONNECTION_CACHE_MAX: int(32, 1, 10_000, 'PostgreSQL pools, Vault clients and IdP adapters kept at most (least recently used closed first)'),
  FAMILYHUB_SA_TOKEN_PATH: z.string().min(1).default('/var/run/secrets/kubernetes.io/serviceaccount/token').describe('ServiceAccount token for Vault kubernetes auth'),
});

export type OperatorEnv = z.infer<typeof operatorEnvSchema>;

export interface OperatorConfig {
  logLevel: OperatorEnv['LOG_LEVEL'];
  metrics: { port: number; bindAddress: string };
  controllers?: string[];
  leaderElection?: { namespace: string; identity?: string; leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number };
  watchIdleTimeoutMs: number;
  core: { resyncMs: number; concurrency: number; stalledRetryMs: number };
  familyHub: { recheckMs: number };
  databaseClaim: { concurrency: number; dependencyRetryMs: number };
  oidcClient: { concurrency: number; idpRetryMs: number; recentMs: number };
  platform: {
    idpHealthTtlMs: number; identityCheckMaxAgeMs: number; vaultVerifyTtlMs: number; vaultTimeoutMs: number;
    pgPoolMax: number; connectionCacheMax: number; serviceAccountTokenPath: string;
  };
}

function podNamespace(): string {
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim();
  } catch {
    return 'familyhub-system';
  }
}

export class ConfigError extends Error {}

/** Parses the environment; throws ConfigError with one line per bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  // Empty values count as unset, as shells and Helm templates produce them.
  const present = Object.fromEntries(Object.keys(operatorEnvSchema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]));
  const r = operatorEnvSchema.safeParse(present);
  if (!r.success) {
    throw new ConfigError(r.error.issues.map((i) => `invalid configuration: ${i.path.join('.')}: ${i.message}`).join('\n'));
  }
  const e = r.data;
  if (e.FAMILYHUB_RENEW_DEADLINE_MS >= e.FAMILYHUB_LEASE_DURATION_MS) {
    throw new ConfigError(`invalid configuration: FAMILYHUB_RENEW_DEADLINE_MS: must be shorter than FAMILYHUB_LEASE_DURATION_MS (${e.FAMILYHUB_RENEW_DEADLINE_MS} >= ${e.FAMILYHUB_LEASE_DURATION_MS} ms)`);
  }
  return {
    logLevel: e.LOG_LEVEL,
    metrics: { port: e.FAMILYHUB_METRICS_PORT, bindAddress: e.FAMILYHUB_BIND },
    controllers: e.FAMILYHUB_CONTROLLERS?.split(',').map((s) => s.trim()).filter(Boolean),
    leaderElection: e.FAMILYHUB_LEADER_ELECTION
      ? {
          namespace: e.FAMILYHUB_LEASE_NAMESPACE ?? podNamespace(),
          identity: e.FAMILYHUB_IDENTITY,
          leaseDurationMs: e.FAMILYHUB_LEASE_DURATION_MS,
          renewDeadlineMs: e.FAMILYHUB_RENEW_DEADLINE_MS,
          retryPeriodMs: e.FAMILYHUB_RETRY_PERIOD_MS,
        }
      : undefined,
    watchIdleTimeoutMs: e.FAMILYHUB_WATCH_IDLE_MS,
    core: { resyncMs: e.FAMILYHUB_RESYNC_MS, concurrency: e.FAMILYHUB_CONCURRENCY, stalledRetryMs: e.FAMILYHUB_STALLED_RETRY_MS },
    familyHub: { recheckMs: e.FAMILYHUB_RECHECK_MS },
    databaseClaim: { concurrency: e.FAMILYHUB_DATABASECLAIM_CONCURRENCY, dependencyRetryMs: e.FAMILYHUB_DEPENDENCY_RETRY_MS },
    oidcClient: { concurrency: e.FAMILYHUB_OIDCCLIENT_WORKERS, idpRetryMs: e.FAMILYHUB_IDP_RETRY_MS, recentMs: e.FAMILYHUB_OIDC_RECENT_MS },
    platform: {
      idpHealthTtlMs: e.FAMILYHUB_IDP_HEALTH_TTL_MS,
      identityCheckMaxAgeMs: e.FAMILYHUB_IDENTITY_CHECK_MAX_AGE_MS,
      vaultVerifyTtlMs: e.FAMILYHUB_VAULT_VERIFY_TTL_MS,
      vaultTimeoutMs: e.FAMILYHUB_VAULT_TIMEOUT_MS,
      pgPoolMax: e.FAMILYHUB_PG_POOL_MAX,
      connectionCacheMax: e.FAMILYHUB_CONNECTION_CACHE_MAX,
      serviceAccountTokenPath: e.FAMILYHUB_SA_TOKEN_PATH,
    },
  };
}

/** Defaults only (tests and benches that build controllers in-process). */
export const defaultConfig = (): OperatorConfig => loadConfig({ FAMILYHUB_LEADER_ELECTION: 'false' });
