// Media service against real clamd (Debian clamav-daemon with the EICAR
// signatures), PostgreSQL, Redis and the development IdP; chat runs in the
// same process so room-shared files are checked against real chat rooms.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Redis } from 'ioredis';
import pg from 'pg';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { startClamd, type LocalClamd } from '../../hack/local/clamd.js';
import { waitFor, workDir } from '../../hack/local/process.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';
import { createAppDatabase, spawnRuntime, superuserUrl, type RuntimeProcess } from './runtime-harness.js';

const DOMAIN = 'family.test';
const AUDIENCE = 'media';
const STREAM = 'e2e:media:audit';
const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
const MB = 1024 * 1024;
const email = (u: string) => `${u}@${DOMAIN}`;
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let pgInst: LocalPostgres;
let redis: LocalRedis;
let idp: DevIdp;
let clamd: LocalClamd;
let rt: RuntimeProcess;
let dataDir: string;
let db: pg.Client;
let cmd: Redis;
const tokens: Record<string, string> = {};

type Json = Record<string, any>;

async function upload(user: string, bytes: Buffer | string, filename: string, query = '', declaredType = 'application/octet-stream') {
  const fd = new FormData();
  fd.append('file', new Blob([typeof bytes === "string" ? bytes : new Uint8Array(bytes)], { type: declaredType }), filename);
  const res = await fetch(`${rt.url}/api/media/files${query}`, { method: 'POST', headers: { authorization: `Bearer ${tokens[user]}` }, body: fd });
  return { status: res.status, body: (await res.json()) as Json };
}

async function get(user: string, p: string, headers: Record<string, string> = {}) {
  return fetch(`${rt.url}/api/media${p}`, { headers: { authorization: `Bearer ${tokens[user]}`, ...headers } });
}

async function del(user: string, p: string) {
  return (await fetch(`${rt.url}/api/media${p}`, { method: 'DELETE', headers: { authorization: `Bearer ${tokens[user]}` } })).status;
}

function blobFiles(): string[] {
  const root = path.join(dataDir, 'blobs');
  return existsSync(root) ? readdirSync(root).flatMap((d) => readdirSync(path.join(root, d))) : [];
}
const stagingFiles = () => readdirSync(path.join(dataDir, 'staging'));

async function auditEvents(): Promise<Json[]> {
  return (await cmd.xrange(STREAM, '-', '+')).map(([, f]) => JSON.parse(f[1]!) as Json);
}

async function waitThumb(user: string, id: string, state: 'done' | 'failed') {
  await waitFor(`thumbnail ${state}`, async () => ((await (await get(user, `/files/${id}`)).json()) as Json).thumbState === state, { timeoutMs: 60_000, intervalMs: 100, proc: rt.proc });
}

/** A valid PNG claiming w×h 8-bit grey pixels, all zero: a few hundred KB that decode to w·h bytes. */
async function bombPng(w: number, h: number): Promise<Buffer> {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const deflate = zlib.createDeflate({ level: 9 });
  const out: Buffer[] = [];
  deflate.on('data', (d: Buffer) => out.push(d));
  const done = new Promise((r) => deflate.on('end', r));
  const rows = Buffer.alloc((w + 1) * 100);
  for (let y = 0; y < h; y += 100) {
    if (!deflate.write(rows.subarray(0, (w + 1) * Math.min(100, h - y)))) await new Promise((r) => deflate.once('drain', r));
  }
  deflate.end();
  await done;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', Buffer.concat(out)), chunk('IEND', Buffer.alloc(0))]);
}

/** 300×200 JPEG with GPS coordinates and EXIF orientation 6 (displayed rotated 90°: 200×300). */
async function gpsJpeg(): Promise<Buffer> {
  return sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .jpeg()
    .withExif({
      IFD0: { Make: 'FamilyCam' },
      IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '52/1 31/1 0/1', GPSLongitudeRef: 'E', GPSLongitude: '13/1 24/1 0/1' },
    })
    // withExif ignores an IFD0 Orientation; this sets the tag in the same EXIF block.
    .withMetadata({ orientation: 6 })
    .toBuffer();
}

beforeAll(async () => {
  [pgInst, redis, idp, clamd] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN }), startClamd()]);
  const databaseUrl = await createAppDatabase(pgInst, 'media_app', 'media');
  dataDir = workDir('media-data');
  rt = await spawnRuntime('media-1', {
    RUNTIME_SERVICES: 'chat,media',
    DATABASE_URL: databaseUrl,
    REDIS_URL: redis.url,
    OIDC_ISSUER_URL: idp.issuer,
    OIDC_AUDIENCE: AUDIENCE,
    AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
    AUDIT_STREAM: STREAM,
    MEDIA_DATA_DIR: dataDir,
    MEDIA_CLAMD_PORT: String(clamd.port),
    MEDIA_CLAMD_CONNECT_TIMEOUT_MS: '1000',
    MEDIA_CLAMD_TIMEOUT_MS: '3000',
    MEDIA_MAX_UPLOAD_BYTES: String(8 * MB),
    MEDIA_QUOTA_BYTES: String(12 * MB),
    MEDIA_MAX_INPUT_PIXELS: String(20_000_000),
  });
  for (const u of ['alice', 'bob', 'charlie', 'dave']) {
    tokens[u] = await idp.issueAccessToken({ email: email(u), groups: u === 'alice' ? ['admins'] : [], audience: AUDIENCE, expiresInSec: 900 });
  }
  db = new pg.Client({ connectionString: superuserUrl(pgInst, 'media') });
  await db.connect();
  cmd = new Redis(redis.url);
});

afterAll(async () => {
  cmd?.disconnect();
  await db?.end();
  await rt?.proc.stop();
  await Promise.all([pgInst?.stop(), redis?.stop(), idp?.stop(), clamd?.stop()]);
});

describe('media uploads', () => {
  it('reports clamd, PostgreSQL, Redis and storage on /ready', async () => {
    const ready = (await (await fetch(`${rt.url}/ready`)).json()) as { checks: Record<string, { ok: boolean }> };
    expect(Object.keys(ready.checks).filter((k) => k.startsWith('media.')).sort()).toEqual(['media.clamd', 'media.postgres', 'media.redis', 'media.storage']);
    expect(Object.values(ready.checks).every((c) => c.ok)).toBe(true);
  });

  it('rejects the EICAR file with 422 and the signature name, and stores nothing', async () => {
    const res = await upload('alice', EICAR, 'holiday.txt');
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ error: 'infected', signature: expect.stringMatching(/Eicar/) });
    expect(blobFiles()).not.toContain(sha256(EICAR));
    expect(stagingFiles()).toEqual([]);
    expect((await db.query('SELECT count(*) FROM media.files')).rows[0].count).toBe('0');
    expect((await db.query('SELECT count(*) FROM media.blobs')).rows[0].count).toBe('0');
    const ev = (await auditEvents()).filter((e) => e.action === 'media.rejected');
    expect(ev).toEqual([expect.objectContaining({ actor: email('alice'), outcome: 'failure', details: expect.objectContaining({ signature: res.body.signature }) })]);
  });

  it('refuses uploads with 503 while clamd is down, stores nothing, and recovers', async () => {
    await clamd.stop();
    const res = await upload('alice', 'a harmless note\n', 'note.txt');
    expect(res.status).toBe(503);
    expect(res.body.error).toBe('scanner_unavailable');
    const ready = (await (await fetch(`${rt.url}/ready`)).json()) as { checks: Record<string, { ok: boolean }> };
    expect(ready.checks['media.clamd']!.ok).toBe(false);
    expect(blobFiles()).toEqual([]);
    expect(stagingFiles()).toEqual([]);
    expect((await db.query('SELECT count(*) FROM media.files')).rows[0].count).toBe('0');
    await clamd.restart();
    expect((await upload('alice', 'a harmless note\n', 'note.txt')).status).toBe(201);
    expect((await auditEvents()).filter((e) => e.action === 'media.upload' && e.outcome === 'failure' && e.details.reason === 'scanner_unavailable')).toHaveLength(1);
  });

  it('refuses uploads with 503 while clamd accepts connections but never answers (stopped with SIGSTOP), and stores nothing', async () => {
    const files = Number((await db.query('SELECT count(*) FROM media.files')).rows[0].count);
    const blobs = blobFiles().length;
    const pid = clamd.proc.child.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      // The kernel still completes the TCP handshake: only the idle timeout can end the scan.
      const started = Date.now();
      const res = await upload('alice', 'a note for a hung scanner\n', 'hung.txt');
      expect(res.status).toBe(503);
      expect(res.body.error).toBe('scanner_unavailable');
      expect(Date.now() - started).toBeGreaterThanOrEqual(2500);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(blobFiles()).toHaveLength(blobs);
    expect(blobFiles()).not.toContain(sha256('a note for a hung scanner\n'));
    expect(stagingFiles()).toEqual([]);
    expect(Number((await db.query('SELECT count(*) FROM media.files')).rows[0].count)).toBe(files);
    await waitFor('clamd answering again', async () => (await upload('alice', 'after the hang\n', 'after.txt')).status === 201, { timeoutMs: 30_000, intervalMs: 500 });
  });

  it('stores the same bytes once for two users (two references), and keeps the blob until the last reference goes', async () => {
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3366cc' } }).png().toBuffer();
    const a = await upload('alice', png, 'blue.png');
    const b = await upload('bob', png, 'same-blue.png', '', 'image/png');
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(a.body.hash).toBe(sha256(png));
    expect(b.body.hash).toBe(a.body.hash);
    expect(a.body.id).not.toBe(b.body.id);
    expect(blobFiles().filter((f) => f === sha256(png))).toHaveLength(1);
    expect((await db.query('SELECT ref_count FROM media.blobs WHERE hash = $1', [a.body.hash])).rows[0].ref_count).toBe(2);
    const ev = (await auditEvents()).filter((e) => e.action === 'media.upload' && e.details.hash === a.body.hash);
    expect(ev.map((e) => e.details.deduplicated)).toEqual([false, true]);

    expect(await del('bob', `/files/${b.body.id}`)).toBe(204);
    expect((await db.query('SELECT ref_count FROM media.blobs WHERE hash = $1', [a.body.hash])).rows[0].ref_count).toBe(1);
    const still = await get('alice', `/files/${a.body.id}/content`);
    expect(Buffer.from(await still.arrayBuffer()).equals(png)).toBe(true);
    await waitThumb('alice', a.body.id, 'done');
    expect(await del('bob', `/files/${a.body.id}`)).toBe(404); // private: bob cannot even see it
    expect(await del('alice', `/files/${a.body.id}`)).toBe(204);
    expect(blobFiles().filter((f) => f.includes(a.body.hash))).toEqual([]);
    expect((await db.query('SELECT count(*) FROM media.blobs WHERE hash = $1', [a.body.hash])).rows[0].count).toBe('0');
  });

  it('serves downloads with the detected type, nosniff, ETag = hash, ranges and conditional requests', async () => {
    const png = await sharp({ create: { width: 32, height: 32, channels: 4, background: '#00ff0080' } }).png().toBuffer();
    const up = await upload('alice', png, 'green.png');
    const full = await get('alice', `/files/${up.body.id}/content`);
    expect(full.status).toBe(200);
    expect(full.headers.get('content-type')).toBe('image/png');
    expect(full.headers.get('x-content-type-options')).toBe('nosniff');
    expect(full.headers.get('etag')).toBe(`"${sha256(png)}"`);
    expect(full.headers.get('content-disposition')).toMatch(/^inline;/);
    expect(Buffer.from(await full.arrayBuffer()).equals(png)).toBe(true);
    const part = await get('alice', `/files/${up.body.id}/content`, { range: 'bytes=10-19' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-19/${png.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(png.subarray(10, 20))).toBe(true);
    const tail = await get('alice', `/files/${up.body.id}/content`, { range: 'bytes=-5' });
    expect(Buffer.from(await tail.arrayBuffer()).equals(png.subarray(png.length - 5))).toBe(true);
    expect((await get('alice', `/files/${up.body.id}/content`, { range: `bytes=${png.length}-` })).status).toBe(416);
    expect((await get('alice', `/files/${up.body.id}/content`, { 'if-none-match': `"${sha256(png)}"` })).status).toBe(304);
  });

  it('labels an HTML file named .jpg as text/html and serves it only as an attachment', async () => {
    const html = '<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>';
    const up = await upload('alice', html, 'cute-cat.jpg', '', 'image/jpeg');
    expect(up.status).toBe(201);
    expect(up.body.contentType).toBe('text/html');
    const res = await get('alice', `/files/${up.body.id}/content`);
    expect(res.headers.get('content-type')).toBe('text/html');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="cute-cat.jpg"/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toContain('sandbox');
    expect(await res.text()).toBe(html);
  });

  it('never thumbnails or inlines SVG', async () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script><rect width="10" height="10"/></svg>';
    const up = await upload('alice', svg, 'logo.png');
    expect(up.body).toMatchObject({ contentType: 'image/svg+xml', thumbState: 'none' });
    const res = await get('alice', `/files/${up.body.id}/content`);
    expect(res.headers.get('content-disposition')).toMatch(/^attachment;/);
    expect((await get('alice', `/files/${up.body.id}/thumbnails/256`)).status).toBe(404);
  });

  it('refuses types outside the allowlist (from the bytes), files over the limit and over the quota', async () => {
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), randomBytes(600)]);
    const r = await upload('dave', elf, 'photo.jpg', '', 'image/jpeg');
    expect(r).toMatchObject({ status: 415, body: { error: 'type_not_allowed', type: 'application/x-executable' } });
    expect((await upload('dave', 'x'.repeat(9 * MB), 'big.txt')).body.error).toBe('too_large');
    expect((await upload('dave', 'a'.repeat(7 * MB), 'a.txt')).status).toBe(201);
    const over = await upload('dave', 'b'.repeat(7 * MB), 'b.txt');
    expect(over).toMatchObject({ status: 413, body: { error: 'quota_exceeded' } });
    expect(blobFiles()).not.toContain(sha256('b'.repeat(7 * MB)));
    expect(stagingFiles()).toEqual([]);
  });
});

describe('media sharing', () => {
  it('keeps private files from other family members, shares family-wide and per chat room', async () => {
    const priv = await upload('alice', 'diary\n', 'diary.txt');
    const fam = await upload('alice', 'shopping list\n', 'list.txt', '?visibility=family');
    const room = await fetch(`${rt.url}/api/chat/channels`, {
      method: 'POST', headers: { authorization: `Bearer ${tokens.alice}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'parents', members: [email('bob')] }),
    });
    const roomId = ((await room.json()) as Json).id as string;
    const shared = await upload('alice', 'for the room\n', 'room.txt', `?visibility=room&room=${encodeURIComponent(roomId)}`);
    expect([priv.status, fam.status, shared.status]).toEqual([201, 201, 201]);
    expect((await get('charlie', `/files/${priv.body.id}/content`)).status).toBe(404);
    expect((await get('charlie', `/files/${priv.body.id}`)).status).toBe(404);
    expect((await get('charlie', `/files/${fam.body.id}/content`)).status).toBe(200);
    expect((await get('bob', `/files/${shared.body.id}/content`)).status).toBe(200);
    expect((await get('charlie', `/files/${shared.body.id}/content`)).status).toBe(404);
    expect((await upload('charlie', 'sneaky\n', 's.txt', `?visibility=room&room=${encodeURIComponent(roomId)}`)).status).toBe(403);
    expect(await del('charlie', `/files/${fam.body.id}`)).toBe(403);
    expect((await fetch(`${rt.url}/api/media/files/${fam.body.id}/content`)).status).toBe(401);
  });

  it('lists a user\'s files with cursor pagination', async () => {
    for (let i = 0; i < 5; i++) expect((await upload('bob', `note ${i}\n`, `n${i}.txt`)).status).toBe(201);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = (await (await get('bob', `/files?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).json()) as Json;
      expect(page.files.length).toBeLessThanOrEqual(2);
      seen.push(...page.files.map((f: Json) => f.filename));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(['n4.txt', 'n3.txt', 'n2.txt', 'n1.txt', 'n0.txt']);
    expect((await get('bob', '/files?cursor=garbage')).status).toBe(400);
  });
});

describe('images', () => {
  it('thumbnails a GPS-tagged JPEG with EXIF orientation applied and all metadata stripped', async () => {
    const jpeg = await gpsJpeg();
    const original = await sharp(jpeg).metadata();
    expect(original.orientation).toBe(6);
    expect(original.exif!.includes(Buffer.from('FamilyCam'))).toBe(true);
    const up = await upload('alice', jpeg, 'beach.jpg', '?visibility=family');
    expect(up.body.contentType).toBe('image/jpeg');
    await waitThumb('alice', up.body.id, 'done');
    const res = await get('charlie', `/files/${up.body.id}/thumbnails/256`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/webp');
    const thumb = Buffer.from(await res.arrayBuffer());
    const meta = await sharp(thumb).metadata();
    expect(meta.format).toBe('webp');
    // Orientation 6 turns the 300×200 original into a portrait image.
    expect([meta.width, meta.height]).toEqual([171, 256]);
    expect(meta.exif).toBeUndefined();
    expect(meta.xmp).toBeUndefined();
    expect(meta.orientation).toBeUndefined();
    expect(thumb.includes(Buffer.from('FamilyCam'))).toBe(false);
    // The original is kept byte for byte (its ETag is its hash).
    expect(Buffer.from(await (await get('alice', `/files/${up.body.id}/content`)).arrayBuffer()).equals(jpeg)).toBe(true);
  });

  it('thumbnails only the first frame of an animated GIF', async () => {
    const frame = (c: string) => sharp({ create: { width: 40, height: 30, channels: 3, background: c } }).png().toBuffer();
    const gif = await sharp([await frame('#ff0000'), await frame('#00ff00'), await frame('#0000ff')], { join: { animated: true } }).gif().toBuffer();
    expect((await sharp(gif).metadata()).pages).toBe(3);
    const up = await upload('alice', gif, 'party.gif');
    expect(up.body.contentType).toBe('image/gif');
    await waitThumb('alice', up.body.id, 'done');
    const thumb = Buffer.from(await (await get('alice', `/files/${up.body.id}/thumbnails/256`)).arrayBuffer());
    const meta = await sharp(thumb).metadata();
    expect(meta.pages ?? 1).toBe(1);
    expect([meta.width, meta.height]).toEqual([40, 30]);
  });

  it('stores a decompression-bomb PNG but never decodes it', async () => {
    const bomb = await bombPng(12_000, 12_000); // 144 M pixels, limit 20 M
    expect(bomb.length).toBeLessThan(1 * MB);
    const up = await upload('charlie', bomb, 'wallpaper.png');
    expect(up.status).toBe(201);
    await waitThumb('charlie', up.body.id, 'failed');
    const row = (await db.query('SELECT thumb_error FROM media.blobs WHERE hash = $1', [up.body.hash])).rows[0];
    expect(row.thumb_error).toMatch(/exceeds the limit/);
    expect((await get('charlie', `/files/${up.body.id}/thumbnails/256`)).status).toBe(404);
    const metrics = await (await fetch(`${rt.url}/metrics`)).text();
    const rss = Number(/^process_resident_memory_bytes (\d+)/m.exec(metrics)![1]);
    expect(rss).toBeLessThan(400 * MB);
  });

  it('sets an avatar: square WebP without metadata, replacing the previous one', async () => {
    const put = async (bytes: Buffer) => {
      const fd = new FormData();
      fd.append("file", new Blob([new Uint8Array(bytes)]), "me.jpg");
      return fetch(`${rt.url}/api/media/avatar`, { method: 'PUT', headers: { authorization: `Bearer ${tokens.bob}` }, body: fd });
    };
    const first = (await (await put(await gpsJpeg())).json()) as Json;
    const res = await get('charlie', `/avatars/${email('bob')}`);
    expect(res.status).toBe(200);
    const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
    expect([meta.format, meta.width, meta.height, meta.exif]).toEqual(['webp', 256, 256, undefined]);
    const other = await sharp({ create: { width: 500, height: 500, channels: 3, background: '#ffee00' } }).png().toBuffer();
    const second = (await (await put(other)).json()) as Json;
    expect(second.hash).not.toBe(first.hash);
    expect(blobFiles()).not.toContain(first.hash);
    // Only raster images become avatars; the type check refuses the EICAR text before anything else.
    expect((await put(Buffer.from(EICAR))).status).toBe(415);
  });
});

describe('audit', () => {
  it('records every action', async () => {
    const actions = new Set((await auditEvents()).map((e) => `${e.action}:${e.outcome}`));
    for (const a of ['media.upload:success', 'media.upload:failure', 'media.rejected:failure', 'media.download:success', 'media.delete:success', 'media.avatar.set:success', 'media.thumbnail.create:success', 'media.thumbnail.create:failure']) {
      expect(actions).toContain(a);
    }
  });
});
