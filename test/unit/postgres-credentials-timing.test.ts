import { describe, expect, it } from 'vitest';
import { LEASE_EXPIRY_TOLERANCE_MS, expiryAfterLookup, nextWakeup, renewAt, revokeAt, rotateAt } from '../../src/controllers/databaseclaim/timing.js';
import { readState, writeState } from '../../src/controllers/databaseclaim/state.js';

const lease = (issuedAt: number, ttl: number, max: number) => ({
  leaseId: 'database/creds/x/abc', username: 'v-x', issuedAt, expiresAt: issuedAt + ttl, maxExpiresAt: issuedAt + max, leaseDurationMs: ttl,
});

describe('credential schedule', () => {
  const d = { defaultTtlMs: 20_000, maxTtlMs: 60_000, graceMs: 10_000 };

  it('renews after two thirds of the lease', () => {
    expect(renewAt(lease(0, 20_000, 60_000))).toBeCloseTo(13_333, 0);
  });

  it('rotates so the old login outlives the grace period before max TTL', () => {
    const l = lease(0, 20_000, 60_000);
    const at = rotateAt(l, d);
    expect(at).toBe(44_000);
    expect(revokeAt(l, at, d)).toBe(54_000);
    expect(revokeAt(l, at, d)).toBeLessThanOrEqual(l.maxExpiresAt);
  });

  it('never rotates before half-way even when grace exceeds max TTL', () => {
    expect(rotateAt(lease(0, 20_000, 60_000), { ...d, graceMs: 120_000 })).toBe(30_000);
  });

  it('wakes for the earliest due time, at least 1 s later', () => {
    expect(nextWakeup(1_000, [5_000, 3_000, Infinity])).toBe(2_000);
    expect(nextWakeup(10_000, [9_000])).toBe(1_000);
    expect(nextWakeup(0, [])).toBe(600_000);
  });

  it('state round-trips and garbage reads as unknown', () => {
    const s = { mode: 'VaultDynamic' as const, rotateGeneration: 2, current: lease(1, 2, 3), retired: [{ username: 'old', revokeAt: 9 }] };
    expect(readState({ 'familyhub.dev/credentials-state': writeState(s) })).toEqual(s);
    expect(readState({ 'familyhub.dev/credentials-state': '{not json' })).toBeUndefined();
    expect(readState({ 'familyhub.dev/credentials-state': '{"mode":"Nope"}' })).toBeUndefined();
    expect(readState(undefined)).toBeUndefined();
  });

  // Vault's expire_time is counted from its clock at issue, the record from
  // ours before the call: a lookup 100 ms apart must not rewrite the Secret
  // (the CI flake of promises-claims-clients: a write in a quiet window).
  it('follows Vault\'s expiry after a lookup only when the lease really moved', () => {
    const recorded = Date.parse('2026-12-02T21:40:00.000Z');
    expect(expiryAfterLookup(recorded, '2026-12-02T21:40:00.140Z')).toBe(recorded);
    expect(expiryAfterLookup(recorded, new Date(recorded - LEASE_EXPIRY_TOLERANCE_MS).toISOString())).toBe(recorded);
    // Renewed or shortened by hand in Vault: the record follows.
    expect(expiryAfterLookup(recorded, '2026-12-02T22:40:00Z')).toBe(Date.parse('2026-12-02T22:40:00Z'));
    expect(expiryAfterLookup(recorded, '2026-12-02T21:30:00Z')).toBe(Date.parse('2026-12-02T21:30:00Z'));
    expect(expiryAfterLookup(recorded, 'not a time')).toBe(recorded);
  });
});
