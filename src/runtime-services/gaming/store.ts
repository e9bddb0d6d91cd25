// PostgreSQL is the source of truth for gaming: players (XP, level, Elo),
// the award ledger keyed by event id, counters, streaks, achievements,
// weekly XP, challenges and games. Redis only mirrors the leaderboards.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { applyEvents, emptyState, key, countsFor, type Challenge, type Changes, type PlatformEvent } from './engine.js';
import { rate, type EloPlayer, type Score } from './elo.js';
import type { GamingRules } from './rules.js';
import { isoWeekKey } from './week.js';
import { runMigrations } from '../base/connections.js';

const MIGRATION_LOCK = 7_265_015;

const STATEMENTS = [
  `CREATE SCHEMA IF NOT EXISTS gaming`,
  `CREATE TABLE IF NOT EXISTS gaming.players (
     email        text PRIMARY KEY,
     xp           bigint NOT NULL DEFAULT 0,
     level        integer NOT NULL DEFAULT 1,
     rating       double precision NOT NULL DEFAULT 1500,
     games        integer NOT NULL DEFAULT 0,
     reached_2400 boolean NOT NULL DEFAULT false,
     created_at   timestamptz NOT NULL DEFAULT now()
   )`,
  `CREATE TABLE IF NOT EXISTS gaming.processed_events (event_id text PRIMARY KEY, processed_at timestamptz NOT NULL DEFAULT now())`,
  `CREATE TABLE IF NOT EXISTS gaming.xp_awards (
     event_id   text NOT NULL,
     email      text NOT NULL,
     reason     text NOT NULL,
     amount     integer NOT NULL,
     week       text NOT NULL,
     awarded_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (event_id, email, reason)
   )`,
  `CREATE TABLE IF NOT EXISTS gaming.counters (email text, action text, count bigint NOT NULL, PRIMARY KEY (email, action))`,
  `CREATE TABLE IF NOT EXISTS gaming.streaks (email text, rule_id text, last_day date NOT NULL, length integer NOT NULL, PRIMARY KEY (email, rule_id))`,
  `CREATE TABLE IF NOT EXISTS gaming.achievements (
     email text, achievement_id text, event_id text NOT NULL, awarded_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (email, achievement_id)
   )`,
  `CREATE TABLE IF NOT EXISTS gaming.weekly_xp (email text, week text, xp bigint NOT NULL, PRIMARY KEY (email, week))`,
  `CREATE INDEX IF NOT EXISTS weekly_xp_week_idx ON gaming.weekly_xp (week)`,
  `CREATE TABLE IF NOT EXISTS gaming.challenges (
     id text PRIMARY KEY, week text NOT NULL, title text NOT NULL, action text NOT NULL,
     target integer NOT NULL CHECK (target > 0), xp integer NOT NULL CHECK (xp >= 0),
     created_by text NOT NULL, created_at timestamptz NOT NULL DEFAULT now()
   )`,
  `CREATE INDEX IF NOT EXISTS challenges_week_idx ON gaming.challenges (week)`,
  `CREATE TABLE IF NOT EXISTS gaming.challenge_progress (
     email text, challenge_id text REFERENCES gaming.challenges (id) ON DELETE CASCADE,
     count integer NOT NULL, completed boolean NOT NULL DEFAULT false, PRIMARY KEY (email, challenge_id)
   )`,
  `CREATE TABLE IF NOT EXISTS gaming.games (
     id           uuid PRIMARY KEY,
     player_a     text NOT NULL,
     player_b     text NOT NULL CHECK (player_b <> player_a),
     score_a      real NOT NULL CHECK (score_a IN (0, 0.5, 1)),
     reported_by  text NOT NULL,
     state        text NOT NULL CHECK (state IN ('pending', 'final', 'disputed')),
     confirmed_by text,
     rating_a_before double precision, rating_a_after double precision,
     rating_b_before double precision, rating_b_after double precision,
     created_at   timestamptz NOT NULL DEFAULT now(),
     finalized_at timestamptz,
     final_seq    bigserial
   )`,
  `CREATE INDEX IF NOT EXISTS games_players_idx ON gaming.games (player_a, player_b)`,
];

export interface BatchResult {
  fresh: number;
  duplicates: number;
  changes: Changes;
  /** Totals after COMMIT for the leaderboards. */
  totals: { email: string; xp: number }[];
  weekly: { email: string; week: string; xp: number }[];
}

export interface Game {
  id: string;
  playerA: string;
  playerB: string;
  scoreA: Score;
  reportedBy: string;
  state: 'pending' | 'final' | 'disputed';
  ratings?: { aBefore: number; aAfter: number; bBefore: number; bAfter: number };
}

export class GamingError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

async function tx<T>(pool: pg.Pool, what: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const r = await fn(c);
    await c.query('COMMIT');
    return r;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    if (err instanceof GamingError) throw err;
    throw new Error(`${what} failed: ${(err as Error).message}`);
  } finally {
    c.release();
  }
}

const split = (k: string) => k.split('\0') as [string, string];

export class GamingStore {
  constructor(private readonly pool: pg.Pool) {}

  async migrate(): Promise<void> {
    await runMigrations(this.pool, 'gaming', MIGRATION_LOCK, STATEMENTS);
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1 FROM gaming.players LIMIT 1');
  }

  /**
   * Applies a batch of stream entries in one transaction. Event ids already
   * processed are skipped (the ledger's key), so a redelivered or replayed
   * batch awards nothing twice. Player rows are locked in e-mail order, the
   * same order Elo uses, so concurrent batches and games cannot deadlock.
   */
  async applyBatch(events: PlatformEvent[], rules: GamingRules, timeZone: string): Promise<BatchResult> {
    return tx(this.pool, `applying ${events.length} events`, async (c) => {
      // Events that can never award anything (failures, non-users, gaming's
      // own) need no ledger entry: applying them twice changes nothing.
      const counting = events.filter(countsFor);
      const { rows: fresh } = counting.length
        ? await c.query<{ event_id: string }>(
          'INSERT INTO gaming.processed_events (event_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING event_id',
          [counting.map((e) => e.id)],
        )
        : { rows: [] };
      const freshIds = new Set(fresh.map((r) => r.event_id));
      const todo = counting.filter((e) => freshIds.has(e.id));
      const result: BatchResult = { fresh: freshIds.size, duplicates: counting.length - freshIds.size, changes: applyEvents(emptyState(), [], rules, timeZone), totals: [], weekly: [] };
      if (todo.length === 0) return result;

      const emails = [...new Set(todo.map((e) => e.actor.toLowerCase()))].sort();
      const weeks = [...new Set(todo.map((e) => isoWeekKey(e.timestamp, timeZone)))];
      const actions = [...new Set(todo.map((e) => e.action))];
      const state = emptyState();
      // One statement creates missing players and locks all of them (in
      // e-mail order: the array is sorted), returning their current state.
      const players = await c.query<{ email: string; xp: string; level: number }>(
        `INSERT INTO gaming.players (email) SELECT unnest($1::text[])
         ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING email, xp, level`, [emails],
      );
      for (const p of players.rows) state.players.set(p.email, { xp: Number(p.xp), level: p.level });
      const [counters, streaks, achievements, weekly, challenges] = await Promise.all([
        c.query<{ email: string; action: string; count: string }>('SELECT email, action, count FROM gaming.counters WHERE email = ANY($1) AND action = ANY($2)', [emails, actions]),
        c.query<{ email: string; rule_id: string; last_day: string; length: number }>(`SELECT email, rule_id, to_char(last_day, 'YYYY-MM-DD') AS last_day, length FROM gaming.streaks WHERE email = ANY($1)`, [emails]),
        c.query<{ email: string; achievement_id: string }>('SELECT email, achievement_id FROM gaming.achievements WHERE email = ANY($1)', [emails]),
        c.query<{ email: string; week: string; xp: string }>('SELECT email, week, xp FROM gaming.weekly_xp WHERE email = ANY($1) AND week = ANY($2)', [emails, weeks]),
        c.query<{ id: string; week: string; action: string; target: number; xp: number }>('SELECT id, week, action, target, xp FROM gaming.challenges WHERE week = ANY($1)', [weeks]),
      ]);
      for (const r of counters.rows) state.counters.set(key(r.email, r.action), Number(r.count));
      for (const r of streaks.rows) state.streaks.set(key(r.email, r.rule_id), { lastDay: r.last_day, length: r.length });
      for (const r of achievements.rows) state.achievements.add(key(r.email, r.achievement_id));
      for (const r of weekly.rows) state.weekly.set(key(r.email, r.week), Number(r.xp));
      state.challenges = challenges.rows as Challenge[];
      if (state.challenges.length) {
        const progress = await c.query<{ email: string; challenge_id: string; count: number; completed: boolean }>(
          'SELECT email, challenge_id, count, completed FROM gaming.challenge_progress WHERE email = ANY($1) AND challenge_id = ANY($2)',
          [emails, state.challenges.map((x) => x.id)],
        );
        for (const r of progress.rows) state.progress.set(key(r.email, r.challenge_id), { count: r.count, completed: r.completed });
      }

      const ch = applyEvents(state, todo, rules, timeZone);
      result.changes = ch;
      const t = ch.touched;
      const pl = [...t.players].map((e) => [e, state.players.get(e)!] as const);
      if (pl.length) {
        await c.query(
          `UPDATE gaming.players p SET xp = v.xp, level = v.level FROM unnest($1::text[], $2::bigint[], $3::int[]) AS v(email, xp, level) WHERE p.email = v.email`,
          [pl.map(([e]) => e), pl.map(([, p]) => p.xp), pl.map(([, p]) => p.level)],
        );
      }
      const upsert = async (sql: string, cols: unknown[][]) => {
        if (cols[0]!.length) await c.query(sql, cols);
      };
      const cs = [...t.counters].map(split);
      await upsert(
        `INSERT INTO gaming.counters (email, action, count) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
         ON CONFLICT (email, action) DO UPDATE SET count = EXCLUDED.count`,
        [cs.map((x) => x[0]), cs.map((x) => x[1]), cs.map((x) => state.counters.get(key(...x)))],
      );
      const ss = [...t.streaks].map(split);
      await upsert(
        `INSERT INTO gaming.streaks (email, rule_id, last_day, length) SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::int[])
         ON CONFLICT (email, rule_id) DO UPDATE SET last_day = EXCLUDED.last_day, length = EXCLUDED.length`,
        [ss.map((x) => x[0]), ss.map((x) => x[1]), ss.map((x) => state.streaks.get(key(...x))!.lastDay), ss.map((x) => state.streaks.get(key(...x))!.length)],
      );
      const ws = [...t.weekly].map(split);
      await upsert(
        `INSERT INTO gaming.weekly_xp (email, week, xp) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
         ON CONFLICT (email, week) DO UPDATE SET xp = EXCLUDED.xp`,
        [ws.map((x) => x[0]), ws.map((x) => x[1]), ws.map((x) => state.weekly.get(key(...x)))],
      );
      const ps = [...t.progress].map(split);
      await upsert(
        `INSERT INTO gaming.challenge_progress (email, challenge_id, count, completed) SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bool[])
         ON CONFLICT (email, challenge_id) DO UPDATE SET count = EXCLUDED.count, completed = EXCLUDED.completed`,
        [ps.map((x) => x[0]), ps.map((x) => x[1]), ps.map((x) => state.progress.get(key(...x))!.count), ps.map((x) => state.progress.get(key(...x))!.completed)],
      );
      await upsert(
        `INSERT INTO gaming.xp_awards (event_id, email, reason, amount, week) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[])`,
        [ch.awards.map((a) => a.eventId), ch.awards.map((a) => a.email), ch.awards.map((a) => a.reason), ch.awards.map((a) => a.amount), ch.awards.map((a) => a.week)],
      );
      await upsert(
        `INSERT INTO gaming.achievements (email, achievement_id, event_id) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])`,
        [ch.achievements.map((a) => a.email), ch.achievements.map((a) => a.id), ch.achievements.map((a) => a.eventId)],
      );
      result.totals = pl.map(([email, p]) => ({ email, xp: p.xp }));
      result.weekly = ws.map(([email, week]) => ({ email, week, xp: state.weekly.get(key(email, week))! }));
      return result;
    });
  }

  /** Current totals of some players, for re-publishing leaderboard entries after a redelivery. */
  async totalsOf(emails: string[], weeks: string[]): Promise<{ totals: { email: string; xp: number }[]; weekly: { email: string; week: string; xp: number }[] }> {
    const [t, w] = await Promise.all([
      this.pool.query<{ email: string; xp: string }>('SELECT email, xp FROM gaming.players WHERE email = ANY($1) AND xp > 0', [emails]),
      this.pool.query<{ email: string; week: string; xp: string }>('SELECT email, week, xp FROM gaming.weekly_xp WHERE email = ANY($1) AND week = ANY($2)', [emails, weeks]),
    ]);
    return { totals: t.rows.map((r) => ({ email: r.email, xp: Number(r.xp) })), weekly: w.rows.map((r) => ({ email: r.email, week: r.week, xp: Number(r.xp) })) };
  }

  /** Streams every leaderboard entry (for a rebuild) in pages. */
  async *allTotals(page = 5000): AsyncGenerator<{ board: 'all' | string; email: string; xp: number }[]> {
    let after = '';
    for (;;) {
      const { rows } = await this.pool.query<{ email: string; xp: string }>(
        'SELECT email, xp FROM gaming.players WHERE email > $1 AND xp > 0 ORDER BY email LIMIT $2', [after, page],
      );
      if (!rows.length) break;
      yield rows.map((r) => ({ board: 'all', email: r.email, xp: Number(r.xp) }));
      after = rows[rows.length - 1]!.email;
    }
    let cursor: [string, string] = ['', ''];
    for (;;) {
      const { rows } = await this.pool.query<{ email: string; week: string; xp: string }>(
        'SELECT email, week, xp FROM gaming.weekly_xp WHERE (week, email) > ($1, $2) AND xp > 0 ORDER BY week, email LIMIT $3', [cursor[0], cursor[1], page],
      );
      if (!rows.length) break;
      yield rows.map((r) => ({ board: r.week, email: r.email, xp: Number(r.xp) }));
      const last = rows[rows.length - 1]!;
      cursor = [last.week, last.email];
    }
  }

  async player(email: string) {
    const { rows } = await this.pool.query<{ email: string; xp: string; level: number; rating: number; games: number }>(
      'SELECT email, xp, level, rating, games FROM gaming.players WHERE email = $1', [email],
    );
    const p = rows[0];
    const ach = await this.pool.query<{ achievement_id: string; awarded_at: Date }>(
      'SELECT achievement_id, awarded_at FROM gaming.achievements WHERE email = $1 ORDER BY awarded_at, achievement_id', [email],
    );
    return {
      email,
      xp: Number(p?.xp ?? 0),
      level: p?.level ?? 1,
      rating: p?.rating ?? 1500,
      games: p?.games ?? 0,
      achievements: ach.rows.map((r) => ({ id: r.achievement_id, awardedAt: r.awarded_at.toISOString() })),
    };
  }

  async createChallenge(c: Omit<Challenge, 'id'> & { title: string; createdBy: string }): Promise<Challenge & { title: string }> {
    const id = randomUUID();
    await this.pool.query(
      'INSERT INTO gaming.challenges (id, week, title, action, target, xp, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [id, c.week, c.title, c.action, c.target, c.xp, c.createdBy],
    );
    return { id, week: c.week, title: c.title, action: c.action, target: c.target, xp: c.xp };
  }

  async challenges(week: string, email: string) {
    const { rows } = await this.pool.query<{ id: string; week: string; title: string; action: string; target: number; xp: number; count: number | null; completed: boolean | null }>(
      `SELECT c.id, c.week, c.title, c.action, c.target, c.xp, p.count, p.completed FROM gaming.challenges c
         LEFT JOIN gaming.challenge_progress p ON p.challenge_id = c.id AND p.email = $2
        WHERE c.week = $1 ORDER BY c.created_at, c.id`, [week, email],
    );
    return rows.map((r) => ({ id: r.id, week: r.week, title: r.title, action: r.action, target: r.target, xp: r.xp, progress: r.count ?? 0, completed: r.completed ?? false }));
  }

  /** A result reported by one of the players waits for the other's confirmation. */
  async reportGame(g: { playerA: string; playerB: string; scoreA: Score; reportedBy: string }): Promise<Game> {
    const id = randomUUID();
    await this.pool.query(
      `INSERT INTO gaming.games (id, player_a, player_b, score_a, reported_by, state) VALUES ($1, $2, $3, $4, $5, 'pending')`,
      [id, g.playerA, g.playerB, g.scoreA, g.reportedBy],
    );
    return { id, ...g, state: 'pending' };
  }

  async game(id: string): Promise<Game | undefined> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
    const { rows } = await this.pool.query('SELECT * FROM gaming.games WHERE id = $1', [id]);
    const r = rows[0];
    return r && {
      id: r.id, playerA: r.player_a, playerB: r.player_b, scoreA: r.score_a, reportedBy: r.reported_by, state: r.state,
      ratings: r.state === 'final' ? { aBefore: r.rating_a_before, aAfter: r.rating_a_after, bBefore: r.rating_b_before, bAfter: r.rating_b_after } : undefined,
    };
  }

  async disputeGame(id: string): Promise<void> {
    await this.pool.query(`UPDATE gaming.games SET state = 'disputed' WHERE id = $1 AND state = 'pending'`, [id]);
  }

  /**
   * Applies the rating change of a game once. Both players' rows are locked
   * (in e-mail order) and re-read inside the transaction, so two games of
   * the same player finalised at once are applied one after the other with
   * no update lost.
   */
  async finalizeGame(id: string, confirmedBy: string, create?: { playerA: string; playerB: string; scoreA: Score }): Promise<Game> {
    return tx(this.pool, `finalizing game ${id}`, async (c) => {
      let g: { player_a: string; player_b: string; score_a: number; state: string; reported_by: string };
      if (create) {
        await c.query(
          `INSERT INTO gaming.games (id, player_a, player_b, score_a, reported_by, state) VALUES ($1, $2, $3, $4, $5, 'pending')`,
          [id, create.playerA, create.playerB, create.scoreA, confirmedBy],
        );
      }
      const { rows } = await c.query('SELECT player_a, player_b, score_a, state, reported_by FROM gaming.games WHERE id = $1 FOR UPDATE', [id]);
      if (!rows[0]) throw new GamingError(404, 'not_found', `game ${id} not found`);
      g = rows[0];
      if (g.state !== 'pending') throw new GamingError(409, 'not_pending', `game ${id} is ${g.state}`);
      const pair = [g.player_a, g.player_b].sort();
      await c.query('INSERT INTO gaming.players (email) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [pair]);
      const { rows: ps } = await c.query<{ email: string; rating: number; games: number; reached_2400: boolean }>(
        'SELECT email, rating, games, reached_2400 FROM gaming.players WHERE email = ANY($1) ORDER BY email FOR UPDATE', [pair],
      );
      const byEmail = new Map(ps.map((p) => [p.email, { rating: p.rating, games: p.games, reached2400: p.reached_2400 } as EloPlayer]));
      const a = byEmail.get(g.player_a)!;
      const b = byEmail.get(g.player_b)!;
      const r = rate(a, b, g.score_a as Score);
      for (const [email, p] of [[g.player_a, r.a], [g.player_b, r.b]] as const) {
        await c.query('UPDATE gaming.players SET rating = $2, games = $3, reached_2400 = $4 WHERE email = $1', [email, p.rating, p.games, p.reached2400]);
      }
      await c.query(
        `UPDATE gaming.games SET state = 'final', confirmed_by = $2, finalized_at = now(),
           rating_a_before = $3, rating_a_after = $4, rating_b_before = $5, rating_b_after = $6, final_seq = nextval('gaming.games_final_seq_seq')
         WHERE id = $1`,
        [id, confirmedBy, a.rating, r.a.rating, b.rating, r.b.rating],
      );
      return {
        id, playerA: g.player_a, playerB: g.player_b, scoreA: g.score_a as Score, reportedBy: g.reported_by, state: 'final',
        ratings: { aBefore: a.rating, aAfter: r.a.rating, bBefore: b.rating, bAfter: r.b.rating },
      };
    });
  }

  /** Finalised games of a player in commit order (rating history). */
  async history(email: string): Promise<{ id: string; before: number; after: number }[]> {
    const { rows } = await this.pool.query<{ id: string; player_a: string; a0: number; a1: number; b0: number; b1: number }>(
      `SELECT id, player_a, rating_a_before AS a0, rating_a_after AS a1, rating_b_before AS b0, rating_b_after AS b1
         FROM gaming.games WHERE state = 'final' AND (player_a = $1 OR player_b = $1) ORDER BY final_seq`, [email],
    );
    return rows.map((r) => (r.player_a === email ? { id: r.id, before: r.a0, after: r.a1 } : { id: r.id, before: r.b0, after: r.b1 }));
  }
}
