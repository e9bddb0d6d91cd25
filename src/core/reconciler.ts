// The contract every controller implements. A reconciler is level-based: the
// core hands it the current object from the informer cache with its spec
// already parsed (defaults applied), the reconciler observes the external
// system, converges it, and returns what the status should say. The core
// (src/core/controller.ts) does the rest: finalizers, status writes with
// observedGeneration, Ready/Reconciling/Degraded/Stalled, Events,
// requeue/backoff, metrics. See src/core/README.md.
import type { Logger } from 'pino';
import type { KubeClient } from './kube-client.js';
import type { EventRecorder } from './events.js';
import type { ResourceType } from './resources.js';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: string;
  ownerReferences?: OwnerReference[];
  creationTimestamp?: string;
  managedFields?: unknown[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** Any object as the apiserver returns it; kinds the operator reconciles are `Resource`s. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [key: string]: any;
}

/** kstatus-compatible condition. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

/** What a reconciler reports; the core adds observedGeneration and lastTransitionTime. */
export type ConditionInput = Omit<Condition, 'observedGeneration' | 'lastTransitionTime'> & {
  /**
   * A False condition that waiting will not cure (a child Stalled on its own
   * configuration error): the core reports Stalled=True instead of
   * Reconciling=True, as for a terminal ReconcileError, but keeps the rest of
   * this result (status, other conditions, requeue). Not written to the object.
   */
  terminal?: boolean;
};

/** Status fields every kind has; the core owns both. */
export interface StatusBase {
  observedGeneration?: number;
  conditions?: Condition[];
}

/** A reconciled object with its spec parsed by the kind's zod schema. */
export interface Resource<Spec, Status = Record<string, unknown>> extends KubeObject {
  apiVersion: string;
  kind: string;
  spec: Spec;
  status?: Status & StatusBase;
}

/** Reads through the manager's informer caches when the kind is cached, else the API. */
export interface CacheReader {
  /**
   * The cached object (read-your-own-writes: while a write of ours has not
   * come back through the watch, the API answers). Secrets come back with
   * each data value replaced by a digest (see secretDigest): enough to see
   * which keys exist and whether a value changed, never the value itself.
   */
  get<T extends KubeObject = KubeObject>(type: ResourceType, namespace: string | undefined, name: string): Promise<T | undefined>;
  /** Cached objects of a kind (only kinds some controller watches; else the API is listed). */
  list<T extends KubeObject = KubeObject>(type: ResourceType, namespace?: string): Promise<T[]>;
}

export interface ReconcileContext {
  log: Logger;
  /** Writes through this client are recorded as this controller's own (their watch events do not requeue it). */
  kube: KubeClient;
  cache: CacheReader;
  events: EventRecorder;
  /** reconcile id, also in every log line of this reconcile */
  reconcileId: string;
  /** name of the controller running this reconcile */
  controller: string;
}

export interface ReconcileResult<Status = Record<string, unknown>> {
  /** Conditions besides the core's Ready/Reconciling/Degraded/Stalled; Ready is True only when all of them are. */
  conditions?: ConditionInput[];
  /** The whole status (never secrets): a field left out here is removed from the object. */
  status?: Status;
  /** Re-run after this many ms even if nothing changes (TTL renewal, drift checks). */
  requeueAfterMs?: number;
  /**
   * Set when the object deliberately applies nothing (a plan mode, a suspend
   * flag): the core reports Suspended=True with this reason, and neither
   * Reconciling nor Degraded, since nothing is on its way and nothing failed.
   */
  suspended?: { reason: string; message: string };
}

export interface Reconciler<Spec = unknown, Status = Record<string, unknown>> {
  /** e.g. "familyhub", used in metrics, logs and as the writer of own writes */
  readonly name: string;
  /** Finalizer to add when `finalize` exists, e.g. "familyhub.dev/databaseclaim". */
  readonly finalizer?: string;
  /**
   * The reconciler adds `finalizer` itself, only to objects that leave behind
   * what owner references cannot collect (a Route's ReferenceGrant in another
   * namespace), so deleting any other object needs no running operator. The
   * core still runs `finalize` and releases the finalizer where it is set.
   */
  readonly finalizerOnDemand?: boolean;
  reconcile(obj: Resource<Spec, Status>, ctx: ReconcileContext): Promise<ReconcileResult<Status>>;
  /**
   * Clean up external state on delete; throw to retry. Honour deletionPolicy.
   * `obj.spec` is undefined when the stored spec no longer parses (nothing
   * can be located then; the finalizer is released with a CleanupSkipped Event).
   */
  finalize?(obj: Resource<Spec, Status>, ctx: ReconcileContext): Promise<void>;
}

/**
 * Thrown by a reconciler for an expected, user-facing failure (bad reference,
 * dependency down). The core turns it into Degraded=True with this reason and
 * message, an Event, and a retry — without a stack trace in the logs.
 * `terminal`: only a change of the object (or of what it points at, which
 * the controller watches) can help, so the core sets Stalled=True and does
 * not retry on a timer.
 */
export class ReconcileError extends Error {
  constructor(
    readonly reason: string,
    message: string,
    readonly opts: {
      conditionType?: string;
      retryAfterMs?: number;
      terminal?: boolean;
      /** Facts this reconcile established before it failed (an IdP that answered), written beside the failure. */
      conditions?: ConditionInput[];
      cause?: unknown;
    } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = 'ReconcileError';
  }
}
