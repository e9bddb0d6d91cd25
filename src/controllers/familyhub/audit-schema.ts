// The audit service writes with a role that must not own (or be a member of
// the owner of) its tables, or it could lift their immutability. Its
// Service's DatabaseClaim gives it such a role: the claim's NOLOGIN owner
// role, which every rotated login becomes (SET role) and which is not a
// member of anything else. The tables themselves are created by the
// operator as the hub's PostgreSQL admin — the owner's credentials never
// reach a pod — with the runtime's own migration (the same statements
// audit/migrate-cli.ts runs as a Job), granting exactly the writer's rights.
import type { Logger } from 'pino';
import { createAdminPool, type PgTarget } from '../../postgres/admin-pool.js';
import { migrateAuditSchema } from '../../runtime-services/audit/schema.js';

/** What was migrated, per hub: a restarted operator migrates once more (the migration is idempotent). */
const migrated = new Map<string, string>();

export async function ensureAuditSchema(hubUid: string, target: PgTarget, writerRole: string, log: Logger): Promise<void> {
  const key = `${target.host}:${target.port}/${target.database}\u0000${writerRole}`;
  if (migrated.get(hubUid) === key) return;
  const pool = createAdminPool(target, { max: 1 });
  try {
    await migrateAuditSchema(pool, { appRole: writerRole });
  } finally {
    await pool.end().catch(() => {});
  }
  migrated.set(hubUid, key);
  log.info({ writerRole }, 'audit schema migrated; writer role granted');
}

export function forgetAuditSchema(hubUid: string): void {
  migrated.delete(hubUid);
}
