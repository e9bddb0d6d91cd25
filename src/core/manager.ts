// Owns the process-wide pieces: shared informers (one watch per kind no
// matter how many controllers use it), leader election, the health/metrics
// server, and graceful shutdown. Controllers start only while we lead.
import http from 'node:http';
import os from 'node:os';
import type { Logger } from 'pino';
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeAccess } from './kube-access.js';
import { Controller, type ControllerDefinition, type ControllerSettings, type InformerSource } from './controller.js';
import { KubeEventRecorder } from './events.js';
import { Informer } from './informer.js';
import { KubeClient, secretDigest } from './kube-client.js';
import { LeaderElector } from './leader-election.js';
import { registry } from './metrics.js';
import type { CacheReader, KubeObject } from './reconciler.js';
import { registerResource, SECRET, type ResourceType } from './resources.js';

/**
 * Secrets are cached with every data value replaced by a digest: the cache
 * can answer "which keys exist" and "did this value change" for every Secret
 * in the cluster without holding a single secret value (memory, and no
 * secret in the heap). Values are read on demand (KubeClient.readSecret).
 */
function digestSecretData(o: KubeObject): KubeObject {
  const digest = (d: Record<string, string> | undefined) => (d ? Object.fromEntries(Object.entries(d).map(([k, v]) => [k, secretDigest(v)])) : d);
  return { ...o, data: digest(o.data), stringData: undefined };
}

export interface ManagerOptions {
  kubeConfig: KubeConfig | KubeAccess;
  log: Logger;
  /** Port for /metrics, /healthz, /readyz; 0 picks a free one; undefined disables. */
  port?: number;
  bindAddress?: string;
  leaderElection?: { namespace: string; name?: string; identity?: string; leaseDurationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
  watchIdleTimeoutMs?: number;
  controllers?: Partial<ControllerSettings>;
}

const DEFAULT_SETTINGS: ControllerSettings = { concurrency: 8, resyncMs: 10 * 60_000, stalledRetryMs: 5 * 60_000 };

export class Manager implements InformerSource {
  readonly kube: KubeClient;
  private readonly informers = new Map<string, Informer>();
  private readonly controllers: Controller<any, any>[] = [];
  private elector: LeaderElector | undefined;
  private server: http.Server | undefined;
  private running = false;
  private stopping = false;
  private readonly log: Logger;
  private startedInformers = false;
  private readonly settings: ControllerSettings;

  constructor(private readonly opts: ManagerOptions) {
    this.kube = new KubeClient(opts.kubeConfig);
    this.log = opts.log;
    this.settings = { ...DEFAULT_SETTINGS, ...(opts.controllers ?? {}) };
  }

  /** The one shared informer of a kind (Secrets: data digests only). */
  informer(type: ResourceType): Informer {
    registerResource(type);
    const key = `${type.apiVersion}/${type.kind}`;
    let inf = this.informers.get(key);
    if (!inf) {
      const isSecret = type.apiVersion === SECRET.apiVersion && type.kind === SECRET.kind;
      inf = new Informer(this.kube, { apiVersion: type.apiVersion, kind: type.kind, transform: isSecret ? digestSecretData : undefined, idleTimeoutMs: this.opts.watchIdleTimeoutMs }, this.log.child({ informer: type.kind }));
      if (isSecret) {
        const secrets = inf;
        secrets.addHandlers({ onDelete: (o) => this.kube.forgetSecret(o.metadata.namespace!, o.metadata.name) });
        this.kube.useSecretVersions((ns, name) => {
          if (!secrets.synced) return undefined;
          return secrets.get(`${ns}/${name}`)?.metadata.resourceVersion ?? null;
        });
      }
      // Marks our own writes as delivered, so cache reads of them stop going to the API.
      inf.addHandlers({ onAdd: (o) => this.kube.markDelivered(o), onUpdate: (_, o) => this.kube.markDelivered(o) });
      this.informers.set(key, inf);
      if (this.startedInformers) inf.start();
    }
    return inf;
  }

  /** Reads from the kind's synced informer, else from the API. */
  readonly cache: CacheReader = {
    get: async <T extends KubeObject>(type: ResourceType, namespace: string | undefined, name: string) => {
      const inf = this.informers.get(`${type.apiVersion}/${type.kind}`);
      // Read-your-own-writes: until the watch has delivered our latest write, the cache is behind.
      if (inf?.synced) {
        const cached = inf.get(namespace ? `${namespace}/${name}` : name) as T | undefined;
        if (!this.kube.hasPendingWrite(type.apiVersion, type.kind, namespace, name, cached?.metadata.resourceVersion)) return cached;
      }
      const live = await this.kube.get<T>(type.apiVersion, type.kind, namespace, name);
      return live && inf?.opts.transform ? (inf.opts.transform(live) as T) : live;
    },
    list: async <T extends KubeObject>(type: ResourceType, namespace?: string) => {
      const inf = this.informers.get(`${type.apiVersion}/${type.kind}`);
      if (inf?.synced) return inf.list().filter((o) => !namespace || o.metadata.namespace === namespace) as T[];
      const items = (await this.kube.list<T>(type.apiVersion, type.kind, namespace)).items;
      return inf?.opts.transform ? items.map((o) => inf.opts.transform!(o) as T) : items;
    },
  };

  add<Spec, Status>(def: ControllerDefinition<Spec, Status>): Controller<Spec, Status> {
    for (const t of [def.resource, ...(def.owns ?? []), ...(def.watches ?? []).map((w) => w.resource)]) registerResource(t);
    const events = new KubeEventRecorder(this.kube, this.log);
    const c = new Controller<Spec, Status>(def, this.kube, this, events, this.log, this.settings);
    this.controllers.push(c);
    return c;
  }

  get isLeader(): boolean {
    return this.elector ? this.elector.isLeader : this.running;
  }

  async start(): Promise<void> {
    if (this.opts.port !== undefined) await this.serve(this.opts.port);
    const le = this.opts.leaderElection;
    if (!le) {
      await this.run();
      return;
    }
    this.elector = new LeaderElector(this.kube, {
      namespace: le.namespace,
      name: le.name ?? 'familyhub-operator',
      identity: le.identity ?? `${os.hostname()}_${process.pid}`,
      leaseDurationMs: le.leaseDurationMs,
      renewDeadlineMs: le.renewDeadlineMs,
      retryPeriodMs: le.retryPeriodMs,
    }, this.log, {
      onStartedLeading: () => void this.run(),
      // Like controller-runtime: a replica that lost the lease exits, so it
      // can never reconcile alongside the new leader; the Deployment restarts it.
      onStoppedLeading: () => {
        this.log.error('leadership lost; exiting');
        process.exit(1);
      },
    });
    this.elector.start();
  }

  private async run(): Promise<void> {
    if (this.running || this.stopping) return;
    this.running = true;
    for (const c of this.controllers) c.setup();
    this.startedInformers = true;
    for (const inf of this.informers.values()) inf.start();
    await Promise.all([...this.informers.values()].map((i) => i.hasSynced));
    this.log.info({ controllers: this.controllers.map((c) => c.name), informers: [...this.informers.keys()] }, 'caches synced; starting workers');
    for (const c of this.controllers) c.start();
  }

  /** Graceful: finish in-flight reconciles, stop watches, release the lease. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.all(this.controllers.map((c) => c.stop()));
    // Released once no reconcile is in flight (so two leaders never act at
    // once) and before the watches close, which only the old leader needs: the
    // standby takes over at its next retry, ahead of a replacement pod.
    await this.elector?.stop();
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.log.info('stopped');
  }

  get address(): number | undefined {
    const a = this.server?.address();
    return typeof a === 'object' && a ? a.port : undefined;
  }

  private async ready(): Promise<boolean> {
    if (this.stopping) return false;
    // A standby is ready (it is healthy and waiting); a leader once its caches synced.
    if (!this.isLeader) return true;
    const synced = await Promise.race([
      Promise.all([...this.informers.values()].map((i) => i.hasSynced)).then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 10)),
    ]);
    // An optional child kind may be missing (Gateway API not installed), but
    // a kind the operator reconciles must be served: without its CRD nothing works.
    const primaries = new Set(this.controllers.map((c) => `${c.def.resource.apiVersion}/${c.def.resource.kind}`));
    return synced && [...primaries].every((k) => this.informers.get(k)?.served !== false);
  }

  private serve(port: number): Promise<void> {
    this.server = http.createServer(async (req, res) => {
      const url = req.url ?? '/';
      if (url === '/metrics') {
        res.setHeader('Content-Type', registry.contentType);
        res.end(await registry.metrics());
      } else if (url === '/healthz') {
        res.end('ok');
      } else if (url === '/readyz') {
        const ok = await this.ready();
        res.statusCode = ok ? 200 : 503;
        res.end(ok ? 'ok' : 'not ready');
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    return new Promise((resolve) => this.server!.listen(port, this.opts.bindAddress ?? '0.0.0.0', () => resolve()));
  }
}
