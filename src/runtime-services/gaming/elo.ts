// FIDE rating rules (Handbook B.02, 8.5): expected score from the rating
// difference, capped at 400 points; development coefficient K = 40 until 30
// rated games, 20 below 2400, and 10 once a player has reached 2400 (it stays
// 10 even if the rating drops again).
export const K_NEW = 40;
export const K_STANDARD = 20;
export const K_ELITE = 10;

export interface EloPlayer {
  rating: number;
  games: number;
  /** Ever reached 2400. */
  reached2400: boolean;
}

export function kFactor(p: EloPlayer): number {
  if (p.reached2400 || p.rating >= 2400) return K_ELITE;
  if (p.games < 30) return K_NEW;
  return K_STANDARD;
}

/** Expected score of A against B. */
export function expectedScore(ratingA: number, ratingB: number): number {
  const diff = Math.max(-400, Math.min(400, ratingB - ratingA));
  return 1 / (1 + 10 ** (diff / 400));
}

export type Score = 0 | 0.5 | 1;

/** New ratings after one game; `scoreA` is A's result (1 win, 0.5 draw, 0 loss). */
export function rate(a: EloPlayer, b: EloPlayer, scoreA: Score): { a: EloPlayer; b: EloPlayer; deltaA: number; deltaB: number } {
  const ea = expectedScore(a.rating, b.rating);
  const deltaA = round2(kFactor(a) * (scoreA - ea));
  const deltaB = round2(kFactor(b) * (1 - scoreA - (1 - ea)));
  const next = (p: EloPlayer, d: number): EloPlayer => {
    const rating = round2(p.rating + d);
    return { rating, games: p.games + 1, reached2400: p.reached2400 || rating >= 2400 };
  };
  return { a: next(a, deltaA), b: next(b, deltaB), deltaA, deltaB };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
