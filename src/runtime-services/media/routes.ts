// HTTP API of the media service: multipart upload, listing, download with
// ranges, thumbnails, deletion and avatars. Every state change and every
// download emits an audit event; refusals (infected, scanner down, quota)
// are audited as failures with the reason.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuditPublisher } from '../audit-publisher/publisher.js';
import { principalOf, type AuthGuards } from '../base/jwt/fastify-auth.js';
import { badRequest, plainText } from '../base/validation.js';
import type { BlobStore } from './blob-store.js';
import { MediaError } from './ingest.js';
import { etagMatches, parseRange } from './range.js';
import { servesInline, THUMBNAIL_TYPES } from './sniff.js';
import { decodeCursor, encodeCursor, type FileRecord, type MediaStore } from './store.js';
import { thumbKey } from './thumbnail-worker.js';
import type { Uploads } from './uploads.js';

export interface MediaRouteDeps {
  uploads: Uploads;
  store: MediaStore;
  blobs: BlobStore;
  audit: AuditPublisher;
  guards: AuthGuards;
  thumbSizes: number[];
  listLimitMax: number;
  maxUploadBytes: number;
}

const visibilityQuery = z.object({
  visibility: z.enum(['private', 'family', 'room']).default('private'),
  room: plainText(200).optional(),
}).refine((q) => (q.visibility === 'room') === (q.room !== undefined), { message: 'room is required exactly when visibility is room', path: ['room'] });

/** A file name safe for a header: no path, no controls, bounded; ASCII fallback plus RFC 8187 form. */
export function contentDisposition(kind: 'inline' | 'attachment', filename: string): string {
  const base = filename.replace(/^.*[\\/]/, '').replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 200) || 'file';
  const ascii = base.replace(/[^\x20-\x7e]|["\\%;]/g, '_');
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(base)}`;
}

export function safeFilename(name: string | undefined): string {
  return (name ?? 'upload').replace(/^.*[\\/]/, '').replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 255) || 'upload';
}

export function registerMediaRoutes(app: FastifyInstance, d: MediaRouteDeps): void {
  const { requireUser } = d.guards;
  const audit = (req: FastifyRequest, action: string, target: string, outcome: 'success' | 'failure', details: Record<string, unknown>) =>
    d.audit.publish({ actor: principalOf(req).email, action, target, outcome, requestId: req.id, details });

  const canRead = async (req: FastifyRequest, f: FileRecord): Promise<boolean> => {
    const me = principalOf(req).email;
    if (f.owner === me) return true;
    if (f.visibility === 'family') return true;
    if (f.visibility === 'room' && f.room) return d.store.isRoomMember(f.room, me);
    return false;
  };
  const visibleFile = async (req: FastifyRequest, reply: FastifyReply): Promise<FileRecord | undefined> => {
    const p = z.object({ id: z.string().uuid() }).safeParse(req.params);
    if (!p.success) {
      badRequest(reply, p.error);
      return undefined;
    }
    const f = await d.store.file(p.data.id);
    // Not visible and not existing look the same: ids of private files stay private.
    if (!f || !(await canRead(req, f))) {
      reply.code(404).send({ error: 'not_found', message: 'file not found' });
      return undefined;
    }
    return f;
  };
  const refuse = async (req: FastifyRequest, reply: FastifyReply, err: MediaError, filename: string) => {
    const action = err.code === 'infected' ? 'media.rejected' : 'media.upload';
    await audit(req, action, `media/upload/${filename}`, 'failure', { reason: err.code, ...err.details });
    if (err.status === 503) reply.header('retry-after', '30');
    // The rest of the request body may still be on its way: close rather than
    // leave a keep-alive connection with unread upload bytes for the next request.
    reply.header('connection', 'close');
    return reply.code(err.status).send({ error: err.code, message: err.message, ...err.details });
  };
  const view = (f: FileRecord) => ({ ...f, thumbnails: f.thumbState === 'done' ? d.thumbSizes : [] });

  // Multipart with a single `file` part; visibility and room in the query
  // string, so they are known before the bytes stream in.
  app.post('/files', { preHandler: requireUser }, async (req, reply) => {
    const q = visibilityQuery.safeParse(req.query);
    if (!q.success) return badRequest(reply, q.error);
    const me = principalOf(req).email;
    if (q.data.room && !(await d.store.isRoomMember(q.data.room, me))) {
      return reply.code(403).send({ error: 'forbidden', message: 'not a member of that room' });
    }
    if (!req.isMultipart()) return reply.code(415).send({ error: 'unsupported_media_type', message: 'send multipart/form-data with a file part' });
    const part = await req.file({ limits: { files: 1, fileSize: d.maxUploadBytes + 1, fields: 0, parts: 1 } });
    if (!part) return reply.code(400).send({ error: 'bad_request', field: 'file', message: 'file: missing' });
    const filename = safeFilename(part.filename);
    try {
      const saved = await d.uploads.save(part.file, { owner: me, filename, visibility: q.data.visibility, room: q.data.room ?? null });
      await audit(req, 'media.upload', `media/file/${saved.file.id}`, 'success', {
        hash: saved.file.hash, size: saved.file.size, type: saved.file.contentType, visibility: saved.file.visibility, deduplicated: !saved.blobCreated,
      });
      return reply.code(201).send(view(saved.file));
    } catch (err) {
      if (err instanceof MediaError) return refuse(req, reply, err, filename);
      throw err;
    }
  });

  app.get('/files', { preHandler: requireUser }, async (req, reply) => {
    const q = z.object({ limit: z.coerce.number().int().min(1).max(d.listLimitMax).default(50), cursor: z.string().max(200).optional() }).safeParse(req.query);
    if (!q.success) return badRequest(reply, q.error);
    let cursor;
    try {
      cursor = q.data.cursor ? decodeCursor(q.data.cursor) : undefined;
    } catch {
      return reply.code(400).send({ error: 'bad_request', field: 'cursor', message: 'cursor: invalid' });
    }
    const files = await d.store.listOwned(principalOf(req).email, q.data.limit + 1, cursor);
    const page = files.slice(0, q.data.limit);
    const last = page[page.length - 1];
    return { files: page.map(view), nextCursor: files.length > q.data.limit && last ? encodeCursor(last.createdAt, last.id) : null };
  });

  app.get('/files/:id', { preHandler: requireUser }, async (req, reply) => {
    const f = await visibleFile(req, reply);
    if (f) return view(f);
  });

  const send = async (req: FastifyRequest, reply: FastifyReply, key: string, size: number, type: string, filename: string, etag: string, inline: boolean) => {
    reply.header('etag', etag);
    reply.header('accept-ranges', 'bytes');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('content-type', type);
    reply.header('content-disposition', contentDisposition(inline ? 'inline' : 'attachment', filename));
    // Even an image must not run anything if a browser is tricked into rendering it as a document.
    reply.header('content-security-policy', "default-src 'none'; sandbox");
    reply.header('cache-control', 'private, no-cache');
    if (etagMatches(req.headers['if-none-match'], etag)) return reply.code(304).send();
    const ifRange = req.headers['if-range'];
    const r = ifRange && ifRange !== etag ? { kind: 'full' as const } : parseRange(req.headers.range, size);
    if (r.kind === 'unsatisfiable') {
      reply.header('content-range', `bytes */${size}`);
      return reply.code(416).send();
    }
    if (r.kind === 'partial') {
      reply.header('content-range', `bytes ${r.range.start}-${r.range.end}/${size}`);
      reply.header('content-length', String(r.range.end - r.range.start + 1));
      reply.code(206);
      return reply.send(req.method === 'HEAD' ? undefined : await d.blobs.read(key, r.range));
    }
    reply.header('content-length', String(size));
    return reply.send(req.method === 'HEAD' ? undefined : await d.blobs.read(key));
  };

  app.get('/files/:id/content', { preHandler: requireUser }, async (req, reply) => {
    const f = await visibleFile(req, reply);
    if (!f) return;
    const range = req.headers.range;
    // A video player issues many range requests; one audit event per playback start.
    if (req.method === 'GET' && (!range || /^bytes=0-/.test(range))) {
      await audit(req, 'media.download', `media/file/${f.id}`, 'success', { hash: f.hash, owner: f.owner });
    }
    return send(req, reply, f.hash, f.size, f.contentType, f.filename, `"${f.hash}"`, servesInline(f.contentType));
  });

  app.get('/files/:id/thumbnails/:size', { preHandler: requireUser }, async (req, reply) => {
    const f = await visibleFile(req, reply);
    if (!f) return;
    const size = Number((req.params as { size: string }).size);
    if (!d.thumbSizes.includes(size)) return reply.code(404).send({ error: 'not_found', message: `no thumbnail size ${size}; sizes are ${d.thumbSizes.join(', ')}` });
    if (!THUMBNAIL_TYPES.has(f.contentType)) return reply.code(404).send({ error: 'not_found', message: `no thumbnails for ${f.contentType}` });
    if (f.thumbState === 'pending') {
      reply.header('retry-after', '1');
      return reply.code(409).send({ error: 'pending', message: 'thumbnail not generated yet' });
    }
    if (f.thumbState !== 'done') return reply.code(404).send({ error: 'not_found', message: 'no thumbnail for this image' });
    const key = thumbKey(f.hash, size);
    const bytes = await d.blobs.size(key);
    if (bytes === undefined) return reply.code(404).send({ error: 'not_found', message: 'thumbnail missing' });
    return send(req, reply, key, bytes, 'image/webp', `${f.filename}.${size}.webp`, `"${f.hash}-${size}"`, true);
  });

  app.delete('/files/:id', { preHandler: requireUser }, async (req, reply) => {
    const f = await visibleFile(req, reply);
    if (!f) return;
    if (f.owner !== principalOf(req).email) return reply.code(403).send({ error: 'forbidden', message: 'only the owner may delete a file' });
    const res = await d.uploads.remove(f);
    if (!res) return reply.code(404).send({ error: 'not_found', message: 'file not found' });
    await audit(req, 'media.delete', `media/file/${f.id}`, 'success', { hash: f.hash, blobDeleted: res.lastReference });
    return reply.code(204).send();
  });

  app.put('/avatar', { preHandler: requireUser }, async (req, reply) => {
    if (!req.isMultipart()) return reply.code(415).send({ error: 'unsupported_media_type', message: 'send multipart/form-data with a file part' });
    const part = await req.file({ limits: { files: 1, fileSize: d.maxUploadBytes + 1, fields: 0, parts: 1 } });
    if (!part) return reply.code(400).send({ error: 'bad_request', field: 'file', message: 'file: missing' });
    const me = principalOf(req).email;
    try {
      const a = await d.uploads.setAvatar(me, part.file);
      await audit(req, 'media.avatar.set', `media/avatar/${me}`, 'success', { hash: a.hash, size: a.size });
      return reply.code(200).send({ email: me, hash: a.hash, size: a.size, contentType: 'image/webp' });
    } catch (err) {
      if (err instanceof MediaError) return refuse(req, reply, err, 'avatar');
      throw err;
    }
  });

  app.get('/avatars/:email', { preHandler: requireUser }, async (req, reply) => {
    const p = z.object({ email: z.string().max(320).email().transform((s) => s.toLowerCase()) }).safeParse(req.params);
    if (!p.success) return badRequest(reply, p.error);
    const a = await d.store.avatar(p.data.email);
    if (!a) return reply.code(404).send({ error: 'not_found', message: 'no avatar' });
    return send(req, reply, a.hash, a.size, a.contentType, 'avatar.webp', `"${a.hash}"`, true);
  });

  app.get('/usage', { preHandler: requireUser }, async (req) => ({ usedBytes: await d.store.usage(principalOf(req).email) }));
}
