// The media service: uploads scanned by clamd before they become visible,
// content-addressed and de-duplicated storage, authorised downloads,
// thumbnails and avatars.
import multipart from '@fastify/multipart';
import path from 'node:path';
import { Counter, Histogram } from 'prom-client';
import { createAuditPublisher } from '../audit-publisher/publisher.js';
import { createPgPool, createRedis } from '../base/connections.js';
import { useAuth } from '../base/jwt/fastify-auth.js';
import { defineService } from '../base/service.js';
import { FilesystemBlobStore } from './blob-store.js';
import { pingClamd, type ClamdOptions } from './clamd.js';
import { S3BlobStore } from './s3-store.js';
import { checkStoreSettings, MediaSettingsSchema } from './config.js';
import { registerMediaRoutes } from './routes.js';
import { MediaStore } from './store.js';
import { ThumbnailWorker } from './thumbnail-worker.js';
import { RedisLocker } from './tus-locker.js';
import { registerTus } from './tus.js';
import { Uploads } from './uploads.js';

export const mediaService = defineService({
  name: 'media',
  prefix: '/api/media',
  settings: MediaSettingsSchema,
  create({ settings, logger: log, registry, verifier }) {
    checkStoreSettings(settings);
    const pool = createPgPool({ url: settings.DATABASE_URL, name: 'media', max: settings.MEDIA_DB_POOL_MAX, log });
    const redis = createRedis(settings, 'media-commands', log);
    const store = new MediaStore(pool);
    const blobs = settings.MEDIA_STORE === 's3'
      ? new S3BlobStore({
        endpoint: settings.MEDIA_S3_ENDPOINT!, bucket: settings.MEDIA_S3_BUCKET!, region: settings.MEDIA_S3_REGION,
        accessKeyId: settings.MEDIA_S3_ACCESS_KEY_ID!, secretAccessKey: settings.MEDIA_S3_SECRET_ACCESS_KEY!,
        stagingDir: settings.MEDIA_DATA_DIR, timeoutMs: settings.MEDIA_S3_TIMEOUT_MS,
      })
      : new FilesystemBlobStore(settings.MEDIA_DATA_DIR, { fsync: settings.MEDIA_FSYNC });
    const audit = createAuditPublisher(redis, { stream: settings.AUDIT_STREAM, source: 'media' });
    const clamd: ClamdOptions = {
      host: settings.MEDIA_CLAMD_HOST,
      port: settings.MEDIA_CLAMD_PORT,
      connectTimeoutMs: settings.MEDIA_CLAMD_CONNECT_TIMEOUT_MS,
      idleTimeoutMs: settings.MEDIA_CLAMD_TIMEOUT_MS,
    };
    const images = { maxInputPixels: settings.MEDIA_MAX_INPUT_PIXELS };
    const thumbSeconds = new Histogram({ name: 'media_thumbnail_duration_seconds', help: 'Thumbnail generation per blob, all sizes', labelNames: ['result'] as const, buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [registry] });
    const thumbs = new ThumbnailWorker(blobs, store, audit, { sizes: settings.MEDIA_THUMB_SIZES, limits: images, concurrency: settings.MEDIA_THUMB_CONCURRENCY }, log,
      (ok, s) => thumbSeconds.observe({ result: ok ? 'ok' : 'failed' }, s));
    const uploads = new Uploads(blobs, store, clamd, thumbs, {
      maxBytes: settings.MEDIA_MAX_UPLOAD_BYTES,
      quotaBytes: settings.MEDIA_QUOTA_BYTES,
      allowedTypes: new Set(settings.MEDIA_ALLOWED_TYPES),
      avatarMaxBytes: settings.MEDIA_AVATAR_MAX_BYTES,
      avatarSize: settings.MEDIA_AVATAR_SIZE,
      images,
      thumbSizes: settings.MEDIA_THUMB_SIZES,
    }, log);
    const uploadsTotal = new Counter({ name: 'media_uploads_total', help: 'Upload attempts by result', labelNames: ['result'] as const, registers: [registry] });

    return {
      readiness: {
        postgres: () => store.ping(),
        redis: async () => {
          if ((await redis.ping()) !== 'PONG') throw new Error('Redis did not answer PONG');
        },
        // Uploads fail closed without it, so the replica is not ready either.
        clamd: () => pingClamd(clamd),
        storage: () => blobs.ping(),
      },
      async plugin(app) {
        await app.register(multipart, { limits: { fileSize: settings.MEDIA_MAX_UPLOAD_BYTES + 1, files: 1 } });
        app.addHook('onResponse', async (req, reply) => {
          if (req.method === 'POST' && req.routeOptions.url?.endsWith('/files')) uploadsTotal.inc({ result: String(reply.statusCode) });
        });
        const guards = useAuth(app, verifier);
        registerMediaRoutes(app, {
          uploads, store, blobs, audit, guards,
          thumbSizes: settings.MEDIA_THUMB_SIZES, listLimitMax: settings.MEDIA_LIST_LIMIT_MAX, maxUploadBytes: settings.MEDIA_MAX_UPLOAD_BYTES,
        });
        await registerTus(app, {
          dir: path.join(settings.MEDIA_DATA_DIR, 'tus'),
          locker: new RedisLocker(redis, { prefix: 'media:', ttlMs: 5000, acquireTimeoutMs: 15_000 }),
          uploads, store, guards, log,
          maxBytes: settings.MEDIA_MAX_UPLOAD_BYTES, quotaBytes: settings.MEDIA_QUOTA_BYTES,
          async onSaved(owner, requestId, saved) {
            uploadsTotal.inc({ result: '201' });
            await audit.publish({
              actor: owner, action: 'media.upload', target: `media/file/${saved.file.id}`, outcome: 'success', requestId, details: {
                hash: saved.file.hash, size: saved.file.size, type: saved.file.contentType, visibility: saved.file.visibility, deduplicated: !saved.blobCreated, resumable: true,
              },
            });
          },
          async onRefused(owner, requestId, err, filename) {
            uploadsTotal.inc({ result: String(err.status) });
            await audit.publish({
              actor: owner, action: err.code === 'infected' ? 'media.rejected' : 'media.upload', target: `media/upload/${filename}`, outcome: 'failure', requestId,
              details: { reason: err.code, resumable: true, ...err.details },
            });
          },
        });
      },
      async start() {
        await redis.connect();
        await blobs.init();
        await store.migrate();
        await thumbs.resumePending();
        log.info({ dataDir: path.resolve(settings.MEDIA_DATA_DIR), store: blobs.kind, bucket: settings.MEDIA_S3_BUCKET }, 'media store ready');
      },
      async drain() {
        await thumbs.stop();
      },
      async close() {
        await redis.quit().catch(() => {});
        await pool.end();
      },
    };
  },
});
