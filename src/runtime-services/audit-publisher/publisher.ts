// Emits audit events to the Redis Stream the audit service consumes. It never
// trims the stream: only the audit service knows what has been persisted.
import type { Redis } from 'ioredis';
import { STREAM_FIELD, invalidAuditField, type AuditEvent, type AuditEventInput } from './event.js';

// One script call appends a whole chunk: per-command client overhead, not
// Redis, is what limits a bulk producer. Chunks stay small so the script
// never blocks Redis for long.
const XADD_MANY = `
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', ARGV[1], ARGV[i]) end
return ids`;
const BULK_CHUNK = 1000;

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
      const ids: string[] = [];
      for (let i = 0; i < events.length; i += BULK_CHUNK) {
        const payloads = events.slice(i, i + BULK_CHUNK).map((e) => encode(e, opts.source));
        try {
          ids.push(...((await redis.eval(XADD_MANY, 1, opts.stream, STREAM_FIELD, ...payloads)) as string[]));
        } catch (err) {
          throw new Error(`XADD of ${payloads.length} events to ${opts.stream} failed: ${(err as Error).message}`);
        }
      }
      return ids;
    },
  };
}
