// Connections built from credentials (PostgreSQL admin pools, Vault clients,
// IdP adapters) are kept while their credentials are current and closed when
// they are not: each holder (a hub) points at exactly one entry, keyed by
// what the connection was built from (including the credential Secret's
// resourceVersion), so a rotated password opens a new connection and the old
// one is closed once no hub uses it. The total is bounded (least recently
// used first), so a cluster with many hubs or frequent rotations cannot grow
// it without limit.

interface Entry<V> {
  value: V;
  holders: Set<string>;
}

export class CredentialCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly byHolder = new Map<string, string>();

  constructor(
    private readonly max: number,
    private readonly close: (value: V) => void | Promise<void>,
  ) {}

  /** The entry for `key`, created if missing, now the one `holder` uses. */
  get(holder: string, key: string, create: () => V): V {
    const previous = this.byHolder.get(holder);
    if (previous !== undefined && previous !== key) this.release(holder, previous);
    let e = this.entries.get(key);
    if (e) {
      // Map order is insertion order: re-insert to mark it most recently used.
      this.entries.delete(key);
      this.entries.set(key, e);
    } else {
      e = { value: create(), holders: new Set() };
      this.entries.set(key, e);
      this.evictBeyondMax(key);
    }
    e.holders.add(holder);
    this.byHolder.set(holder, key);
    return e.value;
  }

  /** The holder is gone (hub deleted). */
  drop(holder: string): void {
    const key = this.byHolder.get(holder);
    if (key !== undefined) this.release(holder, key);
  }

  get size(): number {
    return this.entries.size;
  }

  async closeAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    this.byHolder.clear();
    await Promise.allSettled(all.map((e) => this.close(e.value)));
  }

  private release(holder: string, key: string): void {
    this.byHolder.delete(holder);
    const e = this.entries.get(key);
    if (!e) return;
    e.holders.delete(holder);
    if (e.holders.size === 0) {
      this.entries.delete(key);
      void this.close(e.value);
    }
  }

  private evictBeyondMax(keep: string): void {
    for (const [k, e] of this.entries) {
      if (this.entries.size <= this.max) return;
      if (k === keep) continue;
      this.entries.delete(k);
      for (const h of e.holders) if (this.byHolder.get(h) === k) this.byHolder.delete(h);
      void this.close(e.value);
    }
  }
}
