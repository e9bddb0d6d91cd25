// Turns an incoming byte stream into a stored file: ingest (hash + scan +
// stage in one pass), then, under the hash's lock, promote the blob if it is
// new and record the reference. Used by multipart, tus and the avatar
// endpoint alike, so every path gets the same scan, limits and dedupe.
import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { StorageError, type BlobStore } from './blob-store.js';
import type { ClamdOptions } from './clamd.js';
import { avatar, ImageError, type ImageLimits } from './images.js';
import { ingest, MediaError, type Ingested } from './ingest.js';
import { THUMBNAIL_TYPES } from './sniff.js';
import { QuotaError, type FileRecord, type MediaStore, type Visibility } from './store.js';
import { thumbKey, type ThumbnailWorker } from './thumbnail-worker.js';

export interface UploadLimits {
  maxBytes: number;
  quotaBytes: number;
  allowedTypes: ReadonlySet<string>;
  avatarMaxBytes: number;
  avatarSize: number;
  images: ImageLimits;
  thumbSizes: number[];
}

export class Uploads {
  constructor(
    private readonly blobs: BlobStore,
    private readonly store: MediaStore,
    private readonly clamd: ClamdOptions,
    private readonly thumbs: ThumbnailWorker,
    private readonly limits: UploadLimits,
    private readonly log: Logger,
  ) {}

  async save(
    source: AsyncIterable<Buffer>,
    file: { owner: string; filename: string; visibility: Visibility; room: string | null },
  ): Promise<{ file: FileRecord; blobCreated: boolean }> {
    const used = await this.store.usage(file.owner);
    const ing = await ingest(source, { store: this.blobs, clamd: this.clamd }, {
      maxBytes: this.limits.maxBytes,
      quotaRemaining: Math.max(0, this.limits.quotaBytes - used),
      allowedTypes: this.limits.allowedTypes,
    });
    const thumbnails = THUMBNAIL_TYPES.has(ing.sniffed.type);
    const saved = await this.commit(ing, (client) =>
      this.store.addFile(client, {
        hash: ing.hash, size: ing.size, contentType: ing.sniffed.type, width: ing.sniffed.width, height: ing.sniffed.height, thumbnails,
      }, { id: randomUUID(), ...file, quota: this.limits.quotaBytes }),
    );
    if (saved.blobCreated && thumbnails) this.thumbs.enqueue(ing.hash);
    return saved;
  }

  /**
   * Promotes the staged blob (unless the hash is already stored) and runs
   * `record` on the same locked connection. A failed record removes a blob
   * this call created, so no object is left that nothing counts.
   */
  private async commit<T extends { blobCreated: boolean }>(ing: Ingested, record: (client: import('pg').PoolClient) => Promise<T>): Promise<T> {
    try {
      return await this.store.withHashLock(ing.hash, async (client) => {
        const known = await this.store.blobExists(client, ing.hash);
        const promoted = known ? (await ing.staged.discard(), false) : await ing.staged.promote(ing.hash);
        try {
          return await record(client);
        } catch (err) {
          if (promoted) await this.blobs.delete(ing.hash).catch(() => {});
          throw err;
        }
      });
    } catch (err) {
      await ing.staged.discard();
      if (err instanceof QuotaError) throw new MediaError(413, 'quota_exceeded', 'upload would exceed your storage quota');
      if (err instanceof StorageError) {
        this.log.error({ err: err.message, hash: ing.hash }, 'object store refused a clean upload');
        throw new MediaError(503, 'storage_unavailable', 'storage is unavailable; try again later');
      }
      throw err;
    }
  }

  async remove(f: FileRecord): Promise<{ lastReference: boolean } | undefined> {
    return this.store.withHashLock(f.hash, async (client) => {
      const res = await this.store.deleteFile(client, f.id);
      // Still under the lock: an upload of the same bytes waits, then stores them anew.
      if (res?.lastReference) await this.deleteBlob(f.hash);
      return res;
    });
  }

  private async deleteBlob(hash: string): Promise<void> {
    await this.blobs.delete(hash);
    for (const s of this.limits.thumbSizes) await this.blobs.delete(thumbKey(hash, s));
  }

  /** The upload is scanned like any other, then re-encoded; only the re-encoded square is kept. */
  async setAvatar(email: string, source: AsyncIterable<Buffer>): Promise<{ hash: string; size: number }> {
    // Avatars are small (MEDIA_AVATAR_MAX_BYTES): keep the bytes for sharp while they stream to the scanner.
    const chunks: Buffer[] = [];
    async function* tee() {
      for await (const c of source) {
        chunks.push(c);
        yield c;
      }
    }
    const ing = await ingest(tee(), { store: this.blobs, clamd: this.clamd }, {
      maxBytes: this.limits.avatarMaxBytes, quotaRemaining: Number.MAX_SAFE_INTEGER, allowedTypes: THUMBNAIL_TYPES,
    });
    await ing.staged.discard();
    let bytes: Buffer;
    try {
      bytes = await avatar(Buffer.concat(chunks), this.limits.avatarSize, this.limits.images);
    } catch (err) {
      if (err instanceof ImageError) throw new MediaError(422, 'undecodable', err.message);
      throw err;
    }
    const hash = createHash('sha256').update(bytes).digest('hex');
    const res = await this.store.withHashLock(hash, async (client) => {
      if (!(await this.store.blobExists(client, hash))) await this.blobs.put(hash, bytes);
      return this.store.setAvatar(client, email, { hash, size: bytes.length, contentType: 'image/webp', thumbnails: false });
    });
    if (res.previous && res.previous !== hash) await this.release(res.previous);
    else if (res.previous === hash) await this.release(hash);
    return { hash, size: bytes.length };
  }

  private async release(hash: string): Promise<void> {
    await this.store.withHashLock(hash, async (client) => {
      await client.query('BEGIN');
      try {
        const last = await this.store.releaseBlob(client, hash);
        await client.query('COMMIT');
        if (last) await this.deleteBlob(hash);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        this.log.warn({ hash, err: (err as Error).message }, 'releasing a replaced avatar failed');
      }
    });
  }
}
