// Runs one Reconciler: informer events → de-duplicating work queue → bounded
// workers. The core owns everything that is the same for every kind —
// finalizers, the Ready/Reconciling/Degraded conditions with
// observedGeneration, status writes only when status really changed,
// Events on transitions, backoff, metrics — so a reconciler stays
// "observe, compare, act, report".
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { getCondition, setCondition, sortConditions } from './conditions.js';
import type { EventRecorder } from './events.js';
import { objectKey, type Informer } from './informer.js';
import { isConflict, isNotFound, KubeClient } from './kube-client.js';
import { reconcileDuration, reconcileTotal } from './metrics.js';
import { ReconcileError, type CacheReader, type Condition, type KubeObject, type ReconcileContext, type ReconcileResult, type Reconciler } from './reconciler.js';
import { WorkQueue } from './workqueue.js';
import { parseDuration } from '../crds/duration.js';

export interface WatchSpec {
  apiVersion: string;
  kind: string;
  labelSelector?: string;
  /** Cache only the names of Secret/ConfigMap data keys, not values (memory, and no secret in the heap). */
  keysOnly?: boolean;
  /**
   * Keys (namespace/name) of primary objects to reconcile when this object
   * changes; `primaries` reads the primary kind's cache (for reverse lookups).
   */
  map(obj: KubeObject, primaries: () => KubeObject[]): string[];
}

export interface ControllerDefinition<T extends KubeObject = KubeObject> {
  apiVersion: string;
  kind: string;
  reconciler: Reconciler<T>;
  /** Children with an ownerReference (controller=true) to the primary kind; their changes requeue the owner. */
  owns?: { apiVersion: string; kind: string }[];
  watches?: WatchSpec[];
  concurrency?: number;
  resyncPeriodMs?: number;
}

export interface InformerSource {
  informer(apiVersion: string, kind: string, labelSelector?: string, keysOnly?: boolean): Informer;
  readonly cache: CacheReader;
}

export const MANAGED_SELECTOR = 'app.kubernetes.io/managed-by=familyhub-operator';

const CORE_TYPES = new Set(['Ready', 'Reconciling', 'Degraded']);

export class Controller<T extends KubeObject = KubeObject> {
  readonly queue: WorkQueue;
  private primary!: Informer<T>;
  private workers: Promise<void>[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly inflight = new Map<string, AbortController>();
  private readonly lastStatus = new Map<string, { basedOn: string | undefined; status: string }>();
  private readonly log: Logger;

  constructor(
    readonly def: ControllerDefinition<T>,
    private readonly kube: KubeClient,
    private readonly informers: InformerSource,
    private readonly events: EventRecorder,
    log: Logger,
  ) {
    this.log = log.child({ controller: def.reconciler.name });
    this.queue = new WorkQueue({ name: def.reconciler.name });
  }

  get name(): string {
    return this.def.reconciler.name;
  }

  /** Wires informers; call before the informers start so no event is missed. */
  setup(): void {
    const d = this.def;
    this.primary = this.informers.informer(d.apiVersion, d.kind) as Informer<T>;
    this.primary.addHandlers({
      onAdd: (o) => this.queue.add(objectKey(o)),
      onUpdate: (oldObj, newObj) => {
        if (!specOrMetaChanged(oldObj, newObj)) return;
        unlessOwnWrite(this.kube, newObj, () => this.queue.add(objectKey(newObj)));
      },
      onDelete: (o) => {
        this.lastStatus.delete(objectKey(o));
        this.kube.ownWrites.forget(KubeClient.writeKey(d.apiVersion, d.kind, o.metadata.namespace, o.metadata.name));
        this.queue.add(objectKey(o));
      },
    });
    for (const child of d.owns ?? []) {
      const inf = this.informers.informer(child.apiVersion, child.kind, MANAGED_SELECTOR);
      const toOwner = (o: KubeObject) => {
        for (const ref of o.metadata.ownerReferences ?? []) {
          if (ref.controller && ref.kind === d.kind && ref.apiVersion === d.apiVersion) {
            this.queue.add(o.metadata.namespace ? `${o.metadata.namespace}/${ref.name}` : ref.name);
          }
        }
      };
      inf.addHandlers({
        onAdd: (o) => unlessOwnWrite(this.kube, o, () => toOwner(o)),
        onUpdate: (_, n) => unlessOwnWrite(this.kube, n, () => toOwner(n)),
        onDelete: (o) => {
          this.kube.ownWrites.forget(KubeClient.writeKey(child.apiVersion, child.kind, o.metadata.namespace, o.metadata.name));
          toOwner(o);
        },
      });
    }
    for (const w of d.watches ?? []) {
      const inf = this.informers.informer(w.apiVersion, w.kind, w.labelSelector, w.keysOnly);
      const enqueue = (o: KubeObject) => {
        for (const k of w.map(o, () => this.primary.list())) this.queue.add(k);
      };
      inf.addHandlers({ onAdd: enqueue, onUpdate: (o, n) => specOrMetaChanged(o, n) && enqueue(n), onDelete: enqueue });
    }
  }

  start(): void {
    const n = this.def.concurrency ?? Number(process.env.FAMILYHUB_CONCURRENCY ?? 8);
    for (let i = 0; i < n; i++) this.workers.push(this.work());
    const period = this.def.resyncPeriodMs ?? resyncFromEnv();
    const resync = () => {
      // A resync re-checks external state (drift, leases); it enqueues, and
      // the reconcile itself writes only if something differs.
      for (const k of this.primary.keys()) this.queue.add(k);
      this.resyncTimer = setTimeout(resync, period * (0.9 + Math.random() * 0.2));
      this.resyncTimer.unref();
    };
    this.resyncTimer = setTimeout(resync, period);
    this.resyncTimer.unref();
  }

  /** Stops taking work and waits for in-flight reconciles (up to `graceMs`). */
  async stop(graceMs = 20_000): Promise<void> {
    clearTimeout(this.resyncTimer);
    this.queue.shutdown();
    const timer = setTimeout(() => {
      for (const c of this.inflight.values()) c.abort();
    }, graceMs);
    await Promise.allSettled(this.workers);
    clearTimeout(timer);
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.process(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async process(key: string): Promise<void> {
    const obj = this.primary.get(key);
    if (!obj) return;
    const reconcileId = randomUUID().slice(0, 8);
    const log = this.log.child({ key, reconcileId, generation: obj.metadata.generation });
    const abort = new AbortController();
    this.inflight.set(key, abort);
    const ctx: ReconcileContext = { log, kube: this.kube, cache: this.informers.cache, events: this.events, reconcileId, signal: abort.signal };
    const r = this.def.reconciler;
    const end = reconcileDuration.startTimer({ controller: r.name });
    try {
      if (obj.metadata.deletionTimestamp) {
        await this.handleDeletion(obj, ctx);
        reconcileTotal.inc({ controller: r.name, result: 'success' });
        this.queue.forget(key);
        return;
      }
      let current = obj;
      if (r.finalize && r.finalizer && !(obj.metadata.finalizers ?? []).includes(r.finalizer)) {
        // Go on with the patched object: its watch event is our own write
        // and will not trigger a second reconcile.
        current = await this.kube.mergePatch<T>(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name, {
          metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers: [...(obj.metadata.finalizers ?? []), r.finalizer] },
        });
        current.apiVersion ??= obj.apiVersion;
        current.kind ??= obj.kind;
      }
      const result = await r.reconcile(current, ctx);
      await this.writeStatus(current, this.successStatus(current, result), log);
      this.queue.forget(key);
      if (result.requeueAfterMs) {
        this.queue.addAfter(key, result.requeueAfterMs);
        reconcileTotal.inc({ controller: r.name, result: 'requeue' });
      } else {
        reconcileTotal.inc({ controller: r.name, result: 'success' });
      }
    } catch (err) {
      reconcileTotal.inc({ controller: r.name, result: 'error' });
      if (isConflict(err) || isNotFound(err)) {
        // Stale cache or a concurrent writer: just try again soon.
        log.debug({ err: String(err) }, 'conflict; requeueing');
        this.queue.addAfter(key, 500);
        return;
      }
      const expected = err instanceof ReconcileError;
      if (expected) log.warn({ reason: err.reason, err: err.message }, 'reconcile failed');
      else log.error({ err }, 'reconcile failed unexpectedly');
      try {
        if (!obj.metadata.deletionTimestamp) await this.writeStatus(obj, this.errorStatus(obj, err), log);
      } catch (statusErr) {
        log.warn({ err: String(statusErr) }, 'could not write failure status');
      }
      const delay = expected && err.opts.retryAfterMs ? err.opts.retryAfterMs : undefined;
      if (delay) this.queue.addAfter(key, delay);
      else this.queue.addRateLimited(key);
    } finally {
      end();
      this.inflight.delete(key);
    }
  }

  private async handleDeletion(obj: T, ctx: ReconcileContext): Promise<void> {
    const r = this.def.reconciler;
    if (!r.finalizer || !(obj.metadata.finalizers ?? []).includes(r.finalizer)) return;
    await r.finalize?.(obj, ctx);
    await this.kube.mergePatch(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name, {
      metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== r.finalizer) },
    });
    ctx.log.info('finalized; finalizer removed');
  }

  private successStatus(obj: T, result: ReconcileResult): Record<string, unknown> {
    const gen = obj.metadata.generation;
    // Keep the core conditions; drop dependency conditions no longer reported.
    const reported = new Set((result.conditions ?? []).map((c) => c.type));
    let conds: Condition[] = (obj.status?.conditions ?? []).filter((c: Condition) => CORE_TYPES.has(c.type) || reported.has(c.type));
    for (const c of result.conditions ?? []) conds = setCondition(conds, { ...c, observedGeneration: gen });
    const deps = result.readyDependsOn ?? [...reported];
    const failing = (result.conditions ?? []).filter((c) => deps.includes(c.type) && c.status !== 'True');
    const ready = failing.length === 0;
    conds = setCondition(conds, ready
      ? { type: 'Ready', status: 'True', reason: 'Reconciled', message: 'All dependencies are ready', observedGeneration: gen }
      : { type: 'Ready', status: 'False', reason: failing[0]!.reason, message: `${failing[0]!.type}: ${failing[0]!.message}`, observedGeneration: gen });
    conds = setCondition(conds, { type: 'Reconciling', status: 'False', reason: 'Idle', message: 'Reconcile completed', observedGeneration: gen });
    conds = setCondition(conds, ready
      ? { type: 'Degraded', status: 'False', reason: 'Healthy', message: 'No errors', observedGeneration: gen }
      : { type: 'Degraded', status: 'True', reason: failing[0]!.reason, message: `${failing[0]!.type}: ${failing[0]!.message}`, observedGeneration: gen });
    return { ...(obj.status ?? {}), ...(result.status ?? {}), observedGeneration: gen, conditions: sortConditions(conds) };
  }

  private errorStatus(obj: T, err: unknown): Record<string, unknown> {
    const gen = obj.metadata.generation;
    const reason = err instanceof ReconcileError ? err.reason : 'ReconcileFailed';
    const message = err instanceof Error ? err.message : String(err);
    let conds: Condition[] = obj.status?.conditions ?? [];
    if (err instanceof ReconcileError && err.opts.conditionType) {
      conds = setCondition(conds, { type: err.opts.conditionType, status: 'False', reason, message, observedGeneration: gen });
    }
    conds = setCondition(conds, { type: 'Ready', status: 'False', reason, message, observedGeneration: gen });
    conds = setCondition(conds, { type: 'Reconciling', status: 'False', reason: 'Retrying', message: 'Reconcile failed; retrying with backoff', observedGeneration: gen });
    conds = setCondition(conds, { type: 'Degraded', status: 'True', reason, message, observedGeneration: gen });
    return { ...(obj.status ?? {}), observedGeneration: gen, conditions: sortConditions(conds) };
  }

  /**
   * Server-side applies the status subresource, but only when it differs.
   * The informer may not have delivered our previous write yet; if the cache
   * still shows the very object version that write was based on, and we
   * would write the same status again, the write is skipped (the
   * "expectations" idea from client-go, keyed by resourceVersion equality
   * only, since resourceVersions are opaque).
   */
  private async writeStatus(obj: T, status: Record<string, unknown>, log: Logger): Promise<void> {
    const key = objectKey(obj);
    const want = canonical(status);
    if (want === canonical(obj.status ?? {})) return;
    const last = this.lastStatus.get(key);
    if (last && last.basedOn === obj.metadata.resourceVersion && last.status === want) return;
    const before = getCondition(obj.status?.conditions, 'Ready');
    const after = getCondition(status.conditions as Condition[], 'Ready');
    await this.kube.apply(
      { apiVersion: obj.apiVersion, kind: obj.kind, metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace }, status },
      { subresource: 'status' },
    );
    this.lastStatus.set(key, { basedOn: obj.metadata.resourceVersion, status: want });
    if (after && (before?.status !== after.status || before?.reason !== after.reason)) {
      log.info({ ready: after.status, reason: after.reason }, 'Ready changed');
      // An Event for every failure, and for a recovery; a first-time Ready is
      // visible in status and would only double the writes per object.
      if (after.status !== 'True') this.events.warning(obj, after.reason, after.message);
      else if (before) this.events.normal(obj, 'Recovered', after.message);
    }
  }
}

/** Runs `fn` unless `obj` is the version one of our own writes produced (waiting for a write still in flight). */
function unlessOwnWrite(kube: KubeClient, obj: KubeObject, fn: () => void): void {
  const own = kube.ownWriteSettled(obj);
  if (own === false) fn();
  else if (own !== true) void own.then((o) => o || fn());
}

function resyncFromEnv(): number {
  const v = process.env.FAMILYHUB_RESYNC_MS;
  if (!v) return 10 * 60_000;
  return /^\d+$/.test(v) ? Number(v) : parseDuration(v);
}

/** True when something other than status changed (status writes must not requeue us). */
function specOrMetaChanged(a: KubeObject, b: KubeObject): boolean {
  if (a.metadata.generation !== b.metadata.generation) return true;
  if (a.metadata.deletionTimestamp !== b.metadata.deletionTimestamp) return true;
  if (canonical(a.metadata.finalizers ?? []) !== canonical(b.metadata.finalizers ?? [])) return true;
  if (canonical(a.metadata.labels ?? {}) !== canonical(b.metadata.labels ?? {})) return true;
  if (canonical(a.metadata.annotations ?? {}) !== canonical(b.metadata.annotations ?? {})) return true;
  // Kinds without generation (Secrets, ConfigMaps): compare content.
  if (a.metadata.generation === undefined) return canonical({ ...a, metadata: {} }) !== canonical({ ...b, metadata: {} });
  return false;
}

/** JSON with sorted keys, so semantically equal objects compare equal. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, val) =>
    val && typeof val === 'object' && !Array.isArray(val)
      ? Object.fromEntries(Object.keys(val).sort().map((k) => [k, (val as Record<string, unknown>)[k]]))
      : val,
  );
}
