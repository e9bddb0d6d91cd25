// Reads the audit stream through a consumer group and hands batches to the
// store. An entry is XACKed only after the batch holding it has committed;
// entries a crashed replica left pending are taken over with XAUTOCLAIM; the
// stream is trimmed only below what every replica has acknowledged.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { encodeEntry, type EncodedRecord } from './event-codec.js';

type Entry = [id: string, fields: string[]];

export interface StreamConsumerOptions {
  stream: string;
  group: string;
  consumer: string;
  batchSize: number;
  blockMs: number;
  claimMinIdleMs: number;
  claimIntervalMs: number;
  trimIntervalMs: number;
}

export interface ConsumerHooks {
  persist(records: EncodedRecord[]): Promise<{ inserted: number; duplicates: number }>;
  onBatch?(info: { size: number; inserted: number; duplicates: number; seconds: number; claimed: boolean }): void;
  onPending?(count: number): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const yieldToIo = () => new Promise<void>((r) => setImmediate(r));

/** About 5 ms of decoding and hashing between chances for I/O to run. */
const DECODE_SLICE = 256;

/**
 * Decodes a batch in slices. The previous batch's transaction is waiting on
 * PostgreSQL meanwhile; decoding a whole batch in one go would leave each of
 * its replies unread for ~100 ms while the chain lock is held, and stall
 * anything else the process serves (chat sockets).
 */
async function decodeAll(entries: Entry[]): Promise<EncodedRecord[]> {
  const records: EncodedRecord[] = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const [id, fields] = entries[i]!;
    records[i] = encodeEntry(id, fields);
    if (i % DECODE_SLICE === DECODE_SLICE - 1) await yieldToIo();
  }
  return records;
}

export class StreamConsumer {
  private stopping = false;
  private loop?: Promise<void>;
  private lastClaim = 0;
  private lastTrim = 0;
  /** XACKs of committed batches still on their way to Redis. */
  private readonly acking = new Set<Promise<void>>();

  constructor(
    /** Dedicated connection: XREADGROUP BLOCK holds it. */
    private readonly reader: Redis,
    private readonly commands: Redis,
    private readonly opts: StreamConsumerOptions,
    private readonly hooks: ConsumerHooks,
    private readonly log: Logger,
  ) {}

  async ensureGroup(): Promise<void> {
    try {
      // '0' rather than '$': events published before the first replica ever
      // started must be persisted too.
      await this.commands.xgroup('CREATE', this.opts.stream, this.opts.group, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) {
        throw new Error(`creating consumer group ${this.opts.group} on ${this.opts.stream} failed: ${(err as Error).message}`);
      }
    }
  }

  start(): void {
    this.loop = this.run();
  }

  /** Stops reading; resolves once the batch in flight has committed and been acked. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    let backoff = 100;
    // One batch may be in the database while the next is read and decoded:
    // the two stages use different cores (Redis/Node vs PostgreSQL).
    let inFlight: Promise<void> = Promise.resolve();
    while (!this.stopping) {
      try {
        const now = Date.now();
        if (now - this.lastClaim >= this.opts.claimIntervalMs) {
          this.lastClaim = now;
          await inFlight;
          await this.claimAbandoned();
        }
        if (now - this.lastTrim >= this.opts.trimIntervalMs) {
          this.lastTrim = now;
          await this.trim();
        }
        const entries = await this.readNew();
        if (entries.length === 0) continue;
        const records = await decodeAll(entries);
        await inFlight;
        inFlight = this.commit(records, false);
        backoff = 100;
      } catch (err) {
        this.log.error({ err: (err as Error).message, stream: this.opts.stream }, 'audit consumer iteration failed; retrying');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
    await inFlight;
    await Promise.all(this.acking);
  }

  private async readNew(): Promise<Entry[]> {
    const res = (await this.reader.call(
      'XREADGROUP', 'GROUP', this.opts.group, this.opts.consumer,
      'COUNT', String(this.opts.batchSize), 'BLOCK', String(this.opts.blockMs),
      'STREAMS', this.opts.stream, '>',
    )) as [string, Entry[]][] | [string, Entry[]] | null;
    if (!res || res.length === 0) return [];
    // ioredis 6 unwraps the per-stream list when only one stream is read;
    // accept both shapes so a client upgrade cannot silently stall ingestion.
    return typeof res[0] === 'string' ? (res as [string, Entry[]])[1] : ((res as [string, Entry[]][])[0]?.[1] ?? []);
  }

  /** Takes over entries another (likely dead) consumer read but never acked. */
  async claimAbandoned(): Promise<number> {
    let cursor = '0-0';
    let total = 0;
    do {
      const res = (await this.commands.call(
        'XAUTOCLAIM', this.opts.stream, this.opts.group, this.opts.consumer,
        String(this.opts.claimMinIdleMs), cursor, 'COUNT', String(this.opts.batchSize),
      )) as [string, (Entry | null)[], string[]?];
      cursor = res[0];
      // Entries trimmed meanwhile come back as nil; Redis drops them from the PEL itself.
      const entries = res[1].filter((e): e is Entry => Array.isArray(e) && Array.isArray(e[1]));
      if (entries.length > 0) {
        this.log.info({ count: entries.length, consumer: this.opts.consumer }, 'claimed abandoned audit entries');
        await this.process(entries, true);
        total += entries.length;
      }
    } while (cursor !== '0-0' && !this.stopping);
    return total;
  }

  private async process(entries: Entry[], claimed: boolean): Promise<void> {
    await this.commit(await decodeAll(entries), claimed);
  }

  /**
   * Never rejects: failures are retried or, when stopping, left pending.
   * Resolves once the batch has committed; its XACK runs on meanwhile, so the
   * next batch's transaction does not wait for a Redis round trip.
   */
  private async commit(records: EncodedRecord[], claimed: boolean): Promise<void> {
    const started = process.hrtime.bigint();
    // Retry the same batch until it commits: these entries are pending under
    // our name, and acking or dropping them without a commit would lose them.
    let backoff = 100;
    let result: { inserted: number; duplicates: number };
    for (;;) {
      try {
        result = await this.hooks.persist(records);
        break;
      } catch (err) {
        if (this.stopping) {
          this.log.warn({ err: (err as Error).message, count: records.length }, 'leaving uncommitted audit batch pending for another replica');
          return;
        }
        this.log.error({ err: (err as Error).message, count: records.length }, 'persisting audit batch failed; retrying');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
    const ack = this.ack(records, result, claimed, started);
    this.acking.add(ack);
    void ack.finally(() => this.acking.delete(ack));
  }

  /** Only ever called after COMMIT. Never rejects. */
  private async ack(records: EncodedRecord[], result: { inserted: number; duplicates: number }, claimed: boolean, started: bigint): Promise<void> {
    try {
      await this.commands.xack(this.opts.stream, this.opts.group, ...records.map((r) => r.eventId));
    } catch (err) {
      // Committed but not acked: the entries get claimed and skipped as duplicates.
      this.log.warn({ err: (err as Error).message, count: records.length }, 'XACK after commit failed');
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.hooks.onBatch?.({ size: records.length, ...result, seconds, claimed });
  }

  /**
   * Trims below the oldest entry not yet acknowledged: acked entries are
   * committed, so nothing below that point is still needed.
   */
  async trim(): Promise<void> {
    const groups = (await this.commands.call('XINFO', 'GROUPS', this.opts.stream)) as unknown[][];
    if (!groups.some((g) => g[g.indexOf('name') + 1] === this.opts.group)) return;
    // Other services read the same stream with their own groups (gaming):
    // nothing any group still needs may be trimmed.
    let threshold: string | undefined;
    for (const g of groups) {
      const name = String(g[g.indexOf('name') + 1]);
      const lastDelivered = String(g[g.indexOf('last-delivered-id') + 1]);
      // Read after last-delivered so anything delivered in between shows as pending.
      const pending = (await this.commands.call('XPENDING', this.opts.stream, name)) as [number, string | null, string | null, unknown];
      if (name === this.opts.group) this.hooks.onPending?.(Number(pending[0]));
      const t = Number(pending[0]) > 0 && pending[1] ? minId(pending[1], lastDelivered) : lastDelivered;
      threshold = threshold === undefined ? t : minId(threshold, t);
    }
    if (threshold === undefined || threshold === '0-0') return;
    await this.commands.call('XTRIM', this.opts.stream, 'MINID', threshold);
  }
}

export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
}

function minId(a: string, b: string): string {
  return compareIds(a, b) <= 0 ? a : b;
}
