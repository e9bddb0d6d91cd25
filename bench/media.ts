// npm run bench:media — upload throughput through the media service (JWT
// check, multipart, clamd INSTREAM, SHA-256, staging + fsync + link, metadata
// row, audit event) against a bare pipeline doing the same clamd INSTREAM +
// SHA-256 + write + fsync on the same bytes, in the same run, same clamd,
// same concurrency. Then thumbnails/s of the service's worker against bare
// sharp doing the same decode → rotate → resize (each size) → WebP on the
// same images. Prints JSON.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import { startDevIdp } from '../hack/dev-idp/provider.js';
import { startClamd } from '../hack/local/clamd.js';
import { waitFor, workDir } from '../hack/local/process.js';
import { startPostgres } from '../hack/local/postgres.js';
import { startRedis } from '../hack/local/redis.js';
import { createAppDatabase, spawnRuntime } from '../test/e2e/runtime-harness.js';

const FILE_MB = Number(process.env.BENCH_MEDIA_FILE_MB ?? 4);
const FILES = Number(process.env.BENCH_MEDIA_FILES ?? 24);
const CONCURRENCY = Number(process.env.BENCH_MEDIA_CONCURRENCY ?? 4);
const IMAGES = Number(process.env.BENCH_MEDIA_IMAGES ?? 12);
const SIZES = [256, 1024];
const DOMAIN = 'family.test';
const MB = 1024 * 1024;

/** Unique text files (dedupe would otherwise skip the write). */
const makeFiles = (tag: string) => Array.from({ length: FILES }, () => Buffer.from(`${tag}\n${randomBytes((FILE_MB * MB * 3) / 4).toString('base64')}`));

async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

/** The bare pipeline: INSTREAM framing by hand, hash, write, fsync, rename. */
async function barePipeline(bytes: Buffer, clamdPort: number, dir: string): Promise<void> {
  const sock = net.connect({ port: clamdPort, host: '127.0.0.1' });
  await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
  const verdict = new Promise<string>((r) => {
    let s = '';
    sock.on('data', (d) => {
      s += d.toString();
      if (s.includes('\0')) r(s);
    });
  });
  sock.write('zINSTREAM\0');
  const hash = createHash('sha256');
  const tmp = path.join(dir, `tmp-${randomBytes(8).toString('hex')}`);
  const fh = await open(tmp, 'wx');
  for (let off = 0; off < bytes.length; off += 64 * 1024) {
    const chunk = bytes.subarray(off, off + 64 * 1024);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(chunk.length);
    hash.update(chunk);
    const ok = sock.write(Buffer.concat([head, chunk]));
    await fh.write(chunk);
    if (!ok) await new Promise((r) => sock.once('drain', r));
  }
  sock.write(Buffer.alloc(4));
  if (!(await verdict).startsWith('stream: OK')) throw new Error('bare scan did not say OK');
  sock.end();
  await fh.sync();
  await fh.close();
  await rename(tmp, path.join(dir, hash.digest('hex')));
}

async function photo(i: number): Promise<Buffer> {
  // Noise compresses like a photo does (badly), so decoding costs what it would.
  const raw = randomBytes(1600 * 1200 * 3);
  return sharp(raw, { raw: { width: 1600, height: 1200, channels: 3 } }).jpeg({ quality: 85 }).withMetadata({ orientation: (i % 2 ? 6 : 1) as 1 | 6 }).toBuffer();
}

const [pgInst, redis, idp, clamd] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN }), startClamd()]);
const dataDir = workDir('bench-media-data');
const rt = await spawnRuntime('bench-media', {
  RUNTIME_SERVICES: 'media',
  LOG_LEVEL: 'warn',
  DATABASE_URL: await createAppDatabase(pgInst, 'media_app', 'media'),
  REDIS_URL: redis.url,
  OIDC_ISSUER_URL: idp.issuer,
  OIDC_AUDIENCE: 'media',
  AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
  MEDIA_DATA_DIR: dataDir,
  MEDIA_CLAMD_PORT: String(clamd.port),
  MEDIA_MAX_UPLOAD_BYTES: String((FILE_MB + 1) * MB),
  MEDIA_QUOTA_BYTES: String(100 * 1024 * MB),
  MEDIA_THUMB_SIZES: SIZES.join(','),
  MEDIA_THUMB_CONCURRENCY: '1',
});
const token = await idp.issueAccessToken({ email: `bench@${DOMAIN}`, audience: 'media', expiresInSec: 3600 });
const bareDir = workDir('bench-media-bare');
mkdirSync(bareDir, { recursive: true });

async function serviceUpload(bytes: Buffer, name: string): Promise<string> {
  const fd = new FormData();
  fd.append('file', new Blob([new Uint8Array(bytes)]), name);
  const res = await fetch(`${rt.url}/api/media/files`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: fd });
  if (res.status !== 201) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

try {
  // Warm-up: JIT, connection pools, clamd threads.
  await pool(makeFiles('warm-svc').slice(0, 4), CONCURRENCY, (b) => serviceUpload(b, 'w.txt').then(() => {}));
  await pool(makeFiles('warm-bare').slice(0, 4), CONCURRENCY, (b) => barePipeline(b, clamd.port, bareDir));

  const totalMB = (FILES * FILE_MB);
  const rounds: { service: number; bare: number }[] = [];
  for (let r = 0; r < 2; r++) {
    const a = makeFiles(`svc-${r}`);
    const b = makeFiles(`bare-${r}`);
    const svc = await timed(() => pool(a, CONCURRENCY, (x) => serviceUpload(x, 'f.txt').then(() => {})));
    const bare = await timed(() => pool(b, CONCURRENCY, (x) => barePipeline(x, clamd.port, bareDir)));
    rounds.push({ service: totalMB / svc, bare: totalMB / bare });
  }
  const svcMBs = Math.max(...rounds.map((r) => r.service));
  const bareMBs = Math.max(...rounds.map((r) => r.bare));

  // Thumbnails: the service's worker time per blob (its histogram) vs bare sharp, same images.
  const imgs = await Promise.all(Array.from({ length: IMAGES }, (_, i) => photo(i)));
  const metric = async () => {
    const text = await (await fetch(`${rt.url}/metrics`)).text();
    const sum = Number(/^media_thumbnail_duration_seconds_sum\{result="ok"\} ([\d.e+-]+)/m.exec(text)?.[1] ?? 0);
    const count = Number(/^media_thumbnail_duration_seconds_count\{result="ok"\} (\d+)/m.exec(text)?.[1] ?? 0);
    return { sum, count };
  };
  const before = await metric();
  const wallStart = performance.now();
  const ids: string[] = [];
  for (const [i, img] of imgs.entries()) ids.push(await serviceUpload(img, `p${i}.jpg`));
  await waitFor('all thumbnails', async () => (await metric()).count - before.count >= IMAGES, { timeoutMs: 300_000, intervalMs: 100 });
  const wall = (performance.now() - wallStart) / 1000;
  const after = await metric();
  const svcThumbsPerSec = (after.count - before.count) / (after.sum - before.sum);
  const bareSec = await timed(async () => {
    for (const img of imgs) {
      const src = sharp(img, { limitInputPixels: 50_000_000, failOn: 'error' }).rotate();
      await Promise.all(SIZES.map((s) => src.clone().resize(s, s, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 80 }).toBuffer()));
    }
  });
  const bareThumbsPerSec = IMAGES / bareSec;

  console.log(JSON.stringify({
    upload: {
      files: FILES, fileMB: FILE_MB, concurrency: CONCURRENCY,
      serviceMBps: +svcMBs.toFixed(1), bareMBps: +bareMBs.toFixed(1), ratio: +(svcMBs / bareMBs).toFixed(2), goal: 0.7,
      rounds: rounds.map((r) => ({ service: +r.service.toFixed(1), bare: +r.bare.toFixed(1) })),
    },
    thumbnails: {
      images: IMAGES, source: '1600x1200 JPEG', sizes: SIZES,
      servicePerSec: +svcThumbsPerSec.toFixed(2), barePerSec: +bareThumbsPerSec.toFixed(2), ratio: +(svcThumbsPerSec / bareThumbsPerSec).toFixed(2), goal: 0.8,
      serviceWallSecondsIncludingUploads: +wall.toFixed(2),
    },
  }, null, 2));
} finally {
  await rt.proc.stop();
  await Promise.all([pgInst.stop(), redis.stop(), idp.stop(), clamd.stop()]);
}
