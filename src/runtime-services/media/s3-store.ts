// S3-compatible object storage behind the same BlobStore interface. Uploads
// stream to a local staging file first (hash and scan happen meanwhile, as
// with the filesystem store); only a clean, complete upload is PUT to the
// bucket under its hash. Requests are signed with AWS Signature V4 by hand:
// five operations (HEAD, GET with Range, PUT, DELETE, HEAD bucket) do not
// justify the AWS SDK's size. Path-style URLs, so any S3 server works.
import { createHash, createHmac } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { checkKey, FilesystemBlobStore, StorageError, type BlobStore, type ByteRange, type StagedBlob } from './blob-store.js';

export interface S3Options {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Local directory for staging uploads before they are PUT. */
  stagingDir: string;
  timeoutMs: number;
}

const hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();

export function signV4(
  o: { method: string; url: URL; headers: Record<string, string>; payloadHash: string; region: string; accessKeyId: string; secretAccessKey: string; now?: Date },
): Record<string, string> {
  const now = o.now ?? new Date();
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = { ...o.headers, host: o.url.host, 'x-amz-date': amzDate, 'x-amz-content-sha256': o.payloadHash };
  const names = Object.keys(headers).map((h) => h.toLowerCase()).sort();
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v).trim()]));
  const query = [...o.url.searchParams.entries()]
    .map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)])
    .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonical = [o.method, o.url.pathname, query, names.map((n) => `${n}:${lower[n]}\n`).join(''), names.join(';'), o.payloadHash].join('\n');
  const scope = `${day}/${o.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, hex(canonical)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${o.secretAccessKey}`, day), o.region), 's3'), 'aws4_request');
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  return { ...headers, authorization: `AWS4-HMAC-SHA256 Credential=${o.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}` };
}

export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  private readonly staging: FilesystemBlobStore;

  constructor(private readonly o: S3Options) {
    // Reuses the filesystem store's staging (write + discard); its blobs/ stays empty.
    this.staging = new FilesystemBlobStore(o.stagingDir, { fsync: false });
  }

  async init(): Promise<void> {
    await this.staging.init();
  }

  private url(key?: string): URL {
    const base = this.o.endpoint.replace(/\/$/, '');
    return new URL(key === undefined ? `${base}/${this.o.bucket}` : `${base}/${this.o.bucket}/${checkKey(key)}`);
  }

  private async request(method: string, key: string | undefined, init: { headers?: Record<string, string>; body?: Readable | Buffer; payloadHash?: string } = {}): Promise<Response> {
    const url = this.url(key);
    const headers = signV4({
      method, url, headers: init.headers ?? {}, payloadHash: init.payloadHash ?? hex(''), region: this.o.region,
      accessKeyId: this.o.accessKeyId, secretAccessKey: this.o.secretAccessKey,
    });
    delete headers.host;
    try {
      return await fetch(url, {
        method, headers,
        body: init.body instanceof Readable ? (Readable.toWeb(init.body) as ReadableStream) : init.body ? new Uint8Array(init.body) : undefined,
        signal: AbortSignal.timeout(this.o.timeoutMs),
        ...(init.body instanceof Readable ? { duplex: 'half' } : {}),
      } as RequestInit);
    } catch (err) {
      throw new StorageError(`S3 ${method} ${url.pathname} failed: ${(err as Error).message}`);
    }
  }

  private async check(res: Response, what: string, ok: number[] = [200]): Promise<Response> {
    if (ok.includes(res.status)) return res;
    const text = (await res.text().catch(() => '')).slice(0, 300);
    throw new StorageError(`S3 ${what} answered ${res.status}${text ? `: ${text.replace(/\s+/g, ' ')}` : ''}`);
  }

  async stage(): Promise<StagedBlob> {
    const s = await this.staging.stage();
    // Small uploads stay in memory too (one PUT with a signed payload);
    // larger ones are streamed from the staging file.
    const keepLimit = 8 * 1024 * 1024;
    let bytes: Buffer[] | undefined = [];
    let size = 0;
    return {
      write: async (chunk) => {
        size += chunk.length;
        if (bytes && size <= keepLimit) bytes.push(chunk);
        else bytes = undefined;
        await s.write(chunk);
      },
      promote: async (key) => {
        try {
          if ((await this.size(key)) !== undefined) return false;
          if (bytes) await this.putBytes(key, Buffer.concat(bytes));
          else await this.putFile(key, await s.complete(), size);
          return true;
        } finally {
          await s.discard();
        }
      },
      discard: () => s.discard(),
    };
  }

  private async putBytes(key: string, body: Buffer): Promise<void> {
    await this.check(await this.request('PUT', key, { body, payloadHash: hex(body), headers: { 'content-length': String(body.length) } }), `PUT ${key}`);
  }

  private async putFile(key: string, file: string, size: number): Promise<void> {
    const body = createReadStream(file, { highWaterMark: 1024 * 1024 });
    // Signing the payload would need a second read for its hash; TLS (or loopback) protects it instead.
    await this.check(await this.request('PUT', key, { body, payloadHash: 'UNSIGNED-PAYLOAD', headers: { 'content-length': String(size) } }), `PUT ${key}`);
  }

  async size(key: string): Promise<number | undefined> {
    const res = await this.request('HEAD', key);
    if (res.status === 404) return undefined;
    await this.check(res, `HEAD ${key}`);
    return Number(res.headers.get('content-length'));
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const res = await this.check(await this.request('GET', key, { headers: range ? { range: `bytes=${range.start}-${range.end}` } : {} }), `GET ${key}`, range ? [206, 200] : [200]);
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
  }

  async delete(key: string): Promise<void> {
    await this.check(await this.request('DELETE', key), `DELETE ${key}`, [200, 204, 404]);
  }

  async put(key: string, bytes: Buffer): Promise<boolean> {
    if ((await this.size(key)) !== undefined) return false;
    await this.putBytes(key, bytes);
    return true;
  }

  async ping(): Promise<void> {
    await this.check(await this.request('HEAD', undefined), `HEAD bucket ${this.o.bucket}`);
  }

  /** For tests and set-up: creates the bucket if it does not exist. */
  async ensureBucket(): Promise<void> {
    const head = await this.request('HEAD', undefined);
    if (head.status === 200) return;
    await this.check(await this.request('PUT', undefined), `PUT bucket ${this.o.bucket}`, [200]);
  }
}
