// Applies a batch of platform events to the players' state in memory, in
// stream order. The store loads the state of every player the batch touches
// (rows locked), runs this, and writes back what changed in the same
// transaction, so the rules stay testable without a database and a batch of
// 1000 events costs a handful of statements instead of thousands.
import type { AchievementRule, GamingRules } from './rules.js';
import { levelFor } from './rules.js';
import { dayDiff, isoWeekKey, localDay } from './week.js';

export interface PlatformEvent {
  /** Stream entry id: the award key. */
  id: string;
  actor: string;
  action: string;
  outcome: 'success' | 'failure';
  timestamp: Date;
}

export interface Challenge {
  id: string;
  week: string;
  action: string;
  target: number;
  xp: number;
}

export interface GamingState {
  players: Map<string, { xp: number; level: number }>;
  /** `${email}\0${action}` → count */
  counters: Map<string, number>;
  /** `${email}\0${ruleId}` → last local day and current length */
  streaks: Map<string, { lastDay: string; length: number }>;
  /** `${email}\0${achievementId}` */
  achievements: Set<string>;
  /** `${email}\0${week}` → XP earned that week */
  weekly: Map<string, number>;
  challenges: Challenge[];
  /** `${email}\0${challengeId}` → progress */
  progress: Map<string, { count: number; completed: boolean }>;
}

export interface XpAward {
  eventId: string;
  email: string;
  amount: number;
  /** `action:<name>`, `achievement:<id>` or `challenge:<id>` */
  reason: string;
  week: string;
}

export interface Changes {
  awards: XpAward[];
  achievements: { email: string; id: string; name: string; eventId: string }[];
  completedChallenges: { email: string; id: string; eventId: string }[];
  levelUps: { email: string; from: number; to: number }[];
  touched: { players: Set<string>; counters: Set<string>; streaks: Set<string>; weekly: Set<string>; progress: Set<string> };
}

export const key = (a: string, b: string) => `${a}\0${b}`;

export function emptyState(): GamingState {
  return { players: new Map(), counters: new Map(), streaks: new Map(), achievements: new Set(), weekly: new Map(), challenges: [], progress: new Map() };
}

/** Who an event counts for: an e-mail actor whose action succeeded, and never gaming's own events. */
export function countsFor(e: PlatformEvent): boolean {
  return e.outcome === 'success' && e.actor.includes('@') && !e.action.startsWith('gaming.');
}

export function applyEvents(state: GamingState, events: PlatformEvent[], rules: GamingRules, timeZone: string): Changes {
  const ch: Changes = {
    awards: [], achievements: [], completedChallenges: [], levelUps: [],
    touched: { players: new Set(), counters: new Set(), streaks: new Set(), weekly: new Set(), progress: new Set() },
  };
  const byAction = new Map<string, AchievementRule[]>();
  for (const r of rules.achievements) byAction.set(r.action, [...(byAction.get(r.action) ?? []), r]);

  for (const e of events) {
    if (!countsFor(e)) continue;
    const email = e.actor.toLowerCase();
    const week = isoWeekKey(e.timestamp, timeZone);
    const rulesHere = byAction.get(e.action) ?? [];
    const challengesHere = state.challenges.filter((c) => c.week === week && c.action === e.action);
    const base = rules.xp[e.action] ?? 0;
    if (base === 0 && rulesHere.length === 0 && challengesHere.length === 0) continue;
    const player = state.players.get(email) ?? { xp: 0, level: 1 };
    state.players.set(email, player);
    const give = (amount: number, reason: string) => {
      if (amount <= 0) return;
      ch.awards.push({ eventId: e.id, email, amount, reason, week });
      player.xp += amount;
      const wk = key(email, week);
      state.weekly.set(wk, (state.weekly.get(wk) ?? 0) + amount);
      ch.touched.weekly.add(wk);
      ch.touched.players.add(email);
    };

    give(base, `action:${e.action}`);
    const ck = key(email, e.action);
    const count = (state.counters.get(ck) ?? 0) + 1;
    state.counters.set(ck, count);
    ch.touched.counters.add(ck);

    for (const r of rulesHere) {
      const ak = key(email, r.id);
      if (state.achievements.has(ak)) {
        continue;
      }
      let earned = false;
      if (r.kind === 'first') earned = true;
      else if (r.kind === 'count') earned = count >= r.threshold;
      else {
        const sk = key(email, r.id);
        const day = localDay(e.timestamp, timeZone);
        const s = state.streaks.get(sk);
        // Late events (an older day) neither extend nor break a streak.
        if (!s) state.streaks.set(sk, { lastDay: day, length: 1 });
        else {
          const gap = dayDiff(s.lastDay, day);
          if (gap === 1) state.streaks.set(sk, { lastDay: day, length: s.length + 1 });
          else if (gap > 1) state.streaks.set(sk, { lastDay: day, length: 1 });
        }
        ch.touched.streaks.add(sk);
        earned = state.streaks.get(sk)!.length >= r.days;
      }
      if (earned) {
        state.achievements.add(ak);
        ch.achievements.push({ email, id: r.id, name: r.name, eventId: e.id });
        give(r.xp, `achievement:${r.id}`);
      }
    }

    for (const c of challengesHere) {
      const pk = key(email, c.id);
      const p = state.progress.get(pk) ?? { count: 0, completed: false };
      if (p.completed) continue;
      p.count += 1;
      ch.touched.progress.add(pk);
      if (p.count >= c.target) {
        p.completed = true;
        ch.completedChallenges.push({ email, id: c.id, eventId: e.id });
        give(c.xp, `challenge:${c.id}`);
      }
      state.progress.set(pk, p);
    }

    const level = levelFor(player.xp, rules.levels);
    if (level !== player.level) {
      ch.levelUps.push({ email, from: player.level, to: level });
      player.level = level;
      ch.touched.players.add(email);
    }
  }
  return ch;
}
