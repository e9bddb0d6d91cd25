// The resourceVersions our own writes produced, per object and per writer
// ("expectations" in client-go's terms). A watch event that carries one of
// them is that writer's write coming back: the reconcile that made it already
// acted on the result, so the writer's own controller need not run again —
// but every other controller watching the object must (a Service that owns an
// OIDCClient has to see the OIDCClient controller's status write). Several
// versions are kept per object because one reconcile writes more than once
// (finalizer, then status) and a lagging watch may deliver the first after
// the second was made. Reading an object whose latest write the cache has not
// seen yet must go to the API instead (read-your-own-writes).

interface Write {
  rv: string;
  writer: string;
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

  record(key: string, rv: string, writer: string): void {
    const list = this.writes.get(key) ?? [];
    list.push({ rv, writer, at: this.now(), seen: false });
    if (list.length > MAX_PER_OBJECT) list.splice(0, list.length - MAX_PER_OBJECT);
    this.writes.set(key, list);
    this.sweep();
  }

  /**
   * The watch delivered version `rv` of the object: that write (whoever made
   * it) is no longer pending, and older entries can go (the watch is ordered).
   */
  delivered(key: string, rv: string | undefined): void {
    const list = this.writes.get(key);
    if (!list || rv === undefined) return;
    const i = list.findIndex((w) => w.rv === rv);
    if (i < 0) return;
    list[i]!.seen = true;
    if (i > 0) list.splice(0, i);
  }

  /**
   * True when `rv` is a version `writer` wrote. Not consumed on the first
   * look: a controller may handle one event in several handlers.
   */
  isOwn(key: string, rv: string | undefined, writer: string): boolean {
    if (rv === undefined) return false;
    return this.writes.get(key)?.some((w) => w.rv === rv && w.writer === writer) ?? false;
  }

  /**
   * A write of ours (any writer) that the watch has not delivered yet (so a
   * cache read would be stale). `cachedRv`: the version the cache holds; a
   * write that changed nothing returns that same version and produces no
   * event at all.
   */
  pending(key: string, cachedRv?: string): boolean {
    const list = this.writes.get(key);
    if (!list) return false;
    if (cachedRv !== undefined) this.delivered(key, cachedRv);
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
