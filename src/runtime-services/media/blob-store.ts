// Content-addressed blob storage behind one interface. An upload is written
// to a staging area while it streams (and is hashed and scanned on the way);
// only a clean, fully received upload is promoted to its key, which is the
// SHA-256 of its bytes, so a second upload of the same bytes stores nothing.
import { randomUUID } from 'node:crypto';
import { link, mkdir, open, readdir, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

export interface ByteRange {
  start: number;
  /** inclusive */
  end: number;
}

export interface StagedBlob {
  write(chunk: Buffer): Promise<void>;
  /**
   * Makes the staged bytes visible under `key`. Resolves false (and drops the
   * staged copy) when the key already holds a blob: same key, same bytes.
   */
  promote(key: string): Promise<boolean>;
  /** Drops the staged bytes; never throws. */
  discard(): Promise<void>;
}

/** A staged upload in a local file (the filesystem store's), which another store may upload from. */
export interface LocalStagedBlob extends StagedBlob {
  /** Closes the file and returns its path; it stays until discard(). */
  complete(): Promise<string>;
}

export interface BlobStore {
  readonly kind: string;
  stage(): Promise<StagedBlob>;
  /** Size in bytes, or undefined when the key holds nothing. */
  size(key: string): Promise<number | undefined>;
  read(key: string, range?: ByteRange): Promise<Readable>;
  delete(key: string): Promise<void>;
  /** Stores a small, already complete blob (thumbnails, avatars). */
  put(key: string, bytes: Buffer): Promise<boolean>;
  ping(): Promise<void>;
}

/** The object store failed (unreachable, refused, full): the upload is refused with 503. */
export class StorageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StorageError';
  }
}

const KEY = /^[a-z0-9][a-z0-9_.-]{0,200}$/;

export function checkKey(key: string): string {
  if (!KEY.test(key) || key.includes('..')) throw new Error(`invalid blob key ${JSON.stringify(key)}`);
  return key;
}

/** A directory on a volume: blobs/<first two hex>/<key>, staging/<uuid>. */
export class FilesystemBlobStore implements BlobStore {
  readonly kind = 'filesystem';
  private readonly blobs: string;
  private readonly staging: string;

  constructor(root: string, private readonly opts: { fsync: boolean } = { fsync: true }) {
    this.blobs = path.join(root, 'blobs');
    this.staging = path.join(root, 'staging');
  }

  async init(): Promise<void> {
    await mkdir(this.blobs, { recursive: true });
    await mkdir(this.staging, { recursive: true });
    // Staged files left by a crash were never promoted: nothing refers to them.
    for (const f of await readdir(this.staging)) await rm(path.join(this.staging, f), { force: true });
  }

  private pathOf(key: string): string {
    checkKey(key);
    return path.join(this.blobs, key.slice(0, 2), key);
  }

  async stage(): Promise<LocalStagedBlob> {
    const tmp = path.join(this.staging, randomUUID());
    const fh: FileHandle = await open(tmp, 'wx', 0o600);
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await fh.close();
    };
    return {
      write: async (chunk) => {
        let off = 0;
        while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
      },
      promote: async (key) => {
        const dest = this.pathOf(key);
        try {
          if (this.opts.fsync) await fh.sync();
          await close();
          await mkdir(path.dirname(dest), { recursive: true });
          // link() never replaces an existing file, so two replicas promoting
          // the same bytes at once cannot tear a blob another request reads.
          await link(tmp, dest);
          return true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
          throw new StorageError(`storing blob ${key} failed: ${(err as Error).message}`);
        } finally {
          await unlink(tmp).catch(() => {});
        }
      },
      discard: async () => {
        await close().catch(() => {});
        await unlink(tmp).catch(() => {});
      },
      complete: async () => {
        await close();
        return tmp;
      },
    };
  }

  async size(key: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(key))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const file = this.pathOf(key);
    // Open first so a missing blob is an error here, not an 'error' event mid-response.
    const fh = await open(file, 'r');
    return fh.createReadStream({ autoClose: true, start: range?.start, end: range?.end, highWaterMark: 256 * 1024 });
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async put(key: string, bytes: Buffer): Promise<boolean> {
    const s = await this.stage();
    try {
      await s.write(bytes);
    } catch (err) {
      await s.discard();
      throw err;
    }
    return s.promote(key);
  }

  async ping(): Promise<void> {
    await stat(this.blobs);
  }
}
