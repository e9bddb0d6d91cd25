import { describe, expect, it } from 'vitest';
import { assertTimeZone, dayDiff, isoWeekKey, localDay } from '../../src/runtime-services/gaming/week.js';

describe('ISO weeks in the hub time zone', () => {
  it('moves to the next week exactly at Monday 00:00:00 local time (Europe/Berlin, winter)', () => {
    // 2026-12-06 is a Sunday; Berlin is UTC+1 in December.
    expect(isoWeekKey(new Date('2026-12-06T22:59:59Z'), 'Europe/Berlin')).toBe('2026-W49');
    expect(isoWeekKey(new Date('2026-12-06T23:00:00Z'), 'Europe/Berlin')).toBe('2026-W50');
    // The same instants in UTC are both still Sunday/Monday by UTC's own clock.
    expect(isoWeekKey(new Date('2026-12-06T23:00:00Z'), 'UTC')).toBe('2026-W49');
    expect(isoWeekKey(new Date('2026-12-07T00:00:00Z'), 'UTC')).toBe('2026-W50');
  });

  it('handles zones west of UTC and summer time', () => {
    // New York, summer (UTC-4): Sunday 2026-07-12 23:59:59 local = 03:59:59Z Monday.
    expect(isoWeekKey(new Date('2026-07-13T03:59:59Z'), 'America/New_York')).toBe('2026-W28');
    expect(isoWeekKey(new Date('2026-07-13T04:00:00Z'), 'America/New_York')).toBe('2026-W29');
  });

  it('pairs the ISO year with the week at year ends', () => {
    expect(isoWeekKey(new Date('2027-01-01T12:00:00Z'), 'UTC')).toBe('2026-W53'); // a Friday
    expect(isoWeekKey(new Date('2024-12-30T12:00:00Z'), 'UTC')).toBe('2025-W01'); // a Monday
    expect(isoWeekKey(new Date('2021-01-03T12:00:00Z'), 'UTC')).toBe('2020-W53'); // a Sunday
    expect(isoWeekKey(new Date('2026-01-01T12:00:00Z'), 'UTC')).toBe('2026-W01'); // a Thursday
  });

  it('computes local days and differences across DST changes', () => {
    expect(localDay(new Date('2026-03-29T00:30:00Z'), 'Europe/Berlin')).toBe('2026-03-29');
    expect(localDay(new Date('2026-03-28T23:30:00Z'), 'Europe/Berlin')).toBe('2026-03-29');
    expect(dayDiff('2026-03-28', '2026-03-29')).toBe(1);
    expect(dayDiff('2026-03-29', '2026-10-25')).toBe(210);
  });

  it('rejects unknown zones', () => {
    expect(() => assertTimeZone('Mars/Olympus')).toThrow(/unknown time zone/);
    expect(assertTimeZone('Europe/Berlin')).toBe('Europe/Berlin');
  });
});
