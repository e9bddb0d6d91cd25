// When to renew, rotate and revoke. Pure functions of the lease and the
// claim's durations, so the schedule can be unit-tested without a clock.
import type { LeaseState } from './state.js';

export interface Durations {
  defaultTtlMs: number;
  maxTtlMs: number;
  graceMs: number;
}

/**
 * How far Vault's own expiry of a lease may be from the one recorded before
 * the record follows it. Vault counts the TTL from its clock at issue, the
 * record from the operator's before the call: they differ by the call's
 * latency, which is no reason to rewrite the Secret and the status (an
 * unchanged claim makes no writes). A renewal or revocation by hand moves it
 * by far more.
 */
export const LEASE_EXPIRY_TOLERANCE_MS = 5_000;

/** The lease's expiry after Vault's lookup: Vault's when it really moved, the recorded one otherwise. */
export function expiryAfterLookup(recordedMs: number, vaultExpireTime: string): number {
  const vault = Date.parse(vaultExpireTime);
  if (!Number.isFinite(vault)) return recordedMs;
  return Math.abs(vault - recordedMs) > LEASE_EXPIRY_TOLERANCE_MS ? vault : recordedMs;
}

/** Renew once two thirds of the current lease have passed. */
export function renewAt(l: LeaseState): number {
  return l.expiresAt - l.leaseDurationMs / 3;
}

/**
 * Rotate early enough that the superseded login can stay valid for the whole
 * grace period before Vault's max TTL ends it, plus a margin for a slow
 * reconcile. Never earlier than half-way, so a grace period longer than the
 * max TTL cannot turn into a rotation loop.
 */
export function rotateAt(l: LeaseState, d: Durations): number {
  const margin = Math.max(2_000, Math.min(d.maxTtlMs * 0.1, 5 * 60_000));
  return Math.max(l.issuedAt + (l.maxExpiresAt - l.issuedAt) / 2, l.maxExpiresAt - d.graceMs - margin);
}

/** The superseded login goes when the grace period ends, or when Vault would end it anyway. */
export function revokeAt(old: LeaseState, now: number, d: Durations): number {
  return Math.min(now + d.graceMs, old.maxExpiresAt);
}

/** Next moment something is due, as a requeue delay (at least 1 s, at most `ceilingMs`). */
export function nextWakeup(now: number, times: number[], ceilingMs = 10 * 60_000): number {
  const future = times.filter((t) => Number.isFinite(t)).map((t) => t - now);
  const next = future.length ? Math.min(...future) : ceilingMs;
  return Math.min(ceilingMs, Math.max(1_000, Math.ceil(next)));
}
