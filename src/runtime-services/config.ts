// Runtime configuration comes only from the environment so the operator can
// set it per Deployment. It is validated once at start-up: a bad value must
// stop the process before it accepts traffic, with a line naming the setting.
import { z } from 'zod';

const csv = z
  .string()
  .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean));

const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);

export const SERVICE_NAMES = ['audit', 'chat'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export const RuntimeConfigSchema = z.object({
  RUNTIME_SERVICES: csv.pipe(z.array(z.enum(SERVICE_NAMES)).min(1, 'name at least one service')),
  HOST: z.string().default('0.0.0.0'),
  PORT: int(8080).pipe(z.number().max(65535)),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_TIMEOUT_MS: int(20_000, 100),
  REPLICA_ID: z.string().min(1).optional(),

  DATABASE_URL: z.string().url(),
  REDIS_URL: z.string().url(),

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

  AUDIT_STREAM: z.string().min(1).default('familyhub:audit'),
  AUDIT_GROUP: z.string().min(1).default('audit-writers'),
  AUDIT_BATCH_SIZE: int(1000, 1).pipe(z.number().max(10_000)),
  AUDIT_BLOCK_MS: int(1000, 10),
  AUDIT_CLAIM_MIN_IDLE_MS: int(30_000, 100),
  AUDIT_CLAIM_INTERVAL_MS: int(10_000, 100),
  AUDIT_TRIM_INTERVAL_MS: int(10_000, 100),
  AUDIT_RETENTION_DAYS: int(365, 1),
  AUDIT_PARTITIONS_AHEAD_DAYS: int(7, 1),
  AUDIT_MAINTENANCE_INTERVAL_MS: int(3_600_000, 100),

  CHAT_MAX_MESSAGE_BYTES: int(4096, 1),
  CHAT_RATE_PER_SEC: int(20, 1),
  CHAT_RATE_BURST: int(40, 1),
  CHAT_MAX_BUFFERED_BYTES: int(1_048_576, 1024),
  CHAT_PRESENCE_TTL_MS: int(15_000, 500),
  CHAT_REPLAY_LIMIT: int(1000, 1),
  CHAT_GAP_FILL_MS: int(250, 10),
});

export type RuntimeConfig = z.infer<typeof RuntimeConfigSchema>;

export class ConfigError extends Error {}

/** Throws ConfigError whose message is one line naming the first bad setting. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const parsed = RuntimeConfigSchema.safeParse(env);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const name = String(issue.path[0] ?? 'environment');
  const what = issue.code === 'invalid_type' && issue.received === 'undefined' ? 'is required but not set' : issue.message;
  throw new ConfigError(`invalid configuration: ${name} ${what}`);
}
