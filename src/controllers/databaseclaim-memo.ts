// A short memory of Vault state the operator has just verified or written
// (engine connection, claim roles, live leases), so the reconcile that our
// own Secret write triggers a moment later does not read it all again. Any
// Vault error forgets everything: the next reconcile verifies from scratch,
// which is how a Vault that restarted empty gets re-configured.
import { createHash } from 'node:crypto';

export class RecentlyVerified {
  private readonly seen = new Map<string, number>();

  constructor(private readonly ttlMs: number) {}

  has(key: string): boolean {
    const at = this.seen.get(key);
    return at !== undefined && Date.now() - at < this.ttlMs;
  }

  mark(key: string): void {
    this.seen.set(key, Date.now());
    if (this.seen.size > 10_000) {
      for (const [k, at] of this.seen) if (Date.now() - at >= this.ttlMs) this.seen.delete(k);
    }
  }

  forget(): void {
    this.seen.clear();
  }
}

export const vaultVerified = new RecentlyVerified(Number(process.env.FAMILYHUB_VAULT_VERIFY_TTL_MS ?? 10_000));

export const memoKey = (...parts: unknown[]) => createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);

/**
 * Reads of objects many claims share (the FamilyHub, its admin and token
 * Secrets), kept for a few seconds: a burst of claims would otherwise fetch
 * the same three objects per reconcile. Changes show up within `ttlMs`.
 */
export class SharedReads {
  private readonly entries = new Map<string, { at: number; value: Promise<unknown> }>();

  constructor(private readonly ttlMs: number) {}

  get<T>(key: string, load: () => Promise<T>): Promise<T> {
    const e = this.entries.get(key);
    if (e && Date.now() - e.at < this.ttlMs) return e.value as Promise<T>;
    const value = load();
    this.entries.set(key, { at: Date.now(), value });
    // A failed read must not be remembered.
    value.catch(() => this.entries.delete(key));
    return value;
  }
}

export const sharedReads = new SharedReads(Number(process.env.FAMILYHUB_SHARED_READ_TTL_MS ?? 3_000));
