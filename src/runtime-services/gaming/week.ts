// Calendar arithmetic in the hub's time zone: the local day (streaks) and
// the ISO 8601 week (leaderboards, challenges). ISO weeks start on Monday and
// belong to the ISO year of their Thursday, so 2027-01-01 (a Friday) is in
// 2026-W53; the week key always pairs the ISO year with the week number.
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Throws for a zone name the runtime's ICU data does not know. */
export function assertTimeZone(timeZone: string): string {
  try {
    formatter(timeZone);
  } catch {
    throw new Error(`unknown time zone ${JSON.stringify(timeZone)}`);
  }
  return timeZone;
}

export interface LocalDate {
  year: number;
  month: number;
  day: number;
}

// Every zone's UTC offset is a multiple of 15 minutes and changes only on a
// quarter hour, so the local date is constant within a UTC quarter hour:
// formatToParts (microseconds each) runs once per quarter hour, not per event.
const QUARTER_MS = 900_000;
const dates = new Map<string, LocalDate>();

export function localDate(at: Date, timeZone: string): LocalDate {
  const k = `${timeZone}\0${Math.floor(at.getTime() / QUARTER_MS)}`;
  let d = dates.get(k);
  if (!d) {
    const parts = formatter(timeZone).formatToParts(at);
    const get = (t: string) => Number(parts.find((p) => p.type === t)!.value);
    d = { year: get('year'), month: get('month'), day: get('day') };
    if (dates.size >= 50_000) dates.clear();
    dates.set(k, d);
  }
  return d;
}

/** YYYY-MM-DD of the instant in the zone. */
export function localDay(at: Date, timeZone: string): string {
  const d = localDate(at, timeZone);
  return `${d.year}-${String(d.month).padStart(2, '0')}-${String(d.day).padStart(2, '0')}`;
}

const DAY_MS = 86_400_000;

/** Days between two YYYY-MM-DD strings (b − a). */
export function dayDiff(a: string, b: string): number {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / DAY_MS);
}

export function isoWeekOfDate(d: LocalDate): { isoYear: number; week: number } {
  const utc = Date.UTC(d.year, d.month - 1, d.day);
  const dow = (new Date(utc).getUTCDay() + 6) % 7; // Monday = 0
  const thursday = new Date(utc + (3 - dow) * DAY_MS);
  const isoYear = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(isoYear, 0, 1)) / DAY_MS / 7) + 1;
  return { isoYear, week };
}

/** `2026-W49`: the ISO week the instant falls in, in the zone. */
export function isoWeekKey(at: Date, timeZone: string): string {
  const { isoYear, week } = isoWeekOfDate(localDate(at, timeZone));
  return `${isoYear}-W${String(week).padStart(2, '0')}`;
}

export const WEEK_KEY = /^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$/;
