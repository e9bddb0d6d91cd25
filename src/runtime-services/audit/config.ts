// Settings of the audit service (parsed only when RUNTIME_SERVICES names audit).
import { z } from 'zod';
import { postgresSettings, redisSettings } from '../base/connections.js';
import { int } from '../config.js';

export const AuditSettingsSchema = z.object({
  ...postgresSettings,
  ...redisSettings,
  /**
   * The owner role that runs the migrations at start (and owns the tables);
   * unset when a separate Job runs audit/migrate-cli.ts instead.
   */
  AUDIT_OWNER_DATABASE_URL: z.string().url().optional(),
  AUDIT_STREAM: z.string().min(1).default('familyhub:audit'),
  AUDIT_GROUP: z.string().min(1).default('audit-writers'),
  AUDIT_DB_POOL_MAX: int(5, 2).pipe(z.number().max(100)),
  AUDIT_VERIFY_TIMEOUT_MS: int(120_000, 1000),
  AUDIT_VERIFY_STATEMENT_TIMEOUT_MS: int(30_000, 100),
  AUDIT_BATCH_SIZE: int(1000, 1).pipe(z.number().max(10_000)),
  AUDIT_BLOCK_MS: int(1000, 10),
  AUDIT_CLAIM_MIN_IDLE_MS: int(30_000, 100),
  AUDIT_CLAIM_INTERVAL_MS: int(10_000, 100),
  AUDIT_TRIM_INTERVAL_MS: int(10_000, 100),
  AUDIT_RETENTION_DAYS: int(365, 1),
  AUDIT_PARTITIONS_AHEAD_DAYS: int(7, 1),
  AUDIT_MAINTENANCE_INTERVAL_MS: int(3_600_000, 100),
});

export type AuditSettings = z.infer<typeof AuditSettingsSchema>;
