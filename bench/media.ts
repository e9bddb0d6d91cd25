// npm run bench:media — upload throughput through the media service (JWT
// check, multipart, clamd INSTREAM, SHA-256, staging + fsync + link, metadata
// row, audit event) against a bare pipeline doing the same clamd INSTREAM +
// SHA-256 + write + fsync + rename on bytes of the same sizes, same clamd,
// same number in flight. Then images thumbnailed per second by the
// service's worker (its own duration histogram: read, header check, decode →
// rotate → resize per size → WebP, thumbnail writes, state row, audit event)
// against bare sharp doing the same decode → rotate → resize (each size) →
// WebP with the worker's decoder options on the same images, one image at a
// time on both sides.
// On the shared harness (bench/harness.ts): bare → service → … → bare in
// BENCH_ROUNDS rounds (default 2), fresh bytes every run (the service would
// deduplicate repeats), bench/results/media.json.
// There is no reference side doing the service's whole work without the
// service (a bare pipeline that also writes the metadata row and the audit
// event): the bare sides do less, so service/bare counts that work as the
// service's overhead.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import sharp from 'sharp';
import { startDevIdp } from '../hack/dev-idp/provider.js';
import { startClamd } from '../hack/local/clamd.js';
import { waitFor, workDir } from '../hack/local/process.js';
import { startPostgres } from '../hack/local/postgres.js';
import { startRedis } from '../hack/local/redis.js';
import { createAppDatabase, spawnRuntime, type RuntimeProcess } from '../test/e2e/runtime-harness.js';
import { Bench, roundsFromEnv, type SideResult } from './harness.js';
import { pool } from './pool.js';

const FILE_MB = Number(process.env.BENCH_MEDIA_FILE_MB ?? 4);
const FILES = Number(process.env.BENCH_MEDIA_FILES ?? 24);
const CONCURRENCY = Number(process.env.BENCH_MEDIA_CONCURRENCY ?? 4);
const IMAGES = Number(process.env.BENCH_MEDIA_IMAGES ?? 12);
const ROUNDS = roundsFromEnv(2);
const SIZES = [256, 1024];
const DOMAIN = 'family.test';
const MB = 1024 * 1024;
const AUDIT_STREAM = 'bench:media:audit';
const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
// The worker's limit (MEDIA_MAX_INPUT_PIXELS default) and decoder options, so bare sharp decodes the same way.
const MAX_INPUT_PIXELS = 50_000_000;

/** Unique text files (dedupe would otherwise skip the write). */
const makeFiles = (tag: string) => Array.from({ length: FILES }, () => Buffer.from(`${tag}\n${randomBytes((FILE_MB * MB * 3) / 4).toString('base64')}`));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The bare pipeline: INSTREAM framing by hand, hash, write, fsync, rename; an infected file is discarded. */
async function barePipeline(bytes: Buffer, clamdPort: number, dir: string): Promise<{ clean: boolean; verdict: string; hash: string }> {
  const sock = net.connect({ port: clamdPort, host: '127.0.0.1' });
  await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
  const verdict = new Promise<string>((r) => {
    let s = '';
    sock.on('data', (d) => {
      s += d.toString();
      if (s.includes('\0')) r(s.replace(/\0.*$/s, ''));
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
  const v = await verdict;
  sock.end();
  await fh.sync();
  await fh.close();
  const digest = hash.digest('hex');
  if (v !== 'stream: OK') {
    await rm(tmp, { force: true });
    return { clean: false, verdict: v, hash: digest };
  }
  await rename(tmp, path.join(dir, digest));
  return { clean: true, verdict: v, hash: digest };
}

async function photo(i: number): Promise<Buffer> {
  // Noise compresses like a photo does (badly), so decoding costs what it would.
  const raw = randomBytes(1600 * 1200 * 3);
  return sharp(raw, { raw: { width: 1600, height: 1200, channels: 3 } }).jpeg({ quality: 85 }).withMetadata({ orientation: (i % 2 ? 6 : 1) as 1 | 6 }).toBuffer();
}

/** Bare sharp: what the worker's thumbnails() does to one image, from a buffer instead of a file stream. */
async function bareThumbnails(img: Buffer): Promise<{ size: number; width: number; height: number; format: string }[]> {
  const src = sharp(img, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error', animated: false, sequentialRead: true }).rotate();
  const out = await Promise.all(SIZES.map((s) => src.clone().resize(s, s, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 80 }).toBuffer({ resolveWithObject: true })));
  return out.map((o, i) => ({ size: SIZES[i]!, width: o.info.width, height: o.info.height, format: o.info.format }));
}

const UPLOAD = `upload ${FILES} × ${FILE_MB} MiB, ${CONCURRENCY} in flight`;
const THUMBS = `thumbnails ${IMAGES} × 1600x1200 JPEG → ${SIZES.join('+')} WebP, 1 at a time`;
const bench = new Bench('media', 'MiB/s', {
  files: FILES, fileMiB: FILE_MB, uploadConcurrency: CONCURRENCY, images: IMAGES, thumbSizes: SIZES, thumbConcurrency: 1,
  sharpThreads: sharp.concurrency(), rounds: ROUNDS, fsync: true, clamd: 'local clamd, EICAR-only signature database',
  where: 'bench client, bare pipeline, bare sharp, media service, clamd, PostgreSQL and Redis on the same cores',
});
bench.unitOf(THUMBS, 'images/s');

const [pgInst, redis, idp, clamd] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN }), startClamd()]);
const dataDir = workDir('bench-media-data');
const bareDir = workDir('bench-media-bare');
mkdirSync(bareDir, { recursive: true });
let rt: RuntimeProcess | undefined;
const cmd = new Redis(redis.url);
try {
  rt = await spawnRuntime('bench-media', {
    RUNTIME_SERVICES: 'media',
    LOG_LEVEL: 'warn',
    DATABASE_URL: await createAppDatabase(pgInst, 'media_app', 'media'),
    REDIS_URL: redis.url,
    OIDC_ISSUER_URL: idp.issuer,
    OIDC_AUDIENCE: 'media',
    AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
    AUDIT_STREAM,
    MEDIA_DATA_DIR: dataDir,
    MEDIA_CLAMD_PORT: String(clamd.port),
    MEDIA_MAX_UPLOAD_BYTES: String((FILE_MB + 1) * MB),
    MEDIA_QUOTA_BYTES: String(100 * 1024 * MB),
    MEDIA_THUMB_SIZES: SIZES.join(','),
    MEDIA_THUMB_CONCURRENCY: '1',
    MEDIA_MAX_INPUT_PIXELS: String(MAX_INPUT_PIXELS),
  });
  const url = rt.url;
  const token = await idp.issueAccessToken({ email: `bench@${DOMAIN}`, audience: 'media', expiresInSec: 3600 });
  const auth = { authorization: `Bearer ${token}` };
  let accepted = 0;

  const post = async (bytes: Buffer, name: string) => {
    const fd = new FormData();
    fd.append('file', new Blob([new Uint8Array(bytes)]), name);
    const res = await fetch(`${url}/api/media/files`, { method: 'POST', headers: auth, body: fd });
    const body = await res.text();
    if (res.status === 201) accepted++;
    return { status: res.status, body };
  };
  const serviceUpload = async (bytes: Buffer, name: string) => {
    const r = await post(bytes, name);
    if (r.status !== 201) throw new Error(`upload answered ${r.status}: ${r.body}`);
    return JSON.parse(r.body) as { id: string; hash: string; size: number; thumbnails: number[] };
  };
  const blobPath = (hash: string) => path.join(dataDir, 'blobs', hash.slice(0, 2), hash);
  const sizeOf = (file: string) => statSync(file, { throwIfNoEntry: false })?.size;

  const metric = async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
    return {
      sum: num(/^media_thumbnail_duration_seconds_sum\{result="ok"\} ([\d.e+-]+)/m),
      count: num(/^media_thumbnail_duration_seconds_count\{result="ok"\} (\d+)/m),
      failed: num(/^media_thumbnail_duration_seconds_count\{result="failed"\} (\d+)/m),
    };
  };

  // Warm-up of both sides: JIT, connection pools, clamd threads, the worker's sharp.
  await pool(makeFiles('warm-svc').slice(0, 4), CONCURRENCY, async (b) => void (await serviceUpload(b, 'w.txt')));
  await pool(makeFiles('warm-bare').slice(0, 4), CONCURRENCY, async (b) => void (await barePipeline(b, clamd.port, bareDir)));
  const warm = await metric();
  await serviceUpload(await photo(0), 'warm.jpg');
  await waitFor('warm-up thumbnail', async () => {
    const m = await metric();
    return m.count + m.failed > warm.count + warm.failed;
  }, { timeoutMs: 60_000, intervalMs: 100, proc: rt.proc });
  await bareThumbnails(await photo(1));

  // ---- uploads ----
  const uploadProblems: string[] = [];
  let uploadsChecked = 0;
  const uploadSide = (side: 'bare' | 'service') => async (round: number): Promise<SideResult> => {
    const files = makeFiles(`${side}-${round}`);
    const bytes = files.reduce((a, b) => a + b.length, 0);
    const stored: { hash: string; size: number }[] = [];
    const t = performance.now();
    await pool(files, CONCURRENCY, async (b) => {
      if (side === 'service') {
        const r = await serviceUpload(b, 'f.txt');
        stored.push({ hash: r.hash, size: r.size });
      } else {
        const r = await barePipeline(b, clamd.port, bareDir);
        if (!r.clean) throw new Error(`bare scan said ${r.verdict}`);
        stored.push({ hash: r.hash, size: b.length });
      }
    });
    const seconds = (performance.now() - t) / 1000;
    // Stored, under the hash of the bytes sent, with their size: checked after the clock.
    const want = new Map(files.map((b) => [sha256(b), b.length]));
    for (const s of stored) {
      const file = side === 'service' ? blobPath(s.hash) : path.join(bareDir, s.hash);
      if (want.get(s.hash) !== s.size || sizeOf(file) !== s.size) uploadProblems.push(`${side} round ${round}: ${s.hash.slice(0, 12)} stored as ${sizeOf(file)} bytes, sent ${want.get(s.hash)}`);
    }
    if (stored.length !== files.length || new Set(stored.map((s) => s.hash)).size !== files.length) uploadProblems.push(`${side} round ${round}: ${stored.length} of ${files.length} stored`);
    uploadsChecked += files.length;
    // The bare pipeline's output is not needed past its check; keep the disk small.
    if (side === 'bare') for (const s of stored) rmSync(path.join(bareDir, s.hash), { force: true });
    return { value: bytes / MB / seconds, extra: { files: files.length, bytes, measuredSeconds: Number(seconds.toFixed(3)) } };
  };
  await bench.rounds(ROUNDS, UPLOAD, [['bare', uploadSide('bare')], ['service', uploadSide('service')]]);
  bench.ratio('upload', 'service', 'bare', UPLOAD, 'MiB/s through the media service / the bare clamd + SHA-256 + write + fsync + rename pipeline (goal ≥ 0.7)');
  bench.check('every upload stored under its hash', uploadProblems.length === 0 && uploadsChecked === FILES * (2 * ROUNDS + 1),
    uploadProblems.length ? uploadProblems.slice(0, 3).join('; ') : `${uploadsChecked} files over ${2 * ROUNDS + 1} runs, each on disk with the SHA-256 and size of the bytes sent`);

  // Both paths scan every byte: a file with the test signature in its last bytes is refused by both.
  const probe = Buffer.concat([makeFiles('probe')[0]!, Buffer.from(`\n${EICAR}`)]);
  const svcProbe = await post(probe, 'probe.txt');
  const bareProbe = await barePipeline(probe, clamd.port, bareDir);
  bench.check('the scan covers the whole upload on both sides', svcProbe.status === 422 && !bareProbe.clean && /FOUND/.test(bareProbe.verdict),
    `${probe.length} bytes with the EICAR string at the end: service answered ${svcProbe.status}, bare clamd said "${bareProbe.verdict}"`);

  // ---- thumbnails ----
  const imageSets = new Map<number, Buffer[]>();
  const imagesFor = async (round: number) => {
    if (!imageSets.has(round)) imageSets.set(round, await Promise.all(Array.from({ length: IMAGES }, (_, i) => photo(i))));
    return imageSets.get(round)!;
  };
  const thumbProblems: string[] = [];
  const serviceThumbs = async (round: number): Promise<SideResult> => {
    const imgs = await imagesFor(round);
    const before = await metric();
    const t = performance.now();
    const ids: string[] = [];
    for (const [i, img] of imgs.entries()) ids.push((await serviceUpload(img, `p${round}-${i}.jpg`)).id);
    await waitFor('all thumbnails', async () => {
      const m = await metric();
      return m.count + m.failed - before.count - before.failed >= IMAGES;
    }, { timeoutMs: 300_000, intervalMs: 100, proc: rt!.proc });
    const wall = (performance.now() - t) / 1000;
    const after = await metric();
    imageSets.delete(round);
    if (after.failed > before.failed) thumbProblems.push(`service round ${round}: ${after.failed - before.failed} failed`);
    // Every image listed with its thumbnails, each a WebP of the size asked for.
    for (const id of ids) {
      const f = (await (await fetch(`${url}/api/media/files/${id}`, { headers: auth })).json()) as { thumbnails: number[] };
      if (f.thumbnails.join(',') !== SIZES.join(',')) thumbProblems.push(`service ${id}: thumbnails [${f.thumbnails}]`);
      for (const size of SIZES) {
        const res = await fetch(`${url}/api/media/files/${id}/thumbnails/${size}`, { headers: auth });
        const m = res.status === 200 ? await sharp(Buffer.from(await res.arrayBuffer())).metadata() : undefined;
        if (m?.format !== 'webp' || Math.max(m.width ?? 0, m.height ?? 0) !== size) thumbProblems.push(`service ${id} ${size}: ${res.status} ${m?.format} ${m?.width}x${m?.height}`);
      }
    }
    const count = after.count - before.count;
    return { value: count / (after.sum - before.sum), extra: { images: count, workerSeconds: Number((after.sum - before.sum).toFixed(3)), wallSecondsIncludingUploads: Number(wall.toFixed(2)) } };
  };
  const bareThumbs = async (round: number): Promise<SideResult> => {
    const imgs = await imagesFor(round);
    const made: Awaited<ReturnType<typeof bareThumbnails>>[] = [];
    const t = performance.now();
    for (const img of imgs) made.push(await bareThumbnails(img));
    const seconds = (performance.now() - t) / 1000;
    for (const m of made.flat()) if (m.format !== 'webp' || Math.max(m.width, m.height) !== m.size) thumbProblems.push(`bare round ${round} ${m.size}: ${m.format} ${m.width}x${m.height}`);
    return { value: imgs.length / seconds, extra: { images: imgs.length, measuredSeconds: Number(seconds.toFixed(3)) } };
  };
  await bench.rounds(ROUNDS, THUMBS, [['bare', bareThumbs], ['service', serviceThumbs]]);
  bench.ratio('thumbnails', 'service', 'bare', THUMBS, "images/s of the service's worker (its duration histogram) / bare sharp, same images and operations (goal ≥ 0.8)");
  bench.check('every image got its thumbnails', thumbProblems.length === 0,
    thumbProblems.length ? thumbProblems.slice(0, 3).join('; ') : `${IMAGES * (2 * ROUNDS + 1)} images, each ${SIZES.join(' and ')} px WebP on both sides, none failed; the service's listed and served`);

  // One audit event per accepted upload (the service's work the bare side skips), none lost.
  const entries = (await cmd.xrange(AUDIT_STREAM, '-', '+')) as [string, string[]][];
  const uploadEvents = entries.filter(([, f]) => /"action":"media\.upload"/.test(f[1] ?? '') && /"outcome":"success"/.test(f[1] ?? '')).length;
  bench.check('an audit event for every accepted upload', uploadEvents === accepted, `${uploadEvents} media.upload events for ${accepted} accepted uploads`);
  bench.notes.push(`service thumbnails/s from its worker's duration histogram (per blob: header check, decode, ${SIZES.join(' + ')} WebP, thumbnail writes with fsync, state row, audit event); bare sharp decodes from memory with the worker's decoder options and writes nothing; uploads are checked on disk by hash and size after the clock`);
} finally {
  bench.finish();
  cmd.disconnect();
  await rt?.proc.stop();
  await Promise.all([pgInst.stop(), redis.stop(), idp.stop(), clamd.stop()]);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(bareDir, { recursive: true, force: true });
}
