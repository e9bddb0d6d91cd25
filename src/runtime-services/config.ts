// Runtime configuration comes only from the environment so the operator can
// set it per Deployment. It is validated once at start-up: a bad value must
// stop the process before it accepts traffic, with a line naming the setting.
// The shared settings are below; each service declares its own (its
// config.ts), and only the services named in RUNTIME_SERVICES are parsed, so
// a setting is required only when a selected service needs it.
import { z } from 'zod';
import type { ServiceDefinition } from './base/service.js';

export const csv = z
  .string()
  .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean));

export const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);

export const BaseConfigSchema = z.object({
  HOST: z.string().default('0.0.0.0'),
  PORT: int(8080).pipe(z.number().max(65535)),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_TIMEOUT_MS: int(20_000, 100),
  REPLICA_ID: z.string().min(1).optional(),
  /** Serve /metrics on this port only (not on PORT), e.g. for a NetworkPolicy that admits Prometheus alone. */
  METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  METRICS_HOST: z.string().optional(),
  /** When set, /metrics needs `Authorization: Bearer <token>`. */
  METRICS_TOKEN: z.string().min(16).optional(),
  /** Transport ceiling for every WebSocket service; each service enforces its own, smaller, limits. */
  WS_MAX_PAYLOAD_BYTES: int(65_536, 1024).pipe(z.number().max(64 * 1_048_576)),

  OIDC_ISSUER_URL: z.string().url(),
  OIDC_AUDIENCE: z.string().min(1),
  // Asymmetric algorithms only: an HS* allowlist would let anyone holding the
  // client secret mint tokens.
  OIDC_ALLOWED_ALGS: csv
    .default('RS256,PS256,ES256,EdDSA')
    .pipe(z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])).min(1)),
  OIDC_CLOCK_TOLERANCE_SEC: int(5).pipe(z.number().max(120)),
  OIDC_JWKS_CACHE_MAX_AGE_MS: int(600_000, 1000),
  AUTH_ALLOWED_EMAIL_DOMAINS: csv.pipe(z.array(z.string().min(1)).min(1, 'name at least one domain')),
  AUTH_ADMIN_ROLE: z.string().min(1).default('admins'),
});

export type BaseConfig = z.infer<typeof BaseConfigSchema>;

export interface RuntimeConfig {
  base: BaseConfig;
  /** The selected services, in RUNTIME_SERVICES order, each with its parsed settings. */
  services: { definition: ServiceDefinition; settings: Record<string, unknown> }[];
}

export class ConfigError extends Error {}

function parseOrThrow<S extends z.ZodTypeAny>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const name = String(issue.path[0] ?? 'environment');
  const what = issue.code === 'invalid_type' && issue.received === 'undefined' ? 'is required but not set' : issue.message;
  throw new ConfigError(`invalid configuration: ${name} ${what}`);
}

/** Throws ConfigError whose message is one line naming the first bad setting. */
export function loadConfig(env: NodeJS.ProcessEnv, definitions: readonly ServiceDefinition[]): RuntimeConfig {
  const names = definitions.map((d) => d.name) as [string, ...string[]];
  const selected = parseOrThrow(
    z.object({ RUNTIME_SERVICES: csv.pipe(z.array(z.enum(names)).min(1, 'name at least one service')) }),
    env,
  ).RUNTIME_SERVICES;
  const base = parseOrThrow(BaseConfigSchema, env);
  const services = [...new Set(selected)].map((name) => {
    const definition = definitions.find((d) => d.name === name)!;
    return { definition, settings: parseOrThrow(definition.settings, env) as Record<string, unknown> };
  });
  return { base, services };
}
