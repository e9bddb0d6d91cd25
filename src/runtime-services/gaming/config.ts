// Settings of the gaming service (parsed only when RUNTIME_SERVICES names gaming).
import { z } from 'zod';
import { postgresSettings, redisSettings } from '../base/connections.js';
import { int } from '../config.js';
import { DEFAULT_RULES, GamingRulesSchema } from './rules.js';
import { assertTimeZone } from './week.js';

const rulesJson = z
  .string()
  .transform((s, ctx) => {
    try {
      return JSON.parse(s) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'is not valid JSON' });
      return z.NEVER;
    }
  })
  .pipe(GamingRulesSchema);

export const GamingSettingsSchema = z.object({
  ...postgresSettings,
  ...redisSettings,
  /** The platform event stream gaming reads (the audit publisher's) and where it publishes its own events. */
  AUDIT_STREAM: z.string().min(1).default('familyhub:audit'),
  GAMING_GROUP: z.string().min(1).default('gaming'),
  /** The hub's time zone: ISO weeks and streak days are counted in it. */
  GAMING_TIME_ZONE: z.string().default('UTC').refine((tz) => {
    try {
      assertTimeZone(tz);
      return true;
    } catch {
      return false;
    }
  }, 'is not a known IANA time zone'),
  /** XP per action, level curve and achievements as JSON (see README); defaults to the built-in family rules. */
  GAMING_RULES: rulesJson.optional().transform((r) => r ?? DEFAULT_RULES),
  GAMING_BATCH_SIZE: int(500, 1).pipe(z.number().max(5000)),
  GAMING_BLOCK_MS: int(1000, 10),
  GAMING_CLAIM_MIN_IDLE_MS: int(30_000, 100),
  GAMING_CLAIM_INTERVAL_MS: int(10_000, 100),
  GAMING_REDIS_PREFIX: z.string().default('gaming:'),
  GAMING_AROUND_RADIUS_MAX: int(50, 1),
  GAMING_DB_POOL_MAX: int(10, 2).pipe(z.number().max(100)),
});

export type GamingSettings = z.infer<typeof GamingSettingsSchema>;
