// Durations are Go duration strings ("30s", "1h30m") because that is what
// CEL's duration() parses, so the apiserver can compare them in rules.
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Anchored pattern for a positive Go duration without a sign (Go RE2 and JS compatible). */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$';

const PART = /([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)/g;

/** Milliseconds in a Go duration string; throws on anything CEL's duration() would not accept. */
export function parseDuration(text: string): number {
  if (!new RegExp(DURATION_PATTERN).test(text)) throw new Error(`invalid duration "${text}" (expected e.g. "90s", "15m", "1h30m")`);
  let total = 0;
  for (const [, amount, unit] of text.matchAll(PART)) total += Number(amount) * UNIT_MS[unit!]!;
  return total;
}
