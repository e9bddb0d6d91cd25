// Leaderboards as Redis sorted sets, one per period (all-time, each ISO
// week). The score stored is −XP, so ascending order (ZRANGE/ZRANK) puts
// the most XP first and breaks ties by e-mail ascending — deterministic and
// readable. Writes carry absolute totals from PostgreSQL with `ZADD LT`
// (keep the lower −XP, i.e. the higher XP): applying them twice or out of
// order cannot move a player backwards, so redeliveries and a rebuild
// running beside live updates are safe. A marker key says the sets are
// complete; when Redis lost it (flush, restart without persistence) the
// boards are rebuilt from PostgreSQL before they are read.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { WEEK_KEY } from './week.js';

export interface Entry {
  email: string;
  xp: number;
  rank: number;
}

export class Leaderboards {
  private rebuilding?: Promise<void>;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly source: () => AsyncIterable<{ board: string; email: string; xp: number }[]>,
    private readonly log: Logger,
  ) {}

  boardKey(board: string): string {
    if (board !== 'all' && !WEEK_KEY.test(board)) throw new Error(`unknown leaderboard ${board}`);
    return `${this.prefix}lb:${board}`;
  }

  private get marker() {
    return `${this.prefix}lb:complete`;
  }

  async publish(entries: { board: string; email: string; xp: number }[]): Promise<void> {
    if (!entries.length) return;
    const p = this.redis.pipeline();
    for (const e of entries) p.zadd(this.boardKey(e.board), 'LT', -e.xp, e.email);
    const res = await p.exec();
    const failed = res?.find(([err]) => err);
    if (failed) throw new Error(`leaderboard update failed: ${(failed[0] as Error).message}`);
  }

  /** Rebuilds from PostgreSQL when the completeness marker is gone. */
  async ensureComplete(): Promise<void> {
    if ((await this.redis.exists(this.marker)) === 0) await this.rebuild();
  }

  rebuild(): Promise<void> {
    this.rebuilding ??= (async () => {
      const started = Date.now();
      let n = 0;
      for await (const page of this.source()) {
        await this.publish(page);
        n += page.length;
      }
      await this.redis.set(this.marker, new Date().toISOString());
      this.log.info({ entries: n, ms: Date.now() - started }, 'leaderboards rebuilt from PostgreSQL');
    })().finally(() => {
      this.rebuilding = undefined;
    });
    return this.rebuilding;
  }

  /**
   * Runs a read together with the marker check in one round trip; when the
   * marker is gone the boards are rebuilt and the read is repeated.
   */
  private async read<T>(fn: (m: ReturnType<Redis['multi']>) => void): Promise<T[]> {
    for (let attempt = 0; ; attempt++) {
      const m = this.redis.multi().exists(this.marker);
      fn(m);
      const res = (await m.exec()) ?? [];
      const failed = res.find(([err]) => err);
      if (failed) throw new Error(`leaderboard read failed: ${(failed[0] as Error).message}`);
      if (res[0]![1] === 1 || attempt > 0) return res.slice(1).map(([, v]) => v as T);
      await this.rebuild();
    }
  }

  async top(board: string, limit: number, offset = 0): Promise<Entry[]> {
    const k = this.boardKey(board);
    const [flat] = await this.read<string[]>((m) => m.zrange(k, offset, String(offset + limit - 1), 'WITHSCORES'));
    return pairs(flat!, offset);
  }

  async rank(board: string, email: string): Promise<Entry | undefined> {
    const k = this.boardKey(board);
    const [r, s] = await this.read<number | string | null>((m) => m.zrank(k, email).zscore(k, email));
    return r === null || r === undefined || s === null || s === undefined ? undefined : { email, xp: -Number(s), rank: Number(r) + 1 };
  }

  /** The player and `radius` neighbours on each side. */
  async aroundMe(board: string, email: string, radius: number): Promise<Entry[]> {
    const k = this.boardKey(board);
    const [r] = await this.read<number | null>((m) => m.zrank(k, email));
    if (r === null || r === undefined) return [];
    const from = Math.max(0, r - radius);
    // A second read: the rank may move between the two, which only shifts the window.
    return pairs(await this.redis.zrange(k, from, String(r + radius), 'WITHSCORES'), from);
  }
}

function pairs(flat: string[], offset: number): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push({ email: flat[i]!, xp: -Number(flat[i + 1]), rank: offset + i / 2 + 1 });
  return out;
}
