// Reads the platform event stream through gaming's own consumer group,
// applies batches in PostgreSQL, mirrors leaderboard totals to Redis, emits
// audit events for awards, and only then XACKs. A crash anywhere before the
// XACK means redelivery; the event-id ledger turns that into a no-op for
// XP, and the leaderboard write is re-done with current totals.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AuditPublisher } from '../audit-publisher/publisher.js';
import { STREAM_FIELD } from '../audit-publisher/event.js';
import type { PlatformEvent } from './engine.js';
import type { Leaderboards } from './leaderboard.js';
import type { GamingRules } from './rules.js';
import type { BatchResult, GamingStore } from './store.js';
import { isoWeekKey } from './week.js';

type Entry = [id: string, fields: string[]];

export interface ConsumerOptions {
  stream: string;
  group: string;
  consumer: string;
  batchSize: number;
  blockMs: number;
  claimMinIdleMs: number;
  claimIntervalMs: number;
  rules: GamingRules;
  timeZone: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function decodeEntry([id, fields]: Entry): PlatformEvent | undefined {
  const i = fields.indexOf(STREAM_FIELD);
  if (i < 0 || i % 2 !== 0) return undefined;
  try {
    const e = JSON.parse(fields[i + 1]!) as Record<string, unknown>;
    const ts = new Date(String(e.timestamp));
    if (typeof e.actor !== 'string' || typeof e.action !== 'string' || Number.isNaN(ts.getTime())) return undefined;
    return { id, actor: e.actor, action: e.action, outcome: e.outcome === 'success' ? 'success' : 'failure', timestamp: ts };
  } catch {
    return undefined;
  }
}

export class GamingConsumer {
  private stopping = false;
  private loop?: Promise<void>;
  private lastClaim = 0;

  constructor(
    /** Dedicated connection: XREADGROUP BLOCK holds it. */
    private readonly reader: Redis,
    private readonly commands: Redis,
    private readonly store: GamingStore,
    private readonly boards: Leaderboards,
    private readonly audit: AuditPublisher,
    private readonly opts: ConsumerOptions,
    private readonly log: Logger,
    private readonly hooks: { onBatch?(r: BatchResult, seconds: number): void } = {},
  ) {}

  async ensureGroup(): Promise<void> {
    try {
      // From the start of what the stream still holds: gaming state is derived from history.
      await this.commands.xgroup('CREATE', this.opts.stream, this.opts.group, '0', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw new Error(`creating consumer group ${this.opts.group} failed: ${(err as Error).message}`);
    }
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    let backoff = 200;
    while (!this.stopping) {
      try {
        let entries: Entry[] = [];
        if (Date.now() - this.lastClaim >= this.opts.claimIntervalMs) {
          this.lastClaim = Date.now();
          const claimed = (await this.commands.xautoclaim(this.opts.stream, this.opts.group, this.opts.consumer, this.opts.claimMinIdleMs, '0-0', 'COUNT', this.opts.batchSize)) as [string, (Entry | null)[]];
          entries = claimed[1].filter((e): e is Entry => Array.isArray(e));
        }
        if (!entries.length) {
          const res = (await this.reader.xreadgroup(
            'GROUP', this.opts.group, this.opts.consumer, 'COUNT', this.opts.batchSize, 'BLOCK', this.opts.blockMs, 'STREAMS', this.opts.stream, '>',
          )) as [string, Entry[]][] | null;
          entries = res?.[0]?.[1] ?? [];
        }
        if (entries.length) await this.handle(entries);
        backoff = 200;
      } catch (err) {
        if (this.stopping) break;
        if (/NOGROUP/.test((err as Error).message)) await this.ensureGroup().catch(() => {});
        this.log.warn({ err: (err as Error).message, retryInMs: backoff }, 'gaming batch failed; retrying');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  /** Public for the benchmark and tests: one batch end to end. */
  async handle(entries: Entry[]): Promise<BatchResult> {
    const started = process.hrtime.bigint();
    const events = entries.map(decodeEntry).filter((e): e is PlatformEvent => !!e);
    if (events.length < entries.length) this.log.warn({ skipped: entries.length - events.length }, 'undecodable stream entries skipped');
    const result = await this.store.applyBatch(events, this.opts.rules, this.opts.timeZone);
    const lb = [
      ...result.totals.map((t) => ({ board: 'all', email: t.email, xp: t.xp })),
      ...result.weekly.map((w) => ({ board: w.week, email: w.email, xp: w.xp })),
    ];
    if (result.duplicates > 0) {
      // Redelivered entries: their leaderboard write may be what was lost.
      const emails = [...new Set(events.filter((e) => e.actor.includes('@')).map((e) => e.actor.toLowerCase()))];
      const weeks = [...new Set(events.map((e) => isoWeekKey(e.timestamp, this.opts.timeZone)))];
      const cur = await this.store.totalsOf(emails, weeks);
      lb.push(...cur.totals.map((t) => ({ board: 'all', ...t })), ...cur.weekly.map((w) => ({ board: w.week, email: w.email, xp: w.xp })));
    }
    await this.boards.publish(lb);
    const ch = result.changes;
    const auditEvents = [
      ...ch.achievements.map((a) => ({ actor: 'gaming', action: 'gaming.achievement.award', target: `gaming/player/${a.email}`, outcome: 'success' as const, details: { achievement: a.id, name: a.name, eventId: a.eventId } })),
      ...ch.completedChallenges.map((c) => ({ actor: 'gaming', action: 'gaming.challenge.complete', target: `gaming/player/${c.email}`, outcome: 'success' as const, details: { challenge: c.id, eventId: c.eventId } })),
      ...ch.levelUps.map((l) => ({ actor: 'gaming', action: 'gaming.level.up', target: `gaming/player/${l.email}`, outcome: 'success' as const, details: { from: l.from, to: l.to } })),
    ];
    if (auditEvents.length) await this.audit.publishMany(auditEvents);
    await this.commands.xack(this.opts.stream, this.opts.group, ...entries.map((e) => e[0]));
    this.hooks.onBatch?.(result, Number(process.hrtime.bigint() - started) / 1e9);
    return result;
  }
}
