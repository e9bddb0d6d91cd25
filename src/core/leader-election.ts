// Lease-based leader election (coordination.k8s.io/v1), the same protocol as
// client-go's leaderelection: optimistic concurrency on the Lease's
// resourceVersion, expiry judged by when *we* last saw the record change (not
// the holder's clock), and release on graceful shutdown so a standby takes
// over at its next retry instead of waiting out the lease.
import type { Logger } from 'pino';
import { isConflict, isNotFound, type KubeClient } from './kube-client.js';
import { leaderStatus } from './metrics.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

const microTime = (d = new Date()) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private observedRecord = '';
  private observedAt = 0;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly duration: number;
  private readonly deadline: number;
  private readonly retry: number;

  constructor(
    private readonly kube: KubeClient,
    private readonly opts: LeaderElectionOptions,
    private readonly log: Logger,
    private readonly callbacks: { onStartedLeading(): void; onStoppedLeading(): void },
  ) {
    this.duration = opts.leaseDurationMs ?? 15_000;
    this.deadline = opts.renewDeadlineMs ?? 10_000;
    this.retry = opts.retryPeriodMs ?? 2_000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    const tick = async () => {
      if (this.stopped) return;
      try {
        // Bounded: a request to a frozen apiserver never answers, and the
        // renew deadline below must still be judged.
        let bound: NodeJS.Timeout | undefined;
        const ok = await Promise.race([
          this.tryAcquireOrRenew(),
          new Promise<never>((_, reject) => (bound = setTimeout(() => reject(new Error(`lease request unanswered after ${this.deadline} ms`)), this.deadline))),
        ]).finally(() => clearTimeout(bound));
        if (ok) {
          this.lastRenew = Date.now();
          if (!this.leading) {
            this.leading = true;
            leaderStatus.set({ lease: this.opts.name }, 1);
            this.log.info({ identity: this.opts.identity, lease: this.opts.name }, 'became leader');
            this.callbacks.onStartedLeading();
          }
        }
      } catch (err) {
        this.log.warn({ err: String(err), lease: this.opts.name }, 'leader election: lease request failed');
      }
      if (this.leading && Date.now() - this.lastRenew > this.deadline) {
        this.leading = false;
        leaderStatus.set({ lease: this.opts.name }, 0);
        this.log.error({ lease: this.opts.name }, 'lost leadership: could not renew within the renew deadline');
        this.callbacks.onStoppedLeading();
      }
      if (!this.stopped) {
        this.timer = setTimeout(tick, this.retry);
      }
    };
    leaderStatus.set({ lease: this.opts.name }, 0);
    void tick();
  }

  /** Stops renewing and, if leading, releases the lease for a fast hand-over. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    leaderStatus.set({ lease: this.opts.name }, 0);
    try {
      const lease = await this.kube.get('coordination.k8s.io/v1', 'Lease', this.opts.namespace, this.opts.name);
      if (lease && lease.spec?.holderIdentity === this.opts.identity) {
        await this.kube.request('PUT', this.kube.path('coordination.k8s.io/v1', 'Lease', this.opts.namespace, this.opts.name), {
          body: { ...lease, spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime() } },
        });
        this.log.info({ lease: this.opts.name }, 'released leader lease');
      }
    } catch (err) {
      this.log.warn({ err: String(err) }, 'could not release leader lease; the standby takes over after it expires');
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.opts;
    const now = new Date();
    const lease = await this.kube.get('coordination.k8s.io/v1', 'Lease', namespace, name);
    const durationSeconds = Math.ceil(this.duration / 1000);
    if (!lease) {
      try {
        await this.kube.create({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        });
        return true;
      } catch (err) {
        if (isConflict(err)) return false;
        throw err;
      }
    }
    const spec: LeaseSpec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseDurationSeconds]);
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = Date.now();
    }
    const holder = spec.holderIdentity ?? '';
    const held = holder !== '' && holder !== identity;
    const expiresAt = this.observedAt + (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (held && Date.now() < expiresAt) return false;
    const next: LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      acquireTime: holder === identity ? spec.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: holder === identity ? spec.leaseTransitions ?? 0 : (spec.leaseTransitions ?? 0) + 1,
    };
    try {
      await this.kube.request('PUT', this.kube.path('coordination.k8s.io/v1', 'Lease', namespace, name), {
        body: { ...lease, spec: next },
      });
      return true;
    } catch (err) {
      if (isConflict(err) || isNotFound(err)) return false;
      throw err;
    }
  }
}
