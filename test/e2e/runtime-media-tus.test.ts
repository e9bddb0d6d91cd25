// Resumable uploads (tus) through the real runtime: the replica is SIGKILLed
// in the middle of a PATCH, a new one resumes from the bytes on disk, and the
// stored file has the hash of the whole upload; EICAR through tus is refused.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { startClamd, type LocalClamd } from '../../hack/local/clamd.js';
import { waitFor, workDir } from '../../hack/local/process.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';
import { createAppDatabase, spawnRuntime, type RuntimeProcess } from './runtime-harness.js';

const DOMAIN = 'family.test';
const AUDIENCE = 'media';
const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let pgInst: LocalPostgres;
let redis: LocalRedis;
let idp: DevIdp;
let clamd: LocalClamd;
let rt: RuntimeProcess;
let env: Record<string, string>;
let dataDir: string;
const tokens: Record<string, string> = {};
const tusHeaders = (user: string, extra: Record<string, string> = {}) => ({ authorization: `Bearer ${tokens[user]}`, 'tus-resumable': '1.0.0', ...extra });

async function create(user: string, length: number, filename: string): Promise<string> {
  const res = await fetch(`${rt.url}/api/media/tus`, {
    method: 'POST',
    headers: tusHeaders(user, { 'upload-length': String(length), 'upload-metadata': `filename ${b64(filename)},visibility ${b64('family')}` }),
  });
  expect(res.status).toBe(201);
  return res.headers.get('location')!;
}

async function patch(user: string, location: string, offset: number, body: Buffer) {
  const res = await fetch(`${rt.url}${location}`, {
    method: 'PATCH',
    headers: tusHeaders(user, { 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream' }),
    body: new Uint8Array(body),
  });
  const text = await res.text();
  let parsed: Record<string, any> | undefined;
  try {
    parsed = text ? (JSON.parse(text) as Record<string, any>) : undefined;
  } catch {
    // tus's own errors are plain text.
    parsed = { text };
  }
  return { status: res.status, offset: res.headers.get("upload-offset"), body: parsed };
}

async function head(user: string, location: string) {
  const res = await fetch(`${rt.url}${location}`, { method: 'HEAD', headers: tusHeaders(user) });
  return { status: res.status, offset: Number(res.headers.get('upload-offset')) };
}

beforeAll(async () => {
  [pgInst, redis, idp, clamd] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN }), startClamd()]);
  dataDir = workDir('media-tus-data');
  env = {
    RUNTIME_SERVICES: 'media',
    DATABASE_URL: await createAppDatabase(pgInst, 'media_app', 'media'),
    REDIS_URL: redis.url,
    OIDC_ISSUER_URL: idp.issuer,
    OIDC_AUDIENCE: AUDIENCE,
    AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
    AUDIT_STREAM: 'e2e:media-tus:audit',
    MEDIA_DATA_DIR: dataDir,
    MEDIA_CLAMD_PORT: String(clamd.port),
  };
  rt = await spawnRuntime('media-tus-1', env);
  for (const u of ['alice', 'bob']) tokens[u] = await idp.issueAccessToken({ email: `${u}@${DOMAIN}`, audience: AUDIENCE, expiresInSec: 900 });
});

afterAll(async () => {
  await rt?.proc.stop();
  await Promise.all([pgInst?.stop(), redis?.stop(), idp?.stop(), clamd?.stop()]);
});

describe('tus resumable upload', () => {
  it('resumes after the replica is SIGKILLed mid-PATCH and stores the identical bytes', async () => {
    // Text, so the type allowlist accepts it; 24 MiB so the kill lands mid-stream.
    const content = Buffer.from(randomBytes(18 * 1024 * 1024).toString('base64'));
    const location = await create('alice', content.length, 'video-notes.txt');
    const id = location.split('/').pop()!;
    const partial = path.join(dataDir, 'tus', id);

    // Stream the body slowly enough that part of it is on disk when the replica dies.
    const req = http.request(`${rt.url}${location}`, {
      method: 'PATCH',
      headers: { ...tusHeaders('alice', { 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' }), 'content-length': String(content.length) },
    });
    req.on('error', () => {});
    const sending = (async () => {
      for (let off = 0; off < content.length; off += 256 * 1024) {
        if (!req.write(content.subarray(off, off + 256 * 1024))) await new Promise((r) => req.once('drain', r));
        await new Promise((r) => setTimeout(r, 10));
        if (req.destroyed) return;
      }
    })();
    await waitFor('part of the upload on disk', async () => existsSync(partial) && statSync(partial).size >= 4 * 1024 * 1024, { timeoutMs: 30_000, intervalMs: 20 });
    await rt.proc.kill();
    req.destroy();
    await sending;

    rt = await spawnRuntime('media-tus-2', env);
    expect((await head('bob', location)).status).toBe(404); // someone else's upload does not exist for bob
    const h = await head('alice', location);
    expect(h.status).toBe(200);
    expect(h.offset).toBeGreaterThanOrEqual(4 * 1024 * 1024);
    expect(h.offset).toBeLessThan(content.length);
    expect((await patch('alice', location, h.offset + 1, content.subarray(h.offset + 1))).status).toBe(409); // wrong offset
    const done = await patch('alice', location, h.offset, content.subarray(h.offset));
    expect(done.status).toBe(201);
    expect(done.body).toMatchObject({ hash: sha256(content), size: content.length, contentType: 'text/plain', filename: 'video-notes.txt', visibility: 'family' });
    expect(existsSync(partial)).toBe(false);
    const got = await fetch(`${rt.url}/api/media/files/${done.body!.id}/content`, { headers: { authorization: `Bearer ${tokens.bob}` } });
    expect(sha256(Buffer.from(await got.arrayBuffer()))).toBe(sha256(content));
  });

  it('lets two replicas share one upload: one PATCH at a time (Redis lock), one file', async () => {
    const other = await spawnRuntime('media-tus-3', env);
    try {
      const content = Buffer.from(randomBytes(6 * 1024 * 1024).toString('base64'));
      const half = Math.floor(content.length / 2);
      // Halves through different replicas.
      const loc = await create('alice', content.length, 'halves.txt');
      expect((await patch('alice', loc, 0, content.subarray(0, half))).status).toBe(204);
      const viaOther = await fetch(`${other.url}${loc}`, {
        method: 'PATCH',
        headers: tusHeaders('alice', { 'upload-offset': String(half), 'content-type': 'application/offset+octet-stream' }),
        body: new Uint8Array(content.subarray(half)),
      });
      expect(viaOther.status).toBe(201);
      expect(((await viaOther.json()) as { hash: string }).hash).toBe(sha256(content));

      // The same whole body sent to both replicas at once: the lock lets one
      // write; without it both appended from offset 0 and both finished (two files).
      const loc2 = await create('bob', content.length, 'race.txt');
      // Bodies are trickled (~1 s each) so the two requests overlap.
      const send = (base: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(`${base}${loc2}`, {
          method: 'PATCH',
          headers: { ...tusHeaders('bob', { 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' }), 'content-length': String(content.length) },
        }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject);
        void (async () => {
          for (let off = 0; off < content.length; off += 256 * 1024) {
            if (!req.write(content.subarray(off, off + 256 * 1024))) await new Promise((r) => req.once('drain', r));
            await new Promise((r) => setTimeout(r, 25));
          }
          req.end();
        })();
      });
      const results = await Promise.all([send(rt.url), send(other.url)]);
      // The loser waited for the lock, then found the upload finished and gone (404; 409 if it looked earlier).
      const statuses = results.map((r) => r.status).sort();
      expect(statuses[0]).toBe(201);
      expect([404, 409]).toContain(statuses[1]);
      const made = JSON.parse(results.find((r) => r.status === 201)!.body) as { hash: string; filename: string };
      expect(made).toMatchObject({ hash: sha256(content), filename: 'race.txt' });
      const list = (await (await fetch(`${rt.url}/api/media/files?limit=50`, { headers: { authorization: `Bearer ${tokens.bob}` } })).json()) as { files: { filename: string }[] };
      expect(list.files.filter((f) => f.filename === 'race.txt')).toHaveLength(1);
    } finally {
      await other.proc.stop();
    }
  });

  it('scans a finished tus upload: EICAR is refused with 422 and nothing is kept', async () => {
    const location = await create('bob', EICAR.length, 'eicar.txt');
    const res = await patch('bob', location, 0, Buffer.from(EICAR));
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ error: 'infected', signature: expect.stringMatching(/Eicar/) });
    const id = location.split('/').pop()!;
    expect(readdirSync(path.join(dataDir, 'tus')).filter((f) => f.startsWith(id))).toEqual([]);
    const blobs = path.join(dataDir, 'blobs');
    expect(readdirSync(blobs).flatMap((d) => readdirSync(path.join(blobs, d)))).not.toContain(sha256(EICAR));
    expect((await head('bob', location)).status).toBe(404);
  });

  it('requires a token and an Upload-Length', async () => {
    expect((await fetch(`${rt.url}/api/media/tus`, { method: 'POST', headers: { 'tus-resumable': '1.0.0', 'upload-length': '10' } })).status).toBe(401);
    const deferred = await fetch(`${rt.url}/api/media/tus`, { method: 'POST', headers: tusHeaders('alice', { 'upload-defer-length': '1' }) });
    // Deferred length is a tus extension this server does not offer.
    expect(deferred.status).toBe(501);
  });
});
