// The resourceVersions our own writes produced, per object ("expectations" in
// client-go's terms). A watch event that carries one of them is our write
// coming back: the reconcile that made it already acted on the result. Several
// versions are kept per object because one reconcile writes more than once
// (finalizer, then status) and a lagging watch may deliver the first after the
// second was made. Reading an object whose latest write the cache has not seen
// yet must go to the API instead (read-your-own-writes).

interface Write {
  rv: string;
  at: number;
  seen: boolean;
}

/** Entries older than this are forgotten (a relist may skip their events entirely). */
const MAX_AGE_MS = 60_000;
/** Per object; more writes than this in flight means something else is wrong. */
const MAX_PER_OBJECT = 8;

export class OwnWrites {
  private readonly writes = new Map<string, Write[]>();
  private sweptAt: number;

  constructor(private readonly now: () => number = Date.now) {
    this.sweptAt = now();
  }

  record(key: string, rv: string): void {
    const list = this.writes.get(key) ?? [];
    list.push({ rv, at: this.now(), seen: false });
    if (list.length > MAX_PER_OBJECT) list.splice(0, list.length - MAX_PER_OBJECT);
    this.writes.set(key, list);
    this.sweep();
  }

  /**
   * True when `rv` is a version we wrote. Not consumed on the first look:
   * several controllers may share one informer and each must get the same
   * answer for the same event. Older entries are dropped (the watch is ordered).
   */
  isOwn(key: string, rv: string | undefined): boolean {
    const list = this.writes.get(key);
    if (!list || rv === undefined) return false;
    const i = list.findIndex((w) => w.rv === rv);
    if (i < 0) return false;
    list[i]!.seen = true;
    if (i > 0) list.splice(0, i);
    return true;
  }

  /**
   * A write of ours that the watch has not delivered yet (so a cache read
   * would be stale). `cachedRv`: the version the cache holds; a write that
   * changed nothing returns that same version and produces no event at all.
   */
  pending(key: string, cachedRv?: string): boolean {
    const list = this.writes.get(key);
    if (!list) return false;
    if (cachedRv !== undefined) this.isOwn(key, cachedRv);
    const cutoff = this.now() - MAX_AGE_MS;
    return list.some((w) => !w.seen && w.at > cutoff);
  }

  forget(key: string): void {
    this.writes.delete(key);
  }

  get size(): number {
    return this.writes.size;
  }

  private sweep(): void {
    const now = this.now();
    if (now - this.sweptAt < MAX_AGE_MS) return;
    this.sweptAt = now;
    for (const [k, list] of this.writes) if (list.every((w) => w.at <= now - MAX_AGE_MS)) this.writes.delete(k);
  }
}
