// The media service on S3-compatible storage: a real S3 server (versitygw,
// built from its Go module) instead of the filesystem volume. The same
// guarantees must hold: one object per distinct content, nothing stored for
// a rejected upload, ranges served from the bucket.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { startClamd, type LocalClamd } from '../../hack/local/clamd.js';
import { waitFor, workDir } from '../../hack/local/process.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';
import { startS3, type LocalS3 } from '../../hack/local/versitygw.js';
import { S3BlobStore } from '../../src/runtime-services/media/s3-store.js';
import { createAppDatabase, spawnRuntime, type RuntimeProcess } from './runtime-harness.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const DOMAIN = 'family.test';
const BUCKET = 'family-media';
const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let pgInst: LocalPostgres;
let redis: LocalRedis;
let idp: DevIdp;
let clamd: LocalClamd;
let s3: LocalS3;
let rt: RuntimeProcess;
let dataDir: string;
const tokens: Record<string, string> = {};

const objects = () => (existsSync(path.join(s3.dir, BUCKET)) ? readdirSync(path.join(s3.dir, BUCKET)).filter((f) => !f.startsWith('.')) : []);

async function upload(user: string, bytes: Buffer | string, filename: string) {
  const fd = new FormData();
  fd.append('file', new Blob([typeof bytes === 'string' ? bytes : new Uint8Array(bytes)]), filename);
  const res = await fetch(`${rt.url}/api/media/files`, { method: 'POST', headers: { authorization: `Bearer ${tokens[user]}` }, body: fd });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}
const get = (user: string, p: string, headers: Record<string, string> = {}) =>
  fetch(`${rt.url}/api/media${p}`, { headers: { authorization: `Bearer ${tokens[user]}`, ...headers } });

beforeAll(async () => {
  [pgInst, redis, idp, clamd, s3] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN }), startClamd(), startS3()]);
  const settings = { endpoint: s3.endpoint, bucket: BUCKET, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  dataDir = workDir('media-s3-staging');
  await new S3BlobStore({ ...settings, stagingDir: dataDir, timeoutMs: 10_000 }).ensureBucket();
  rt = await spawnRuntime('media-s3', {
    RUNTIME_SERVICES: 'media',
    DATABASE_URL: await createAppDatabase(pgInst, 'media_app', 'media'),
    REDIS_URL: redis.url,
    OIDC_ISSUER_URL: idp.issuer,
    OIDC_AUDIENCE: 'media',
    AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
    MEDIA_DATA_DIR: dataDir,
    MEDIA_CLAMD_PORT: String(clamd.port),
    MEDIA_MAX_UPLOAD_BYTES: String(32 * 1024 * 1024),
    MEDIA_STORE: 's3',
    MEDIA_S3_ENDPOINT: s3.endpoint,
    MEDIA_S3_BUCKET: BUCKET,
    MEDIA_S3_ACCESS_KEY_ID: s3.accessKeyId,
    MEDIA_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
  });
  for (const u of ['alice', 'bob']) tokens[u] = await idp.issueAccessToken({ email: `${u}@${DOMAIN}`, audience: 'media', expiresInSec: 900 });
});

afterAll(async () => {
  await rt?.proc.stop();
  await Promise.all([pgInst?.stop(), redis?.stop(), idp?.stop(), clamd?.stop(), s3?.stop()]);
});

describe('media on S3', () => {
  it('checks the bucket on /ready', async () => {
    const ready = (await (await fetch(`${rt.url}/ready`)).json()) as { checks: Record<string, { ok: boolean }> };
    expect(ready.checks['media.storage']).toEqual({ ok: true });
  });

  it('stores one object for the same bytes from two users, serves ranges from the bucket, deletes with the last reference', async () => {
    const png = await sharp({ create: { width: 80, height: 60, channels: 3, background: '#884422' } }).png().toBuffer();
    const a = await upload('alice', png, 'a.png');
    const b = await upload('bob', png, 'b.png');
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(objects().filter((o) => o === sha256(png))).toHaveLength(1);
    const part = await get('alice', `/files/${a.body.id}/content`, { range: 'bytes=8-15' });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(png.subarray(8, 16))).toBe(true);
    await waitFor('thumbnails', async () => ((await (await get('alice', `/files/${a.body.id}`)).json()) as { thumbState: string }).thumbState === 'done', { timeoutMs: 30_000 });
    expect(objects()).toContain(`t-${sha256(png)}-256`);
    expect((await get('alice', `/files/${a.body.id}/thumbnails/256`)).headers.get('content-type')).toBe('image/webp');
    const del = (u: string, id: string) => fetch(`${rt.url}/api/media/files/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${tokens[u]}` } });
    expect((await del('bob', b.body.id)).status).toBe(204);
    expect(objects()).toContain(sha256(png));
    expect((await del('alice', a.body.id)).status).toBe(204);
    expect(objects().filter((o) => o.includes(sha256(png)))).toEqual([]);
  });

  it('streams a large upload to the bucket from staging and serves it back intact', async () => {
    const big = Buffer.from(randomBytes(12 * 1024 * 1024).toString('base64'));
    const up = await upload('alice', big, 'big.txt');
    expect(up.status).toBe(201);
    expect(objects()).toContain(sha256(big));
    const res = await get('alice', `/files/${up.body.id}/content`);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(big));
    expect(readdirSync(path.join(dataDir, 'staging'))).toEqual([]);
  });

  it('puts nothing in the bucket for an infected upload', async () => {
    const before = objects();
    const res = await upload('bob', EICAR, 'x.txt');
    expect(res.status).toBe(422);
    expect(objects()).toEqual(before);
    expect(readdirSync(path.join(dataDir, 'staging'))).toEqual([]);
  });

  it('refuses uploads with 503 while the S3 server is down, and /ready says so', async () => {
    await s3.stop();
    const res = await upload('alice', 'note while the bucket is away\n', 'n.txt');
    expect(res).toMatchObject({ status: 503, body: { error: 'storage_unavailable' } });
    const ready = (await (await fetch(`${rt.url}/ready`)).json()) as { checks: Record<string, { ok: boolean }> };
    expect(ready.checks['media.storage']!.ok).toBe(false);
    expect(readdirSync(path.join(dataDir, 'staging'))).toEqual([]);
  });
});
