// Read side for the admin audit viewer: newest first, keyset pagination on
// seq so pages stay stable while new events arrive.
import type pg from 'pg';
import { z } from 'zod';
import { bigintString, plainText } from '../base/validation.js';
import type { ChainContent } from './chain.js';

// Every value reaches PostgreSQL: bounded like the stored fields, no control
// characters (text cannot hold NUL), seq cursors within bigint, timestamps
// within what timestamptz accepts.
const instant = z
  .string()
  .datetime({ offset: true })
  .refine((s) => Number(s.slice(0, 4)) >= 1, 'year must be 0001 or later');

export const AuditQuerySchema = z.object({
  actor: plainText(320).optional(),
  action: plainText(200).optional(),
  target: plainText(500).optional(),
  from: instant.optional(),
  to: instant.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: bigintString('cursor').optional(),
});

export type AuditQuery = z.infer<typeof AuditQuerySchema>;

/** A stored event as the API returns it: the chained fields, timestamps as ISO strings. */
export interface AuditEventView extends Omit<ChainContent, 'occurredAt'> {
  seq: string;
  occurredAt: string;
  recordedAt: string;
}

export async function queryAuditEvents(pool: pg.Pool, q: AuditQuery): Promise<{ events: AuditEventView[]; nextCursor: string | null }> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if (q.actor) add('actor = ?', q.actor);
  if (q.action) add('action = ?', q.action);
  if (q.target) add('target = ?', q.target);
  if (q.from) add('occurred_at >= ?', q.from);
  if (q.to) add('occurred_at < ?', q.to);
  if (q.cursor) add('seq < ?', q.cursor);
  params.push(q.limit + 1);
  const { rows } = await pool.query(
    `SELECT seq, event_id, occurred_at, recorded_at, actor, action, target, outcome, request_id, source, details
       FROM audit.events ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY seq DESC LIMIT $${params.length}`,
    params,
  );
  const page = rows.slice(0, q.limit);
  return {
    events: page.map((r) => ({
      seq: r.seq, eventId: r.event_id, occurredAt: r.occurred_at.toISOString(), recordedAt: r.recorded_at.toISOString(),
      actor: r.actor, action: r.action, target: r.target, outcome: r.outcome, requestId: r.request_id, source: r.source,
      details: r.details,
    })),
    nextCursor: rows.length > q.limit ? page[page.length - 1]!.seq : null,
  };
}
