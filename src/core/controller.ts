// Runs one Reconciler: informer events → de-duplicating work queue → bounded
// workers. The core owns everything that is the same for every kind —
// parsing the spec, finalizers, the Ready/Reconciling/Degraded/Stalled
// conditions with observedGeneration, status writes only when status really
// changed, Events on transitions, backoff, metrics — so a reconciler stays
// "observe, compare, act, report". See src/core/README.md.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ZodType, ZodTypeDef } from 'zod';
import { canonical } from './canonical.js';
import { getCondition, setCondition, sortConditions } from './conditions.js';
import { addFinalizer } from './finalizers.js';
import type { EventRecorder } from './events.js';
import { objectKey, type Informer } from './informer.js';
import { isConflict, isMissingResourceType, isNotFound, KubeApiError, KubeClient } from './kube-client.js';
import { reconcileDuration, reconcileTotal, trackObjects } from './metrics.js';
import {
  ReconcileError, type CacheReader, type Condition, type KubeObject, type ReconcileContext, type ReconcileResult, type Reconciler, type Resource,
} from './reconciler.js';
import type { ResourceType } from './resources.js';
import { WorkQueue } from './workqueue.js';

export { canonical } from './canonical.js';

export interface WatchSpec {
  resource: ResourceType;
  /**
   * Keys (namespace/name) of primary objects to reconcile when this object
   * changes; `primaries` reads the primary kind's cache (for reverse lookups).
   */
  map(obj: KubeObject, primaries: () => KubeObject[]): string[];
}

export interface ControllerDefinition<Spec = unknown, Status = Record<string, unknown>> {
  resource: ResourceType;
  /** The kind's spec schema: the core parses every object with it (defaults applied) before reconciling. */
  specSchema: ZodType<Spec, ZodTypeDef, unknown>;
  reconciler: Reconciler<Spec, Status>;
  /** Child kinds; a change of an object whose controller ownerReference points at one of ours requeues that owner. */
  owns?: ResourceType[];
  watches?: WatchSpec[];
  /** Workers; default from the operator configuration. */
  concurrency?: number;
  /** When the object's current credentials expire or are due for rotation (ms since the epoch), for familyhub_credentials_expiry_timestamp_seconds. */
  credentialsExpiry?(obj: Resource<Spec, Status>): number | undefined;
}

export interface ControllerSettings {
  concurrency: number;
  resyncMs: number;
  /** Retry of a terminal error (Stalled) whose cause may lie outside what the controller watches. */
  stalledRetryMs: number;
}

export interface InformerSource {
  informer(type: ResourceType): Informer;
  readonly cache: CacheReader;
}

/** Set to "true" on an object being deleted to release its finalizer without cleanup (documented in the README). */
export const SKIP_CLEANUP_ANNOTATION = 'familyhub.dev/skip-cleanup';

const CORE_TYPES = new Set(['Ready', 'Reconciling', 'Degraded']);
const STALLED_MESSAGE = 'Waiting for a change of the spec or of what it refers to';
/** Conflicts in a row before a 409 is worth showing in status (one is normal: a stale cache). */
const CONFLICTS_BEFORE_DEGRADED = 3;

type Parsed<Spec> = { ok: true; spec: Spec } | { ok: false; message: string };

export class Controller<Spec = unknown, Status = Record<string, unknown>> {
  readonly queue: WorkQueue;
  private primary!: Informer;
  private workers: Promise<void>[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private untrack: (() => void) | undefined;
  private readonly lastStatus = new Map<string, { basedOn: string | undefined; status: string }>();
  /** Parsed specs by cached object (the informer replaces the object on every change). */
  private readonly parsed = new WeakMap<KubeObject, Parsed<Spec>>();
  private readonly log: Logger;
  /** This controller's writes are recorded as its own. */
  private readonly kube: KubeClient;

  constructor(
    readonly def: ControllerDefinition<Spec, Status>,
    kube: KubeClient,
    private readonly informers: InformerSource,
    private readonly events: EventRecorder,
    log: Logger,
    private readonly settings: ControllerSettings,
  ) {
    this.log = log.child({ controller: def.reconciler.name });
    this.queue = new WorkQueue({ name: def.reconciler.name });
    this.kube = kube.as(def.reconciler.name);
  }

  get name(): string {
    return this.def.reconciler.name;
  }

  /** Wires informers; call before the informers start so no event is missed. */
  setup(): void {
    const d = this.def;
    this.primary = this.informers.informer(d.resource);
    const expiry = d.credentialsExpiry;
    this.untrack = trackObjects({
      kind: d.resource.kind,
      list: () => this.primary.list(),
      credentialsExpiry: expiry && ((o: KubeObject) => {
        const p = this.parse(o);
        return p.ok ? expiry({ ...o, spec: p.spec } as Resource<Spec, Status>) : undefined;
      }),
    });
    this.primary.addHandlers({
      onAdd: (o) => this.queue.add(objectKey(o)),
      onUpdate: (oldObj, newObj) => {
        if (!specOrMetaChanged(oldObj, newObj)) return;
        this.unlessOwnWrite(newObj, () => this.queue.add(objectKey(newObj)));
      },
      onDelete: (o) => {
        this.lastStatus.delete(objectKey(o));
        this.kube.ownWrites.forget(KubeClient.writeKey(d.resource.apiVersion, d.resource.kind, o.metadata.namespace, o.metadata.name));
        this.queue.add(objectKey(o));
      },
    });
    for (const child of d.owns ?? []) {
      // The kind's shared informer, filtered here by controller reference:
      // no second (label-selected) watch of the same kind.
      const inf = this.informers.informer(child);
      const toOwner = (o: KubeObject) => {
        const ref = o.metadata.ownerReferences?.find((r) => r.controller);
        if (ref && ref.kind === d.resource.kind && ref.apiVersion === d.resource.apiVersion) {
          this.queue.add(o.metadata.namespace ? `${o.metadata.namespace}/${ref.name}` : ref.name);
        }
      };
      inf.addHandlers({
        onAdd: (o) => this.unlessOwnWrite(o, () => toOwner(o)),
        onUpdate: (_, n) => this.unlessOwnWrite(n, () => toOwner(n)),
        onDelete: (o) => toOwner(o),
      });
    }
    for (const w of d.watches ?? []) {
      const inf = this.informers.informer(w.resource);
      const enqueue = (o: KubeObject) => {
        for (const k of w.map(o, () => this.primary.list())) this.queue.add(k);
      };
      inf.addHandlers({ onAdd: enqueue, onUpdate: (o, n) => specOrMetaChanged(o, n) && enqueue(n), onDelete: enqueue });
    }
  }

  start(): void {
    const n = this.def.concurrency ?? this.settings.concurrency;
    for (let i = 0; i < n; i++) this.workers.push(this.work());
    const period = this.settings.resyncMs;
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

  /** Stops taking work and waits for in-flight reconciles. */
  async stop(): Promise<void> {
    clearTimeout(this.resyncTimer);
    this.untrack?.();
    this.queue.shutdown();
    await Promise.allSettled(this.workers);
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

  /** Runs `fn` unless `obj` is the version one of this controller's own writes produced (waiting for a write still in flight). */
  private unlessOwnWrite(obj: KubeObject, fn: () => void): void {
    const own = this.kube.ownWriteSettled(obj);
    if (own === false) fn();
    else if (own !== true) void own.then((o) => o || fn());
  }

  private parse(obj: KubeObject): Parsed<Spec> {
    let p = this.parsed.get(obj);
    if (!p) {
      const r = this.def.specSchema.safeParse(obj.spec);
      p = r.success ? { ok: true, spec: r.data } : { ok: false, message: r.error.issues.map((i) => `spec${i.path.map((s) => `.${s}`).join('')}: ${i.message}`).join('; ') };
      this.parsed.set(obj, p);
    }
    return p;
  }

  private async process(key: string): Promise<void> {
    const obj = this.primary.get(key);
    if (!obj) return;
    const reconcileId = randomUUID().slice(0, 8);
    const log = this.log.child({ key, reconcileId, generation: obj.metadata.generation });
    const ctx: ReconcileContext = { log, kube: this.kube, cache: this.informers.cache, events: this.events, reconcileId, controller: this.name };
    const r = this.def.reconciler;
    const parsed = this.parse(obj);
    const end = reconcileDuration.startTimer({ controller: r.name });
    try {
      if (obj.metadata.deletionTimestamp) {
        await this.handleDeletion(obj, parsed, ctx);
        reconcileTotal.inc({ controller: r.name, result: 'success' });
        this.queue.forget(key);
        return;
      }
      if (!parsed.ok) {
        // Only a new spec can fix this, and a new spec is a new event: no retry timer.
        throw new ReconcileError('InvalidSpec', parsed.message, { terminal: true, retryAfterMs: 0 });
      }
      let current = obj;
      if (r.finalize && r.finalizer && !r.finalizerOnDemand) {
        // Go on with the patched object: its watch event is our own write
        // and will not trigger a second reconcile.
        current = await addFinalizer(this.kube, obj, r.finalizer);
      }
      const typed = { ...current, spec: parsed.spec } as Resource<Spec, Status>;
      const result = await r.reconcile(typed, ctx);
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
      await this.handleError(key, obj, err, log);
    } finally {
      end();
    }
  }

  private async handleError(key: string, obj: KubeObject, raw: unknown, log: Logger): Promise<void> {
    if (isNotFound(raw) && !isMissingResourceType(raw)) {
      // The object (or one we patched) is gone; its delete event decides what happens next.
      log.debug({ err: String(raw) }, 'object not found; retrying with backoff');
      this.queue.addRateLimited(key);
      return;
    }
    const conflict = isConflict(raw);
    const err = asReconcileError(raw);
    const expected = err instanceof ReconcileError;
    if (conflict) log.debug({ err: String(raw) }, 'conflict (stale cache or concurrent writer); retrying with backoff');
    else if (expected) log.warn({ reason: err.reason, err: err.message }, 'reconcile failed');
    else log.error({ err }, 'reconcile failed unexpectedly');
    // A single conflict is routine; only repeated ones are worth a status write.
    // Also while deleting: a finalizer that waits says why in status.
    const report = !conflict || this.queue.retries(key) + 1 >= CONFLICTS_BEFORE_DEGRADED;
    if (report) {
      try {
        await this.writeStatus(obj, this.errorStatus(obj, err), log);
      } catch (statusErr) {
        log.warn({ err: String(statusErr) }, 'could not write failure status');
      }
    }
    if (expected && err.opts.terminal) {
      this.queue.forget(key);
      const retry = err.opts.retryAfterMs ?? this.settings.stalledRetryMs;
      if (retry > 0) this.queue.addAfter(key, retry);
      return;
    }
    const delay = expected && err.opts.retryAfterMs ? err.opts.retryAfterMs : undefined;
    if (delay) this.queue.addAfter(key, delay);
    else this.queue.addRateLimited(key);
  }

  private async handleDeletion(obj: KubeObject, parsed: Parsed<Spec>, ctx: ReconcileContext): Promise<void> {
    const r = this.def.reconciler;
    if (!r.finalizer || !(obj.metadata.finalizers ?? []).includes(r.finalizer)) return;
    if (obj.metadata.annotations?.[SKIP_CLEANUP_ANNOTATION] === 'true') {
      // An admin's way out when the external system is gone for good.
      ctx.events.warning(obj, 'CleanupSkipped', `${SKIP_CLEANUP_ANNOTATION} is set: released without cleaning up external state`);
    } else if (parsed.ok) {
      await r.finalize?.({ ...obj, spec: parsed.spec } as Resource<Spec, Status>, ctx);
    } else {
      ctx.events.warning(obj, 'CleanupSkipped', `${parsed.message}; the stored spec no longer says what to clean up`);
    }
    await this.kube.mergePatch(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name, {
      metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== r.finalizer) },
    });
    ctx.log.info('finalized; finalizer removed');
  }

  /** The reconciler's status is the whole status; the core adds observedGeneration and its conditions. */
  private successStatus(obj: KubeObject, result: ReconcileResult<Status>): Record<string, unknown> {
    const gen = obj.metadata.generation;
    const reported = result.conditions ?? [];
    const reportedTypes = new Set(reported.map((c) => c.type));
    // Keep the core conditions (for their transition times); drop the rest unless reported again.
    let conds: Condition[] = (obj.status?.conditions ?? []).filter((c: Condition) => CORE_TYPES.has(c.type) || reportedTypes.has(c.type));
    for (const { terminal: _t, ...c } of reported) conds = setCondition(conds, { ...c, observedGeneration: gen });
    // A condition that waiting will not cure names the object's state before one that is on its way.
    const stalled = reported.find((c) => c.status !== 'True' && c.terminal);
    const failing = stalled ?? reported.find((c) => c.status !== 'True');
    const suspended = stalled ? undefined : result.suspended;
    conds = setCondition(conds, failing
      ? { type: 'Ready', status: 'False', reason: failing.reason, message: `${failing.type}: ${failing.message}`, observedGeneration: gen }
      : { type: 'Ready', status: 'True', reason: 'Reconciled', message: 'All dependencies are ready', observedGeneration: gen });
    // kstatus reads Reconciling=True as "in progress": the reconcile went
    // through and what is left is waiting for children or dependencies that
    // are on their way. Failures that waiting cannot cure are Stalled
    // instead (thrown as terminal ReconcileErrors, or reported terminal),
    // and a suspended object has nothing on its way.
    conds = setCondition(conds, stalled
      ? { type: 'Reconciling', status: 'False', reason: 'Stalled', message: STALLED_MESSAGE, observedGeneration: gen }
      : suspended
        ? { type: 'Reconciling', status: 'False', reason: suspended.reason, message: suspended.message, observedGeneration: gen }
        : failing
          ? { type: 'Reconciling', status: 'True', reason: failing.reason, message: `Waiting for ${failing.type}: ${failing.message}`, observedGeneration: gen }
          : { type: 'Reconciling', status: 'False', reason: 'Idle', message: 'Reconcile completed', observedGeneration: gen });
    conds = setCondition(conds, failing && !suspended
      ? { type: 'Degraded', status: 'True', reason: failing.reason, message: `${failing.type}: ${failing.message}`, observedGeneration: gen }
      : { type: 'Degraded', status: 'False', reason: suspended ? suspended.reason : 'Healthy', message: suspended ? 'Nothing is applied while suspended' : 'No errors', observedGeneration: gen });
    if (stalled) conds = setCondition(conds, { type: 'Stalled', status: 'True', reason: stalled.reason, message: `${stalled.type}: ${stalled.message}`, observedGeneration: gen });
    if (suspended) conds = setCondition(conds, { type: 'Suspended', status: 'True', reason: suspended.reason, message: suspended.message, observedGeneration: gen });
    return { ...(result.status ?? {}), observedGeneration: gen, conditions: sortConditions(conds) };
  }

  /** On failure the last known facts stay; the conditions say what went wrong. */
  private errorStatus(obj: KubeObject, err: unknown): Record<string, unknown> {
    const gen = obj.metadata.generation;
    const reason = err instanceof ReconcileError ? err.reason : 'ReconcileFailed';
    const message = err instanceof Error ? err.message : String(err);
    const terminal = err instanceof ReconcileError && !!err.opts.terminal;
    // A Stalled that stays keeps its transition time (a retry of a terminal error is then no status write).
    // A failure outranks a suspension: the error is what needs attention now.
    let conds: Condition[] = (obj.status?.conditions ?? []).filter((c: Condition) => (terminal || c.type !== 'Stalled') && c.type !== 'Suspended');
    if (err instanceof ReconcileError) {
      for (const { terminal: _t, ...c } of err.opts.conditions ?? []) conds = setCondition(conds, { ...c, observedGeneration: gen });
    }
    if (err instanceof ReconcileError && err.opts.conditionType) {
      conds = setCondition(conds, { type: err.opts.conditionType, status: 'False', reason, message, observedGeneration: gen });
    }
    conds = setCondition(conds, { type: 'Ready', status: 'False', reason, message, observedGeneration: gen });
    conds = setCondition(conds, terminal
      ? { type: 'Reconciling', status: 'False', reason: 'Stalled', message: STALLED_MESSAGE, observedGeneration: gen }
      : { type: 'Reconciling', status: 'False', reason: 'Retrying', message: 'Reconcile failed; retrying with backoff', observedGeneration: gen });
    conds = setCondition(conds, { type: 'Degraded', status: 'True', reason, message, observedGeneration: gen });
    if (terminal) conds = setCondition(conds, { type: 'Stalled', status: 'True', reason, message, observedGeneration: gen });
    return { ...(obj.status ?? {}), observedGeneration: gen, conditions: sortConditions(conds) };
  }

  /**
   * Server-side applies the status subresource, but only when it differs
   * from what the apiserver holds. That is the cached status only when the
   * cache has delivered our writes to the object: a status write's watch
   * event travels on another connection than its response, so the next
   * reconcile may start from the version before it. Compared with that
   * stale status, a status that went X → Y → X would skip the write back
   * to X and leave Y for good (its own echo wakes nobody). While a write of
   * ours is pending, the status we last wrote is the apiserver's (the
   * "expectations" idea from client-go, keyed by resourceVersion equality
   * only, since resourceVersions are opaque).
   */
  private async writeStatus(obj: KubeObject, status: Record<string, unknown>, log: Logger): Promise<void> {
    const key = objectKey(obj);
    const want = canonical(status);
    const last = this.lastStatus.get(key);
    const cachedRv = this.primary.get(key)?.metadata.resourceVersion;
    const behind = !!last && (last.basedOn === obj.metadata.resourceVersion
      || this.kube.hasPendingWrite(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name, cachedRv));
    if (want === (behind ? last!.status : canonical(obj.status ?? {}))) return;
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

/** Kube API failures that mean something to a user become ReconcileErrors; others pass through. */
function asReconcileError(err: unknown): unknown {
  if (err instanceof ReconcileError) return err;
  if (isMissingResourceType(err)) {
    const path = (err as KubeApiError).message.split(' ')[1] ?? '';
    return new ReconcileError('KindNotInstalled', `the apiserver does not serve ${resourceOfPath(path)} (is its CRD installed?): ${(err as KubeApiError).message}`, { cause: err });
  }
  if (isConflict(err)) return new ReconcileError('Conflict', (err as KubeApiError).message, { cause: err });
  return err;
}

/** "/apis/gateway.networking.k8s.io/v1/namespaces/x/httproutes/y" → "httproutes.gateway.networking.k8s.io/v1". */
function resourceOfPath(path: string): string {
  const parts = path.split('/').filter(Boolean);
  const core = parts[0] === 'api';
  const [group, version] = core ? ['', parts[1]] : [parts[1], parts[2]];
  const rest = parts.slice(core ? 2 : 3);
  const plural = rest[0] === 'namespaces' && rest.length >= 3 ? rest[2] : rest[0];
  return `${plural}${group ? `.${group}` : ''}/${version}`;
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

