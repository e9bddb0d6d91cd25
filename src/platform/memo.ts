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

export const memoKey = (...parts: unknown[]) => createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
