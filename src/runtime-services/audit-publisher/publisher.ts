// Emits audit events to the Redis Stream the audit service consumes. It never
// trims the stream: only the audit service knows what has been persisted.
import type { Redis } from 'ioredis';
import { STREAM_FIELD, invalidAuditField, type AuditEvent, type AuditEventInput } from './event.js';

export interface AuditPublisher {
  /** Resolves with the stream entry id, which becomes the event's id. */
  publish(event: AuditEventInput): Promise<string>;
  /** One round trip for many events (bulk producers, benchmarks). */
  publishMany(events: AuditEventInput[]): Promise<string[]>;
}

function encode(event: AuditEventInput, source: string | undefined): string {
  const e: AuditEvent = {
    ...event,
    source: event.source ?? source,
    timestamp: (event.timestamp ?? new Date()).toISOString(),
    details: event.details ?? {},
  };
  const bad = invalidAuditField(e);
  if (bad) throw new Error(`audit event field ${bad} is missing or invalid (action ${String(event.action)})`);
  return JSON.stringify(e);
}

export function createAuditPublisher(redis: Redis, opts: { stream: string; source?: string }): AuditPublisher {
  return {
    async publish(event) {
      const id = await redis.xadd(opts.stream, '*', STREAM_FIELD, encode(event, opts.source));
      if (!id) throw new Error(`XADD to ${opts.stream} returned no id`);
      return id;
    },
    async publishMany(events) {
      if (events.length === 0) return [];
      const pipeline = redis.pipeline();
      for (const e of events) pipeline.xadd(opts.stream, '*', STREAM_FIELD, encode(e, opts.source));
      const results = (await pipeline.exec()) ?? [];
      return results.map(([err, id], i) => {
        if (err) throw new Error(`XADD of event ${i} to ${opts.stream} failed: ${err.message}`);
        return String(id);
      });
    },
  };
}
