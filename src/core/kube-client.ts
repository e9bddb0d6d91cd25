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
import { resourceFor } from './resources.js';
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
export const isGone = (e: unknown) => e instanceof KubeApiError && e.statusCode === 410;

interface RequestOpts {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
}

export class KubeClient {
  private readonly base: URL;
  private readonly agent: http.Agent;
  private tlsAgent: https.Agent | undefined;
  private readonly access: KubeAccess;

  /** Accepts our own KubeAccess (the operator) or a client-node KubeConfig (tests, scripts). */
  constructor(access: KubeAccess | KubeConfig) {
    this.access = 'headers' in access && typeof access.headers === 'function' ? (access as KubeAccess) : fromKubeConfig(access as KubeConfig);
    this.base = new URL(this.access.server);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  }

  private async options(): Promise<https.RequestOptions> {
    // Headers per request (tokens rotate on disk); one keep-alive TLS agent.
    const headers = await this.access.headers();
    if (!this.tlsAgent && this.base.protocol === 'https:') {
      this.tlsAgent = new https.Agent({
        keepAlive: true,
        maxSockets: 32,
        ca: this.access.ca,
        cert: this.access.cert,
        key: this.access.key,
        rejectUnauthorized: !this.access.insecureSkipTLSVerify,
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
      const msg = parsed?.message ?? (typeof parsed === 'string' ? parsed : `HTTP ${status}`);
      throw new KubeApiError(status, parsed?.reason ?? 'Unknown', `${method} ${path.split('?')[0]}: ${msg}`, parsed);
    }
    return parsed as T;
  }

  /** Starts a request and returns the response stream (used by watches). */
  async send(method: string, path: string, opts: RequestOpts = {}): Promise<http.IncomingMessage> {
    const base = await this.options();
    const url = new URL(path, this.base);
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
          agent: this.tlsAgent ?? this.agent,
          headers: {
            ...(base.headers ?? {}),
            Accept: 'application/json',
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
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace?: string, query: RequestOpts['query'] = {}) {
    return this.request<{ metadata: { resourceVersion: string; continue?: string }; items: T[] }>('GET', this.path(apiVersion, kind, namespace), { query });
  }

  /** resourceVersions this client's writes produced (see own-writes.ts). */
  readonly ownWrites = new OwnWrites();

  static writeKey(apiVersion: string, kind: string, namespace: string | undefined, name: string): string {
    return `${apiVersion}/${kind}/${namespace ?? ''}/${name}`;
  }

  /** True when `obj` is exactly a version one of our own writes produced. */
  isOwnWrite(obj: KubeObject): boolean {
    return this.ownWrites.isOwn(KubeClient.writeKey(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name), obj.metadata.resourceVersion);
  }

  /** True while a write of ours to this object has not come back through the watch yet. */
  hasPendingWrite(apiVersion: string, kind: string, namespace: string | undefined, name: string, cachedRv?: string): boolean {
    return this.ownWrites.pending(KubeClient.writeKey(apiVersion, kind, namespace, name), cachedRv);
  }

  private remember<T extends KubeObject>(o: T): T {
    if (o?.metadata?.resourceVersion && o.apiVersion && o.kind) {
      this.ownWrites.record(KubeClient.writeKey(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name), o.metadata.resourceVersion);
    }
    return o;
  }

  async create<T extends KubeObject>(obj: T): Promise<T> {
    return this.tracked(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name, async () =>
      this.remember(await this.request<T>('POST', this.path(obj.apiVersion!, obj.kind!, obj.metadata.namespace), { body: obj })));
  }

  /** Server-side apply with our field manager; `force` takes ownership of conflicting fields. */
  async apply<T extends KubeObject>(obj: T, opts: { subresource?: string; force?: boolean; fieldManager?: string } = {}): Promise<T> {
    return this.tracked(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name, async () =>
      this.remember(await this.request<T>('PATCH', this.path(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name, opts.subresource), {
        body: obj,
        contentType: 'application/apply-patch+yaml',
        query: { fieldManager: opts.fieldManager ?? FIELD_MANAGER, force: opts.force ?? true },
      })));
  }

  async mergePatch<T extends KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string, patch: unknown, subresource?: string): Promise<T> {
    return this.tracked(apiVersion, kind, namespace, name, async () =>
      this.remember(await this.request<T>('PATCH', this.path(apiVersion, kind, namespace, name, subresource), {
        body: patch,
        contentType: 'application/merge-patch+json',
        query: { fieldManager: FIELD_MANAGER },
      })));
  }

  /** Writes whose response has not arrived yet, per object: promises that resolve (never reject) when each settles. */
  private readonly writesInFlight = new Map<string, Set<Promise<void>>>();

  private async tracked<T>(apiVersion: string, kind: string, namespace: string | undefined, name: string | undefined, write: () => Promise<T>): Promise<T> {
    if (!name) return write(); // generateName: nobody can be waiting for it by name
    const key = KubeClient.writeKey(apiVersion, kind, namespace, name);
    const p = write();
    const settled = p.then(() => undefined, () => undefined);
    let set = this.writesInFlight.get(key);
    if (!set) this.writesInFlight.set(key, (set = new Set()));
    set.add(settled);
    void settled.then(() => {
      set.delete(settled);
      if (!set.size && this.writesInFlight.get(key) === set) this.writesInFlight.delete(key);
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
    const set = this.writesInFlight.get(KubeClient.writeKey(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name));
    if (!set?.size) return false;
    return Promise.all(set).then(() => this.isOwnWrite(obj));
  }

  /** Deletes; a missing object is not an error (idempotent). */
  async delete(apiVersion: string, kind: string, namespace: string | undefined, name: string, propagationPolicy: 'Background' | 'Foreground' | 'Orphan' = 'Background'): Promise<void> {
    try {
      await this.request('DELETE', this.path(apiVersion, kind, namespace, name), { body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy } });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  /** Decoded string data of a Secret, or undefined when it does not exist. */
  async readSecret(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    // Unknown to the informer (not synced, or not seen yet): ask the API.
    const version = this.secretVersions?.(namespace, name) ?? undefined;
    const key = `${namespace}/${name}`;
    const memo = version ? this.secretMemo.get(key) : undefined;
    if (memo && memo.rv === version) return { ...memo.data };
    const s = await this.get('v1', 'Secret', namespace, name);
    if (!s) return undefined;
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries((s.data ?? {}) as Record<string, string>)) out[k] = Buffer.from(v, 'base64').toString('utf8');
    if (version) this.secretMemo.set(key, { rv: s.metadata.resourceVersion!, data: out });
    return { ...out };
  }

  /**
   * Lets readSecret skip the API: `versions` answers from a keys-only Secret
   * informer with the current resourceVersion (null/undefined: not known
   * there, so the API decides). Values are read once per resourceVersion and
   * kept only for Secrets we actually read — not every Secret in the cluster.
   */
  useSecretVersions(versions: (namespace: string, name: string) => string | null | undefined): void {
    this.secretVersions = versions;
  }

  private secretVersions: ((namespace: string, name: string) => string | null | undefined) | undefined;
  private readonly secretMemo = new Map<string, { rv: string; data: Record<string, string> }>();

  /** Drops the memoized values of a deleted Secret. */
  forgetSecret(namespace: string, name: string): void {
    this.secretMemo.delete(`${namespace}/${name}`);
  }

  /**
   * Writes a Secret we own with server-side apply — but only when its content
   * differs, so steady-state reconciles make no writes. The content hash is
   * kept in an annotation so callers (and tests) can see what changed when.
   */
  async applySecret(
    namespace: string,
    name: string,
    data: Record<string, string>,
    opts: {
      owner?: KubeObject; labels?: Record<string, string>; annotations?: Record<string, string>; type?: string;
      /** The Secret as the caller just read it (null: known not to exist); saves the read here. */
      current?: KubeObject | null;
    } = {},
  ): Promise<{ changed: boolean; hash: string }> {
    const hash = contentHash(data);
    const current = opts.current !== undefined ? opts.current : await this.get('v1', 'Secret', namespace, name);
    const wantAnn = { 'familyhub.dev/content-hash': hash, ...(opts.annotations ?? {}) };
    if (current) {
      const ann = current.metadata.annotations ?? {};
      const same = Object.entries(wantAnn).every(([k, v]) => ann[k] === v) && current.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
      if (same && sameData(current.data ?? {}, data)) return { changed: false, hash };
    }
    await this.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace,
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, ...(opts.labels ?? {}) },
        annotations: wantAnn,
        ...(opts.owner ? { ownerReferences: [ownerReference(opts.owner)] } : {}),
      },
      type: opts.type ?? 'Opaque',
      stringData: undefined,
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')])),
    });
    return { changed: true, hash };
  }
}

function sameData(current: Record<string, string>, want: Record<string, string>): boolean {
  const keys = Object.keys(want);
  if (keys.length !== Object.keys(current).length) return false;
  return keys.every((k) => current[k] === Buffer.from(want[k]!, 'utf8').toString('base64'));
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
