// List+watch cache for one kind. Survives what real clusters do to watches:
// the apiserver restarting (stream error → re-watch with backoff), etcd
// compaction (410 Gone → relist and diff against the cache), and silent
// disconnects (no bytes, not even a bookmark, for `idleTimeoutMs` → abort and
// re-watch). Watch bookmarks keep the resourceVersion fresh so a re-watch
// rarely needs a relist.
import type { Logger } from 'pino';
import type { KubeClient } from './kube-client.js';
import { isMissingResourceType, KubeApiError } from './kube-client.js';
import type { KubeObject } from './reconciler.js';
import { watchRestarts } from './metrics.js';

export interface InformerHandlers<T extends KubeObject> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

export interface InformerOptions {
  apiVersion: string;
  kind: string;
  namespace?: string;
  labelSelector?: string;
  /** Abort a watch that delivered nothing (not even a bookmark) for this long. */
  idleTimeoutMs?: number;
  pageSize?: number;
  /** Shrinks objects before caching (e.g. Secret values → key names only). */
  transform?: (obj: KubeObject) => KubeObject;
}

export const objectKey = (o: { metadata: { namespace?: string; name: string } }) =>
  o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;

export class Informer<T extends KubeObject = KubeObject> {
  private readonly cache = new Map<string, T>();
  private resourceVersion = '';
  private stopped = false;
  private abort: AbortController | undefined;
  private wake: (() => void) | undefined;
  private readonly handlers: InformerHandlers<T>[] = [];
  private markSynced!: () => void;
  /** True once the first list completed (the cache can answer reads). */
  synced = false;
  /**
   * False while the apiserver does not serve the kind (its CRD is not
   * installed): the cache is empty and synced, so nothing waits for it, and
   * the list is retried until the kind appears.
   */
  served = true;
  readonly hasSynced: Promise<void> = new Promise((r) => (this.markSynced = r));
  private loop: Promise<void> | undefined;

  constructor(
    private readonly kube: KubeClient,
    readonly opts: InformerOptions,
    private readonly log: Logger,
  ) {}

  addHandlers(h: InformerHandlers<T>): void {
    this.handlers.push(h);
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  start(): void {
    if (!this.loop) this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    this.wake?.();
    await this.loop?.catch(() => {});
  }

  /** A backoff pause that stop() cuts short: a standby must not wait out 10 s to shut down. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = undefined; resolve(); }, ms);
      this.wake = () => { clearTimeout(t); this.wake = undefined; resolve(); };
    });
  }

  private async run(): Promise<void> {
    let backoff = 250;
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.relist();
          if (!this.served) this.log.info({ kind: this.opts.kind }, 'kind is served now');
          this.served = true;
          needList = false;
          backoff = 250;
          this.synced = true;
          this.markSynced();
        }
        await this.watch();
        backoff = 250;
        watchRestarts.inc({ kind: this.opts.kind, cause: 'closed' });
      } catch (err) {
        if (this.stopped) break;
        if (needList && isMissingResourceType(err)) {
          // An optional kind (Gateway API, Traefik, ...): an empty, synced
          // cache is the truth until its CRD is installed.
          if (this.served) this.log.info({ kind: this.opts.kind, apiVersion: this.opts.apiVersion }, 'kind not served by the apiserver (CRD not installed?); watching for it');
          this.served = false;
          for (const [key, old] of this.cache) {
            this.cache.delete(key);
            this.emit('delete', old);
          }
          this.synced = true;
          this.markSynced();
          await this.pause(backoff);
          backoff = Math.min(backoff * 2, 10_000);
          continue;
        }
        if (err instanceof WatchGone || (err instanceof KubeApiError && err.statusCode === 410)) {
          this.log.info({ kind: this.opts.kind, rv: this.resourceVersion }, 'watch resourceVersion too old (410 Gone); relisting');
          watchRestarts.inc({ kind: this.opts.kind, cause: 'gone' });
          needList = true;
          continue;
        }
        const cause = err instanceof WatchIdle ? 'idle' : 'error';
        watchRestarts.inc({ kind: this.opts.kind, cause });
        this.log.warn({ kind: this.opts.kind, err: String(err), retryInMs: backoff }, 'watch interrupted; reconnecting');
        await this.pause(backoff);
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  /** Lists everything (paged) and reconciles the cache with the result. */
  private async relist(): Promise<void> {
    const seen = new Map<string, T>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.kube.list<T>(this.opts.apiVersion, this.opts.kind, this.opts.namespace, {
        limit: this.opts.pageSize ?? 500,
        continue: cont,
        labelSelector: this.opts.labelSelector,
      });
      for (const raw of page.items) {
        const item = this.prepare(raw);
        seen.set(objectKey(item), item);
      }
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion;
    } while (cont);
    for (const [key, old] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit('delete', old);
      }
    }
    for (const [key, obj] of seen) {
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.emit('add', obj);
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit('update', obj, old);
    }
    this.resourceVersion = rv;
  }

  private async watch(): Promise<void> {
    this.abort = new AbortController();
    const ctrl = this.abort;
    const idleMs = this.opts.idleTimeoutMs ?? 90_000;
    const res = await this.kube.send('GET', this.kube.path(this.opts.apiVersion, this.opts.kind, this.opts.namespace), {
      query: {
        watch: true,
        allowWatchBookmarks: true,
        resourceVersion: this.resourceVersion,
        labelSelector: this.opts.labelSelector,
        // The server closes the watch after this; jitter spreads reconnects.
        timeoutSeconds: 300 + Math.floor(Math.random() * 300),
      },
      signal: ctrl.signal,
    });
    if (res.statusCode !== 200) {
      const body = await new Promise<string>((resolve) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => resolve(s));
        res.on('error', () => resolve(s));
      });
      if (res.statusCode === 410) throw new WatchGone();
      throw new KubeApiError(res.statusCode ?? 0, 'WatchFailed', `watch ${this.opts.kind}: HTTP ${res.statusCode} ${body.slice(0, 200)}`);
    }
    let idle: NodeJS.Timeout | undefined;
    let idleFired = false;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        idleFired = true;
        ctrl.abort();
      }, idleMs);
      idle.unref();
    };
    arm();
    let buf = '';
    // Iterated by hand so nothing keeps the last raw chunk or line alive while
    // waiting for the next one: a Secret event's raw text holds its base64
    // values, and only digests may stay in the heap (see Manager.informer).
    const chunks = res[Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<Buffer> | undefined = await chunks.next();
        if (next.done) break;
        arm();
        buf += next.value.toString('utf8');
        next = undefined;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) this.handleEvent(JSON.parse(line));
        }
        // A slice keeps its parent string (with the lines just handled) alive: copy what is left.
        buf = buf ? Buffer.from(buf, 'utf8').toString('utf8') : '';
      }
    } catch (err) {
      if (this.stopped) return;
      if (idleFired) throw new WatchIdle();
      throw err;
    } finally {
      clearTimeout(idle);
    }
    if (idleFired) throw new WatchIdle();
  }

  /**
   * managedFields are often the larger part of an object and reconcilers
   * never read them (controller-runtime drops them from its cache too).
   */
  private prepare(raw: T): T {
    raw.apiVersion ??= this.opts.apiVersion;
    raw.kind ??= this.opts.kind;
    delete raw.metadata.managedFields;
    return (this.opts.transform ? this.opts.transform(raw) : raw) as T;
  }

  private handleEvent(ev: { type: string; object: any }): void {
    const obj = ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED' ? this.prepare(ev.object as T) : (ev.object as T);
    switch (ev.type) {
      case 'BOOKMARK':
        this.resourceVersion = obj.metadata.resourceVersion ?? this.resourceVersion;
        return;
      case 'ERROR': {
        if (ev.object?.code === 410) throw new WatchGone();
        throw new KubeApiError(ev.object?.code ?? 0, ev.object?.reason ?? 'WatchError', `watch ${this.opts.kind}: ${ev.object?.message ?? 'error event'}`);
      }
      case 'ADDED':
      case 'MODIFIED': {
        const key = objectKey(obj);
        const old = this.cache.get(key);
        this.cache.set(key, obj);
        this.resourceVersion = obj.metadata.resourceVersion ?? this.resourceVersion;
        if (old) this.emit('update', obj, old);
        else this.emit('add', obj);
        return;
      }
      case 'DELETED': {
        const key = objectKey(obj);
        this.cache.delete(key);
        this.resourceVersion = obj.metadata.resourceVersion ?? this.resourceVersion;
        this.emit('delete', obj);
        return;
      }
    }
  }

  private emit(type: 'add' | 'update' | 'delete', obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        if (type === 'add') h.onAdd?.(obj);
        else if (type === 'update') h.onUpdate?.(old!, obj);
        else h.onDelete?.(obj);
      } catch (err) {
        this.log.error({ err, kind: this.opts.kind }, 'informer handler threw');
      }
    }
  }
}

class WatchGone extends Error {
  constructor() {
    super('watch resourceVersion expired (410 Gone)');
  }
}
class WatchIdle extends Error {
  constructor() {
    super('watch idle timeout');
  }
}

