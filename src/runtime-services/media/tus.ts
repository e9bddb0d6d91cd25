// Resumable uploads (tus 1.0 via @tus/server). Partial uploads live in
// <data>/tus as a bytes file plus a JSON sidecar, so an upload interrupted by
// a dropped connection or a restarted replica resumes from the bytes on disk.
// Only a complete upload enters the normal pipeline (scan + hash + dedupe),
// streamed once from the partial file; whatever the verdict, the partial
// file is removed afterwards.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { IncomingMessage } from 'node:http';
import type stream from 'node:stream';
import { DataStore, ERRORS, Server, Upload, type Locker } from '@tus/server';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { principalOf, type AuthGuards } from '../base/jwt/fastify-auth.js';
import { MediaError } from './ingest.js';
import type { MediaStore, Visibility } from './store.js';
import { safeFilename } from './routes.js';
import type { Uploads } from './uploads.js';

const ID = /^[0-9a-f]{32}$/;
/**
 * The caller of each request, set by our preHandler after the token check.
 * @tus/server hands hooks its own request object; the Node request it wraps
 * is the key, so nothing a client sends can name the owner.
 */
const callers = new WeakMap<IncomingMessage, { email: string; requestId: string }>();

class PartialUploadStore extends DataStore {
  constructor(private readonly dir: string) {
    super();
    this.extensions = ['creation', 'creation-with-upload', 'termination'];
  }

  private file(id: string, ext = ''): string {
    if (!ID.test(id)) throw ERRORS.FILE_NOT_FOUND;
    return path.join(this.dir, `${id}${ext}`);
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  override async create(upload: Upload): Promise<Upload> {
    await writeFile(this.file(upload.id), Buffer.alloc(0), { flag: 'wx', mode: 0o600 });
    await writeFile(this.file(upload.id, '.json'), JSON.stringify({ size: upload.size, metadata: upload.metadata, creation_date: upload.creation_date }), { mode: 0o600 });
    return upload;
  }

  override async write(readable: stream.Readable, id: string, offset: number): Promise<number> {
    const out = createWriteStream(this.file(id), { flags: 'r+', start: offset });
    try {
      await pipeline(readable, out);
    } catch (err) {
      // What reached the disk stays: the client resumes from the new offset.
      if (out.bytesWritten === 0) throw err;
    }
    return offset + out.bytesWritten;
  }

  override async getUpload(id: string): Promise<Upload> {
    let info: { size?: number; metadata?: Record<string, string | null>; creation_date?: string };
    let size: number;
    try {
      info = JSON.parse(await readFile(this.file(id, '.json'), 'utf8'));
      size = (await stat(this.file(id))).size;
    } catch {
      throw ERRORS.FILE_NOT_FOUND;
    }
    return new Upload({ id, size: info.size, offset: size, metadata: info.metadata, creation_date: info.creation_date, storage: { type: 'file', path: this.file(id) } });
  }

  override async remove(id: string): Promise<void> {
    await rm(this.file(id), { force: true });
    await rm(this.file(id, '.json'), { force: true });
  }

  read(id: string): stream.Readable {
    return createReadStream(this.file(id), { highWaterMark: 256 * 1024 });
  }
}

const tusError = (status: number, body: Record<string, unknown>) => ({ status_code: status, body: JSON.stringify(body) });

export async function registerTus(
  app: FastifyInstance,
  d: { dir: string; locker: Locker; uploads: Uploads; store: MediaStore; guards: AuthGuards; maxBytes: number; quotaBytes: number; log: Logger;
    onSaved(owner: string, requestId: string, r: Awaited<ReturnType<Uploads['save']>>): Promise<void>;
    onRefused(owner: string, requestId: string, err: MediaError, filename: string): Promise<void> },
): Promise<void> {
  const store = new PartialUploadStore(d.dir);
  await store.init();
  const caller = (req: unknown) => {
    const node = (req as { runtime?: { node?: { req?: IncomingMessage } } }).runtime?.node?.req;
    const c = node && callers.get(node);
    if (!c) throw tusError(401, { error: 'unauthenticated', message: 'no caller' });
    return c;
  };
  const owner = (req: unknown) => caller(req).email;
  const requestId = (req: unknown) => caller(req).requestId;
  const tus = new Server({
    path: `${app.prefix}/tus`,
    datastore: store,
    relativeLocation: true,
    maxSize: d.maxBytes,
    locker: d.locker,
    // Ids are ours (32 hex), never derived from client metadata.
    async onUploadCreate(req, upload) {
      const me = owner(req);
      if (upload.sizeIsDeferred) throw tusError(400, { error: 'bad_request', message: 'Upload-Length is required' });
      const visibility = (upload.metadata?.visibility ?? 'private') as Visibility;
      if (!['private', 'family', 'room'].includes(visibility)) throw tusError(400, { error: 'bad_request', message: 'visibility: must be private, family or room' });
      const room = upload.metadata?.room ?? null;
      if ((visibility === 'room') !== (room !== null)) throw tusError(400, { error: 'bad_request', message: 'room is required exactly when visibility is room' });
      if (room && !(await d.store.isRoomMember(room, me))) throw tusError(403, { error: 'forbidden', message: 'not a member of that room' });
      if ((await d.store.usage(me)) + (upload.size ?? 0) > d.quotaBytes) throw tusError(413, { error: 'quota_exceeded', message: 'upload would exceed your storage quota' });
      return { metadata: { filename: safeFilename(upload.metadata?.filename ?? undefined), visibility, room, owner: me } };
    },
    async onIncomingRequest(req, id) {
      if (req.method === 'POST' || req.method === 'OPTIONS') return;
      let u;
      try {
        u = await store.getUpload(id);
      } catch {
        throw ERRORS.FILE_NOT_FOUND;
      }
      // Someone else's upload looks like no upload.
      if (u.metadata?.owner !== owner(req)) throw ERRORS.FILE_NOT_FOUND;
    },
    async onUploadFinish(req, upload) {
      const meta = upload.metadata ?? {};
      const me = owner(req);
      const filename = meta.filename ?? 'upload';
      try {
        const saved = await d.uploads.save(store.read(upload.id), { owner: me, filename, visibility: (meta.visibility ?? 'private') as Visibility, room: meta.room ?? null });
        await d.onSaved(me, requestId(req), saved);
        return { status_code: 201, headers: { 'content-type': 'application/json' }, body: JSON.stringify(saved.file) };
      } catch (err) {
        if (err instanceof MediaError) {
          await d.onRefused(me, requestId(req), err, filename);
          throw tusError(err.status, { error: err.code, message: err.message, ...err.details });
        }
        d.log.error({ err: (err as Error).message, upload: upload.id }, 'storing a finished tus upload failed');
        throw tusError(500, { error: 'internal', message: 'internal error' });
      } finally {
        // Scanned and stored, or refused: either way the partial copy has served its purpose.
        await store.remove(upload.id).catch(() => {});
      }
    },
  });

  // tus bodies are raw bytes: hand the untouched stream to @tus/server.
  app.addContentTypeParser('application/offset+octet-stream', (_req, _payload, done) => done(null));
  const handler = async (req: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
    callers.set(req.raw, { email: principalOf(req).email, requestId: req.id });
    reply.hijack();
    await tus.handle(req.raw, reply.raw);
  };
  for (const url of ['/tus', '/tus/:id']) {
    app.route({ method: ['POST', 'HEAD', 'PATCH', 'DELETE'], url, preHandler: d.guards.requireUser, handler });
  }
}
