// Settings of the media service (parsed only when RUNTIME_SERVICES names media).
import { z } from 'zod';
import { postgresSettings, redisSettings } from '../base/connections.js';
import { csv, int } from '../config.js';

const DEFAULT_TYPES = [
  'image/jpeg', 'image/png', 'image/gif', 'image/webp', 'image/avif', 'image/heic', 'image/svg+xml',
  'video/mp4', 'video/quicktime', 'video/webm', 'audio/mpeg', 'audio/mp4', 'audio/ogg', 'audio/wav', 'audio/flac',
  'application/pdf', 'text/plain', 'text/html',
].join(',');

export const MediaSettingsSchema = z.object({
  ...postgresSettings,
  /** Only for audit events (the audit publisher's stream). */
  ...redisSettings,
  AUDIT_STREAM: z.string().min(1).default('familyhub:audit'),
  MEDIA_DB_POOL_MAX: int(10, 2).pipe(z.number().max(100)),
  MEDIA_STORE: z.enum(['filesystem', 's3']).default('filesystem'),
  /** S3-compatible object storage (MEDIA_STORE=s3); path-style requests, Signature V4. */
  MEDIA_S3_ENDPOINT: z.string().url().optional(),
  MEDIA_S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'is not a valid bucket name').optional(),
  MEDIA_S3_REGION: z.string().min(1).default('us-east-1'),
  MEDIA_S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  MEDIA_S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  MEDIA_S3_TIMEOUT_MS: int(60_000, 100),
  /** Root of the filesystem store (blobs/, staging/, tus/); a volume shared by the replicas. */
  MEDIA_DATA_DIR: z.string().min(1).default('/var/lib/familyhub/media'),
  MEDIA_FSYNC: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  MEDIA_CLAMD_HOST: z.string().min(1).default('127.0.0.1'),
  MEDIA_CLAMD_PORT: int(3310, 1).pipe(z.number().max(65535)),
  MEDIA_CLAMD_CONNECT_TIMEOUT_MS: int(2000, 50),
  /** No progress from clamd for this long refuses the upload (503). */
  MEDIA_CLAMD_TIMEOUT_MS: int(30_000, 100),
  MEDIA_MAX_UPLOAD_BYTES: int(100 * 1024 * 1024, 1),
  MEDIA_QUOTA_BYTES: int(10 * 1024 * 1024 * 1024, 1),
  /** Detected from the bytes; anything else is refused with 415. */
  MEDIA_ALLOWED_TYPES: csv.default(DEFAULT_TYPES).pipe(z.array(z.string().regex(/^[a-z]+\/[a-z0-9.+-]+$/)).min(1)),
  MEDIA_THUMB_SIZES: csv.default('256,1024').pipe(z.array(z.coerce.number().int().min(16).max(4096)).min(1)),
  /** Decompression-bomb guard: images with more pixels are stored but never decoded. */
  MEDIA_MAX_INPUT_PIXELS: int(50_000_000, 1),
  MEDIA_THUMB_CONCURRENCY: int(1, 1).pipe(z.number().max(16)),
  MEDIA_AVATAR_SIZE: int(256, 32).pipe(z.number().max(1024)),
  MEDIA_AVATAR_MAX_BYTES: int(10 * 1024 * 1024, 1),
  MEDIA_LIST_LIMIT_MAX: int(200, 1),
});

/** The host wants a plain zod object, so the S3 settings that depend on MEDIA_STORE are checked here. */
export function checkStoreSettings(s: z.infer<typeof MediaSettingsSchema>): void {
  if (s.MEDIA_STORE !== 's3') return;
  for (const k of ['MEDIA_S3_ENDPOINT', 'MEDIA_S3_BUCKET', 'MEDIA_S3_ACCESS_KEY_ID', 'MEDIA_S3_SECRET_ACCESS_KEY'] as const) {
    if (!s[k]) throw new Error(`invalid configuration: ${k} is required when MEDIA_STORE is s3`);
  }
}

export type MediaSettings = z.infer<typeof MediaSettingsSchema>;
