import { describe, expect, it } from 'vitest';
import { expectedScore, kFactor, rate } from '../../src/runtime-services/gaming/elo.js';

describe('FIDE Elo', () => {
  it('expected score follows 1/(1+10^((Rb-Ra)/400)) with the 400-point cap', () => {
    expect(expectedScore(1500, 1500)).toBeCloseTo(0.5, 10);
    expect(expectedScore(1600, 1400)).toBeCloseTo(1 / (1 + 10 ** (-200 / 400)), 10);
    expect(expectedScore(2400, 1600)).toBeCloseTo(expectedScore(2000, 1600), 10); // capped at 400
    expect(expectedScore(1600, 1400) + expectedScore(1400, 1600)).toBeCloseTo(1, 10);
  });

  it('K is 40 for the first 30 games, 20 below 2400, 10 once 2400 was reached', () => {
    expect(kFactor({ rating: 1500, games: 0, reached2400: false })).toBe(40);
    expect(kFactor({ rating: 1500, games: 29, reached2400: false })).toBe(40);
    expect(kFactor({ rating: 1500, games: 30, reached2400: false })).toBe(20);
    expect(kFactor({ rating: 2400, games: 5, reached2400: false })).toBe(10);
    expect(kFactor({ rating: 2350, games: 80, reached2400: true })).toBe(10);
  });

  it('rates a game between equals and an upset', () => {
    const p = { rating: 1500, games: 0, reached2400: false };
    const r = rate(p, p, 1);
    expect(r.a.rating).toBe(1520);
    expect(r.b.rating).toBe(1480);
    expect(r.a.games).toBe(1);
    const draw = rate(p, p, 0.5);
    expect(draw.deltaA).toBe(0);
    // A 20-K player at 1800 loses to a 40-K newcomer at 1600.
    const upset = rate({ rating: 1800, games: 50, reached2400: false }, { rating: 1600, games: 3, reached2400: false }, 0);
    const e = 1 / (1 + 10 ** (-200 / 400));
    expect(upset.deltaA).toBeCloseTo(-20 * e, 2);
    expect(upset.deltaB).toBeCloseTo(40 * e, 2);
  });
});
