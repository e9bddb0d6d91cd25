import { describe, expect, it } from 'vitest';
import { applyEvents, emptyState, key, type PlatformEvent } from '../../src/runtime-services/gaming/engine.js';
import { DEFAULT_RULES, levelFor, xpForLevel, type GamingRules } from '../../src/runtime-services/gaming/rules.js';

const rules: GamingRules = {
  xp: { 'chat.message.send': 2, 'media.upload': 10 },
  levels: { base: 100, exponent: 1.5, max: 50 },
  achievements: [
    { id: 'first-message', name: 'First', kind: 'first', action: 'chat.message.send', xp: 10 },
    { id: 'five', name: 'Five', kind: 'count', action: 'chat.message.send', threshold: 5, xp: 0 },
    { id: 'streak-3', name: 'Three days', kind: 'streak', action: 'media.upload', days: 3, xp: 30 },
  ],
};
let n = 0;
const ev = (actor: string, action: string, ts: string, outcome: 'success' | 'failure' = 'success'): PlatformEvent =>
  ({ id: `${++n}-0`, actor, action, outcome, timestamp: new Date(ts) });

describe('gaming engine', () => {
  it('awards action XP, a first-time and a threshold achievement exactly once', () => {
    const s = emptyState();
    const events = Array.from({ length: 7 }, () => ev('alice@f.test', 'chat.message.send', '2026-12-02T10:00:00Z'));
    const ch = applyEvents(s, events, rules, 'UTC');
    expect(s.players.get('alice@f.test')!.xp).toBe(7 * 2 + 10);
    expect(ch.achievements.map((a) => a.id)).toEqual(['first-message', 'five']);
    expect(ch.achievements[1]!.eventId).toBe(events[4]!.id);
    const again = applyEvents(s, [ev('alice@f.test', 'chat.message.send', '2026-12-02T11:00:00Z')], rules, 'UTC');
    expect(again.achievements).toEqual([]);
    expect(s.counters.get(key('alice@f.test', 'chat.message.send'))).toBe(8);
  });

  it('ignores failures, non-user actors and gaming events', () => {
    const s = emptyState();
    const ch = applyEvents(s, [
      ev('alice@f.test', 'chat.message.send', '2026-12-02T10:00:00Z', 'failure'),
      ev('system', 'chat.message.send', '2026-12-02T10:00:00Z'),
      ev('alice@f.test', 'gaming.achievement.award', '2026-12-02T10:00:00Z'),
      ev('alice@f.test', 'unknown.action', '2026-12-02T10:00:00Z'),
    ], rules, 'UTC');
    expect(ch.awards).toEqual([]);
    expect(s.players.size).toBe(0);
  });

  it('counts a streak of local days, resets on a gap, ignores late events', () => {
    const s = emptyState();
    // Berlin: 23:30Z on the 1st is already the 2nd locally.
    const ch = applyEvents(s, [
      ev('bob@f.test', 'media.upload', '2026-12-01T10:00:00Z'),
      ev('bob@f.test', 'media.upload', '2026-12-01T23:30:00Z'),
      ev('bob@f.test', 'media.upload', '2026-11-20T10:00:00Z'),
      ev('bob@f.test', 'media.upload', '2026-12-04T10:00:00Z'),
      ev('bob@f.test', 'media.upload', '2026-12-05T10:00:00Z'),
    ], rules, 'Europe/Berlin');
    expect(ch.achievements).toEqual([]);
    expect(s.streaks.get(key('bob@f.test', 'streak-3'))).toEqual({ lastDay: '2026-12-05', length: 2 });
    const ch2 = applyEvents(s, [ev('bob@f.test', 'media.upload', '2026-12-06T10:00:00Z')], rules, 'Europe/Berlin');
    expect(ch2.achievements.map((a) => a.id)).toEqual(['streak-3']);
  });

  it('completes a weekly challenge once, only for events inside its ISO week', () => {
    const s = emptyState();
    s.challenges = [{ id: 'c49', week: '2026-W49', action: 'chat.message.send', target: 2, xp: 100 }];
    const ch = applyEvents(s, [
      ev('carol@f.test', 'chat.message.send', '2026-12-06T22:59:59Z'), // Sunday 23:59:59 Berlin: W49
      ev('carol@f.test', 'chat.message.send', '2026-12-06T23:00:00Z'), // Monday 00:00:00 Berlin: W50
      ev('carol@f.test', 'chat.message.send', '2026-12-05T12:00:00Z'), // W49
      ev('carol@f.test', 'chat.message.send', '2026-12-05T13:00:00Z'), // W49, already completed
    ], rules, 'Europe/Berlin');
    expect(ch.completedChallenges).toEqual([{ email: 'carol@f.test', id: 'c49', eventId: expect.any(String) }]);
    expect(s.progress.get(key('carol@f.test', 'c49'))).toEqual({ count: 2, completed: true });
    expect(s.weekly.get(key('carol@f.test', '2026-W50'))).toBe(2);
    expect(s.weekly.get(key('carol@f.test', '2026-W49'))).toBe(2 + 10 + 2 + 100 + 2);
  });

  it('level curve is monotonic and levels up as XP crosses thresholds', () => {
    const curve = DEFAULT_RULES.levels;
    expect(xpForLevel(1, curve)).toBe(0);
    expect(xpForLevel(2, curve)).toBe(100);
    expect(xpForLevel(3, curve)).toBe(Math.round(100 * 2 ** 1.5));
    expect(levelFor(99, curve)).toBe(1);
    expect(levelFor(100, curve)).toBe(2);
    for (let l = 2; l < 50; l++) expect(xpForLevel(l + 1, curve)).toBeGreaterThan(xpForLevel(l, curve));
    const s = emptyState();
    const ch = applyEvents(s, Array.from({ length: 10 }, () => ev('dan@f.test', 'media.upload', '2026-12-02T10:00:00Z')), rules, 'UTC');
    expect(ch.levelUps).toEqual([{ email: 'dan@f.test', from: 1, to: 2 }]);
  });
});
