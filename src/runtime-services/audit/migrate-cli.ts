// `DATABASE_URL=<owner> AUDIT_APP_ROLE=<service role> tsx src/runtime-services/audit/migrate-cli.ts`:
// applies the audit migrations as the owner role and grants the service role
// what it needs, for deployments that keep the owner's credentials out of
// the service (a Job or init container). Exit 0 done, 1 failed.
import pg from 'pg';
import { z } from 'zod';
import { migrateAuditSchema } from './schema.js';

const parsed = z
  .object({
    DATABASE_URL: z.string().url(),
    AUDIT_APP_ROLE: z.string().min(1).max(63),
    AUDIT_RETENTION_DAYS: z.coerce.number().int().min(1).default(365),
    AUDIT_PARTITIONS_AHEAD_DAYS: z.coerce.number().int().min(1).max(62).default(7),
  })
  .safeParse(process.env);
if (!parsed.success) {
  const issue = parsed.error.issues[0]!;
  process.stderr.write(`invalid configuration: ${String(issue.path[0])} ${issue.message}\n`);
  process.exit(1);
}
const env = parsed.data;
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 1, application_name: 'audit-migrate' });
try {
  await migrateAuditSchema(pool, { appRole: env.AUDIT_APP_ROLE, retentionDays: env.AUDIT_RETENTION_DAYS, aheadDays: env.AUDIT_PARTITIONS_AHEAD_DAYS });
  process.stdout.write(`${JSON.stringify({ migrated: true, appRole: env.AUDIT_APP_ROLE })}\n`);
} catch (err) {
  process.stderr.write(`audit migration failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await pool.end();
}
