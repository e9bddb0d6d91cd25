// The contract every controller implements. A reconciler is level-based:
// it gets the current object from the informer cache, observes the external
// system, converges it, and returns what the status should say. The core
// (src/core/controller.ts) does the rest: finalizers, status patching with
// observedGeneration, Events, requeue/backoff, metrics.
import type { Logger } from 'pino';
import type { KubeClient } from './kube-client.js';
import type { EventRecorder } from './events.js';

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

/** Reads through the manager's informer caches when the kind is cached, else the API. */
export interface CacheReadOptions {
  /** Read from the keys-only informer (Secret/ConfigMap data values blanked). */
  keysOnly?: boolean;
  /** Read from the informer of objects labelled managed-by familyhub-operator (owned children). */
  managedOnly?: boolean;
}

export interface CacheReader {
  get<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string, opts?: CacheReadOptions): Promise<T | undefined>;
  /** Cached objects of a kind (only kinds some controller watches; else the API is listed). */
  list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace?: string): Promise<T[]>;
}

export interface ReconcileContext {
  log: Logger;
  kube: KubeClient;
  cache: CacheReader;
  events: EventRecorder;
  /** reconcile id, also in every log line of this reconcile */
  reconcileId: string;
  signal: AbortSignal;
}

export interface ReconcileResult {
  /**
   * Conditions to set besides the core-managed Ready/Reconciling/Degraded.
   * Ready is derived: True only when every listed condition whose type is in
   * `readyDependsOn` is True (default: all of them).
   */
  conditions?: Omit<Condition, 'observedGeneration' | 'lastTransitionTime'>[];
  /** Extra status fields (never secrets). Merged into status. */
  status?: Record<string, unknown>;
  /** Re-run after this many ms even if nothing changes (TTL renewal, drift checks). */
  requeueAfterMs?: number;
  /** Condition types that Ready depends on; defaults to all returned conditions. */
  readyDependsOn?: string[];
}

export interface Reconciler<T extends KubeObject = KubeObject> {
  /** e.g. "familyhub", used in metrics and logs */
  readonly name: string;
  /** Finalizer to add when `finalize` exists, e.g. "familyhub.dev/databaseclaim". */
  readonly finalizer?: string;
  reconcile(obj: T, ctx: ReconcileContext): Promise<ReconcileResult>;
  /** Clean up external state on delete; throw to retry. Honour deletionPolicy. */
  finalize?(obj: T, ctx: ReconcileContext): Promise<void>;
}

/**
 * Thrown by a reconciler for an expected, user-facing failure (bad reference,
 * dependency down). The core turns it into Degraded=True with this reason and
 * message, an Event, and a backoff retry — without a stack trace in the logs.
 */
export class ReconcileError extends Error {
  constructor(
    readonly reason: string,
    message: string,
    readonly opts: { conditionType?: string; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = 'ReconcileError';
  }
}
