// Read side for the admin audit viewer: newest first, keyset pagination on
// seq so pages stay stable while new events arrive.
import type pg from 'pg';
import { z } from 'zod';
import type { ChainContent } from './chain.js';

export const AuditQuerySchema = z.object({
  actor: z.string().min(1).optional(),
  action: z.string().min(1).optional(),
  target: z.string().min(1).optional(),
  from: z.string().datetime({ offset: true }).optional(),
  to: z.string().datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().regex(/^[0-9]{1,19}$/, 'cursor must be a seq returned as nextCursor').optional(),
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
