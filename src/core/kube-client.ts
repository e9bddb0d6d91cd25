// A thin REST client for the kube-apiserver. We talk HTTP directly (with the
// credentials src/core/kube-access.ts resolves from kubeconfig/in-cluster)
// because the operator needs things the generated clients make awkward:
// server-side apply on arbitrary kinds, status subresource patches, streaming
// watches with bookmarks, and one place that counts every request it makes.
import http from 'node:http';
import https from 'node:https';
import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { fromKubeConfig, type KubeAccess } from './kube-access.js';
import type { KubeObject, OwnerReference } from './reconciler.js';
import { resourceFor, type ResourceType } from './resources.js';
import { kubeRequestsTotal } from './metrics.js';
import { OwnWrites } from './own-writes.js';

export const FIELD_MANAGER = 'familyhub-operator';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'familyhub-operator';

export class KubeApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly reason: string,
    message: string,
    readonly body?: unknown,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

export const isNotFound = (e: unknown) => e instanceof KubeApiError && e.statusCode === 404;
export const isConflict = (e: unknown) => e instanceof KubeApiError && e.statusCode === 409;
/**
 * A 404 for the resource type itself (no such API: a CRD not installed), as
 * opposed to a missing object, whose 404 carries a Status naming it.
 */
export const isMissingResourceType = (e: unknown) =>
  isNotFound(e) && !((e as KubeApiError).body as { details?: { name?: string } } | undefined)?.details?.name;

interface RequestOpts {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
  /** e.g. a PartialObjectMetadataList, to list Secrets without their values. */
  accept?: string;
}

/** State shared by a client and its per-writer views (see KubeClient.as). */
interface Shared {
  base: URL;
  access: KubeAccess;
  agent: http.Agent;
  tlsAgent?: https.Agent;
  ownWrites: OwnWrites;
  /** Writes whose response has not arrived yet, per object: promises that resolve (never reject) when each settles. */
  writesInFlight: Map<string, Set<Promise<void>>>;
  secretVersions?: (namespace: string, name: string) => string | null | undefined;
  secretMemo: Map<string, { rv: string; data: Record<string, string> }>;
}

export class KubeClient {
  private readonly shared: Shared;
  /** Whose writes this client records (see own-writes.ts); "" for the root client. */
  readonly writer: string;

  /** Accepts our own KubeAccess (the operator) or a client-node KubeConfig (tests, scripts). */
  constructor(access: KubeAccess | KubeConfig, shared?: Shared, writer = '') {
    if (shared) {
      this.shared = shared;
    } else {
      const a = 'headers' in access && typeof access.headers === 'function' ? (access as KubeAccess) : fromKubeConfig(access as KubeConfig);
      this.shared = {
        base: new URL(a.server),
        access: a,
        agent: new http.Agent({ keepAlive: true, maxSockets: 32 }),
        ownWrites: new OwnWrites(),
        writesInFlight: new Map(),
        secretMemo: new Map(),
      };
    }
    this.writer = writer;
  }

  /**
   * The same client (connections, caches) recording its writes as `writer`'s:
   * each controller writes through its own view, so only its own echoes are
   * suppressed and every other controller still sees the change.
   */
  as(writer: string): KubeClient {
    return new KubeClient(this.shared.access, this.shared, writer);
  }

  private async options(): Promise<https.RequestOptions> {
    // Headers per request (tokens rotate on disk); one keep-alive TLS agent.
    const sh = this.shared;
    const headers = await sh.access.headers();
    if (!sh.tlsAgent && sh.base.protocol === 'https:') {
      sh.tlsAgent = new https.Agent({
        keepAlive: true,
        maxSockets: 32,
        ca: sh.access.ca,
        cert: sh.access.cert,
        key: sh.access.key,
        rejectUnauthorized: !sh.access.insecureSkipTLSVerify,
      });
    }
    return { headers };
  }

  /** Raw request returning parsed JSON; throws KubeApiError on non-2xx. */
  async request<T = any>(method: string, path: string, opts: RequestOpts = {}): Promise<T> {
    const res = await this.send(method, path, opts);
    const text = await readAll(res);
    const status = res.statusCode ?? 0;
    let parsed: any = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (status < 200 || status >= 300) {
      const msg = parsed?.message ?? (typeof parsed === 'string' ? parsed.trim() : `HTTP ${status}`);
      throw new KubeApiError(status, parsed?.reason ?? 'Unknown', `${method} ${path.split('?')[0]}: ${msg}`, parsed);
    }
    return parsed as T;
  }

  /** Starts a request and returns the response stream (used by watches). */
  async send(method: string, path: string, opts: RequestOpts = {}): Promise<http.IncomingMessage> {
    const base = await this.options();
    const url = new URL(path, this.shared.base);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    kubeRequestsTotal.inc({ verb: verbOf(method, url) });
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        {
          ...base,
          method,
          agent: this.shared.tlsAgent ?? this.shared.agent,
          headers: {
            ...(base.headers ?? {}),
            Accept: opts.accept ?? 'application/json',
            // Explicit length: Node does not frame DELETE bodies, and unframed
            // leftovers would corrupt the next request on the kept-alive socket.
            ...(body !== undefined ? { 'Content-Type': opts.contentType ?? 'application/json', 'Content-Length': Buffer.byteLength(body) } : {}),
          },
          signal: opts.signal,
        },
        resolve,
      );
      req.on('error', reject);
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  path(apiVersion: string, kind: string, namespace?: string, name?: string, subresource?: string): string {
    const r = resourceFor(apiVersion, kind);
    const prefix = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const ns = r.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
    return `${prefix}${ns}/${r.plural}${name ? `/${encodeURIComponent(name)}` : ''}${subresource ? `/${subresource}` : ''}`;
  }

  async get<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', this.path(apiVersion, kind, namespace, name));
    } catch (e) {
      if (isNotFound(e) && !isMissingResourceType(e)) return undefined;
      throw e;
    }
  }

  async list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace?: string, query: RequestOpts['query'] = {}) {
    return this.request<{ metadata: { resourceVersion: string; continue?: string }; items: T[] }>('GET', this.path(apiVersion, kind, namespace), { query });
  }

  /** resourceVersions the writes through this client and its views produced (see own-writes.ts). */
  get ownWrites(): OwnWrites {
    return this.shared.ownWrites;
  }

  static writeKey(apiVersion: string, kind: string, namespace: string | undefined, name: string): string {
    return `${apiVersion}/${kind}/${namespace ?? ''}/${name}`;
  }

  private static keyOf(obj: KubeObject): string {
    return KubeClient.writeKey(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name);
  }

  /** True when `obj` is exactly a version this client's writer produced. */
  isOwnWrite(obj: KubeObject): boolean {
    return this.shared.ownWrites.isOwn(KubeClient.keyOf(obj), obj.metadata.resourceVersion, this.writer);
  }

  /** The watch delivered this version: writes up to it are no longer pending (any writer). */
  markDelivered(obj: KubeObject): void {
    this.shared.ownWrites.delivered(KubeClient.keyOf(obj), obj.metadata.resourceVersion);
  }

  /** True while a write of ours (any writer) to this object has not come back through the watch yet. */
  hasPendingWrite(apiVersion: string, kind: string, namespace: string | undefined, name: string, cachedRv?: string): boolean {
    const key = KubeClient.writeKey(apiVersion, kind, namespace, name);
    return this.shared.ownWrites.pending(key, cachedRv) || !!this.shared.writesInFlight.get(key)?.size;
  }

  private remember<T extends KubeObject>(o: T): T {
    if (o?.metadata?.resourceVersion && o.apiVersion && o.kind) {
      this.shared.ownWrites.record(KubeClient.keyOf(o), o.metadata.resourceVersion, this.writer);
      // What we just wrote is the Secret's current value: the next read of
      // this version needs no apiserver round trip.
      if (o.apiVersion === 'v1' && o.kind === 'Secret' && o.data) this.rememberSecret(o);
    }
    return o;
  }

  async create<T extends KubeObject>(obj: T): Promise<T> {
    return this.tracked(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name, async () =>
      this.remember(await this.request<T>('POST', this.path(obj.apiVersion!, obj.kind!, obj.metadata.namespace), { body: obj })));
  }

  /** Server-side apply with our field manager; `force` takes ownership of conflicting fields. */
  async apply<T extends KubeObject>(obj: T, opts: { subresource?: string; force?: boolean; fieldManager?: string; dryRun?: boolean } = {}): Promise<T> {
    const send = async () => await this.request<T>('PATCH', this.path(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name, opts.subresource), {
      body: obj,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: opts.fieldManager ?? FIELD_MANAGER, force: opts.force ?? true, dryRun: opts.dryRun ? 'All' : undefined },
    });
    if (opts.dryRun) return send();
    return this.tracked(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name, async () => this.remember(await send()));
  }

  async mergePatch<T extends KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string, patch: unknown, subresource?: string): Promise<T> {
    return this.tracked(apiVersion, kind, namespace, name, async () =>
      this.remember(await this.request<T>('PATCH', this.path(apiVersion, kind, namespace, name, subresource), {
        body: patch,
        contentType: 'application/merge-patch+json',
        query: { fieldManager: FIELD_MANAGER },
      })));
  }

  private async tracked<T>(apiVersion: string, kind: string, namespace: string | undefined, name: string | undefined, write: () => Promise<T>): Promise<T> {
    if (!name) return write(); // generateName: nobody can be waiting for it by name
    const key = KubeClient.writeKey(apiVersion, kind, namespace, name);
    const inFlight = this.shared.writesInFlight;
    const p = write();
    const settled = p.then(() => undefined, () => undefined);
    let set = inFlight.get(key);
    if (!set) inFlight.set(key, (set = new Set()));
    set.add(settled);
    void settled.then(() => {
      set.delete(settled);
      if (!set.size && inFlight.get(key) === set) inFlight.delete(key);
    });
    return p;
  }

  /**
   * isOwnWrite for watch handlers. The watch stream and the write's response
   * travel on different connections, so the event of our write can arrive
   * before we know its resourceVersion; while a write to the object is in
   * flight, the answer waits for it.
   */
  ownWriteSettled(obj: KubeObject): boolean | Promise<boolean> {
    if (this.isOwnWrite(obj)) return true;
    const set = this.shared.writesInFlight.get(KubeClient.keyOf(obj));
    if (!set?.size) return false;
    return Promise.all(set).then(() => this.isOwnWrite(obj));
  }

  /** Deletes; a missing object is not an error (idempotent). */
  async delete(apiVersion: string, kind: string, namespace: string | undefined, name: string, propagationPolicy: 'Background' | 'Foreground' | 'Orphan' = 'Background', preconditions?: { uid?: string; resourceVersion?: string }): Promise<void> {
    try {
      await this.request('DELETE', this.path(apiVersion, kind, namespace, name), { body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy, ...(preconditions ? { preconditions } : {}) } });
    } catch (e) {
      if (!isNotFound(e) || isMissingResourceType(e)) throw e;
    }
  }

  /** Decoded string data of a Secret, or undefined when it does not exist. */
  async readSecret(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    // Unknown to the informer (not synced, or not seen yet): ask the API.
    const version = this.shared.secretVersions?.(namespace, name) ?? undefined;
    const key = `${namespace}/${name}`;
    const memo = version ? this.shared.secretMemo.get(key) : undefined;
    if (memo && memo.rv === version) return { ...memo.data };
    const s = await this.get('v1', 'Secret', namespace, name);
    if (!s) return undefined;
    const out = decodeSecretData(s);
    if (version) this.shared.secretMemo.set(key, { rv: s.metadata.resourceVersion!, data: out });
    return { ...out };
  }

  private rememberSecret(s: KubeObject): void {
    if (!this.shared.secretVersions) return;
    this.shared.secretMemo.set(`${s.metadata.namespace}/${s.metadata.name}`, { rv: s.metadata.resourceVersion!, data: decodeSecretData(s) });
  }

  /**
   * Lets readSecret skip the API: `versions` answers from the Secret
   * informer with the current resourceVersion (null/undefined: not known
   * there, so the API decides). Values are read once per resourceVersion and
   * kept only for Secrets we actually read or wrote — not every Secret in the cluster.
   */
  useSecretVersions(versions: (namespace: string, name: string) => string | null | undefined): void {
    this.shared.secretVersions = versions;
  }

  /** Drops the memoized values of a deleted Secret. */
  forgetSecret(namespace: string, name: string): void {
    this.shared.secretMemo.delete(`${namespace}/${name}`);
  }
}

export function decodeSecretData(s: KubeObject): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((s.data ?? {}) as Record<string, string>)) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return out;
}

export function encodeSecretData(data: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')]));
}

/**
 * What the Secret cache keeps of a data value: "" for empty, else a short
 * one-way digest of the base64 text. Enough to know a key exists and to see
 * that a value changed, without the value in the operator's heap.
 */
export function secretDigest(base64: string): string {
  return base64 ? `sha256:${createHash('sha256').update(base64).digest('hex').slice(0, 24)}` : '';
}

/** Stable sha256 over sorted key/value pairs; safe to publish (one-way). */
export function contentHash(data: Record<string, string>): string {
  const h = createHash('sha256');
  for (const k of Object.keys(data).sort()) h.update(k).update('\0').update(data[k]!).update('\0');
  return h.digest('hex').slice(0, 16);
}

export function ownerReference(owner: KubeObject, controller = true): OwnerReference {
  return {
    apiVersion: owner.apiVersion!,
    kind: owner.kind!,
    name: owner.metadata.name,
    uid: owner.metadata.uid!,
    controller,
    blockOwnerDeletion: true,
  };
}

function verbOf(method: string, url: URL): string {
  if (method === 'GET') return url.searchParams.get('watch') === 'true' ? 'watch' : 'get';
  return method.toLowerCase();
}

function readAll(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}
