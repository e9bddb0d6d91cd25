// PostgreSQL side of media: one row per stored blob (hash, size, type,
// reference count, thumbnail state) and one row per file a user owns. Blob
// existence and the reference count change only under a session advisory
// lock on the hash, held across the object-store write or delete, so an
// upload and the deletion of the last reference to the same bytes cannot
// interleave into a row without an object (or an object nobody counts).
import type pg from 'pg';
import { runMigrations } from '../base/connections.js';

const MIGRATION_LOCK = 7_265_014;

const STATEMENTS = [
  `CREATE SCHEMA IF NOT EXISTS media`,
  `CREATE TABLE IF NOT EXISTS media.blobs (
     hash         text PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
     size         bigint NOT NULL,
     content_type text NOT NULL,
     width        integer,
     height       integer,
     ref_count    integer NOT NULL CHECK (ref_count >= 0),
     thumb_state  text NOT NULL DEFAULT 'none' CHECK (thumb_state IN ('none', 'pending', 'done', 'failed')),
     thumb_error  text,
     created_at   timestamptz NOT NULL DEFAULT now()
   )`,
  `CREATE INDEX IF NOT EXISTS blobs_thumb_pending_idx ON media.blobs (created_at) WHERE thumb_state = 'pending'`,
  `CREATE TABLE IF NOT EXISTS media.files (
     id           uuid PRIMARY KEY,
     owner        text NOT NULL,
     hash         text NOT NULL REFERENCES media.blobs (hash),
     size         bigint NOT NULL,
     content_type text NOT NULL,
     filename     text NOT NULL,
     visibility   text NOT NULL CHECK (visibility IN ('private', 'family', 'room')),
     room         text,
     scan_result  text NOT NULL,
     created_at   timestamptz NOT NULL DEFAULT now(),
     CHECK ((visibility = 'room') = (room IS NOT NULL))
   )`,
  `CREATE INDEX IF NOT EXISTS files_owner_idx ON media.files (owner, created_at DESC, id DESC)`,
  `CREATE INDEX IF NOT EXISTS files_hash_idx ON media.files (hash)`,
  `CREATE TABLE IF NOT EXISTS media.avatars (
     email      text PRIMARY KEY,
     hash       text NOT NULL REFERENCES media.blobs (hash),
     updated_at timestamptz NOT NULL DEFAULT now()
   )`,
];

export type Visibility = 'private' | 'family' | 'room';

export interface FileRecord {
  id: string;
  owner: string;
  hash: string;
  size: number;
  contentType: string;
  filename: string;
  visibility: Visibility;
  room: string | null;
  scanResult: string;
  createdAt: string;
  thumbState: 'none' | 'pending' | 'done' | 'failed';
}

export interface NewBlob {
  hash: string;
  size: number;
  contentType: string;
  width?: number;
  height?: number;
  thumbnails: boolean;
}

interface FileRow {
  id: string;
  owner: string;
  hash: string;
  size: string;
  content_type: string;
  filename: string;
  visibility: Visibility;
  room: string | null;
  scan_result: string;
  created_at: Date;
  thumb_state: FileRecord['thumbState'];
}

const toFile = (r: FileRow): FileRecord => ({
  id: r.id, owner: r.owner, hash: r.hash, size: Number(r.size), contentType: r.content_type, filename: r.filename,
  visibility: r.visibility, room: r.room, scanResult: r.scan_result, createdAt: r.created_at.toISOString(), thumbState: r.thumb_state,
});

const FILE_COLS = `f.id, f.owner, f.hash, f.size, f.content_type, f.filename, f.visibility, f.room, f.scan_result, f.created_at, b.thumb_state`;

/** Cursor = the last row's (created_at, id), so pages are stable under inserts. */
export function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: string; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as [string, string];
    if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt)) || !/^[0-9a-f-]{36}$/.test(id)) throw new Error('shape');
    return { createdAt, id };
  } catch {
    throw new Error('invalid cursor');
  }
}

export class MediaStore {
  constructor(private readonly pool: pg.Pool) {}

  async migrate(): Promise<void> {
    await runMigrations(this.pool, 'media', MIGRATION_LOCK, STATEMENTS);
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1 FROM media.blobs LIMIT 1');
  }

  /**
   * Runs `fn` holding the lock for `hash` on one connection. Session-level
   * (not transaction-level) so it covers the object-store work after COMMIT.
   */
  async withHashLock<T>(hash: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let unlocked = false;
    try {
      await client.query(`SELECT pg_advisory_lock(hashtextextended('media:' || $1, 0))`, [hash]);
      try {
        return await fn(client);
      } finally {
        await client.query(`SELECT pg_advisory_unlock(hashtextextended('media:' || $1, 0))`, [hash]);
        unlocked = true;
      }
    } finally {
      // A connection whose lock state is unknown must not go back to the pool.
      client.release(unlocked ? undefined : new Error('advisory lock state unknown'));
    }
  }

  async blobExists(client: pg.PoolClient, hash: string): Promise<boolean> {
    const { rowCount } = await client.query('SELECT 1 FROM media.blobs WHERE hash = $1', [hash]);
    return (rowCount ?? 0) > 0;
  }

  /** Bytes a user's files take (each reference counts: deduplication is our saving, not theirs). */
  async usage(owner: string): Promise<number> {
    const { rows } = await this.pool.query<{ used: string }>(
      'SELECT coalesce(sum(size), 0) AS used FROM media.files WHERE owner = $1', [owner],
    );
    return Number(rows[0]!.used);
  }

  /**
   * Adds a reference to the blob (creating its row when new) and the file row,
   * in one transaction on the locked connection. The quota is checked again
   * here, under a per-owner lock, because two parallel uploads each passed it
   * while streaming.
   */
  async addFile(
    client: pg.PoolClient,
    blob: NewBlob,
    file: { id: string; owner: string; filename: string; visibility: Visibility; room: string | null; quota: number },
  ): Promise<{ file: FileRecord; blobCreated: boolean }> {
    try {
      await client.query('BEGIN');
      await client.query(`SELECT pg_advisory_xact_lock(hashtextextended('media-owner:' || $1, 0))`, [file.owner]);
      const { rows: u } = await client.query<{ used: string }>('SELECT coalesce(sum(size), 0) AS used FROM media.files WHERE owner = $1', [file.owner]);
      if (Number(u[0]!.used) + blob.size > file.quota) {
        await client.query('ROLLBACK');
        throw new QuotaError();
      }
      const b = await client.query<{ created: boolean; thumb_state: FileRecord['thumbState'] }>(
        `INSERT INTO media.blobs (hash, size, content_type, width, height, ref_count, thumb_state)
         VALUES ($1, $2, $3, $4, $5, 1, $6)
         ON CONFLICT (hash) DO UPDATE SET ref_count = media.blobs.ref_count + 1
         RETURNING (xmax = 0) AS created, thumb_state`,
        [blob.hash, blob.size, blob.contentType, blob.width ?? null, blob.height ?? null, blob.thumbnails ? 'pending' : 'none'],
      );
      const { rows } = await client.query<Omit<FileRow, 'thumb_state'>>(
        `INSERT INTO media.files (id, owner, hash, size, content_type, filename, visibility, room, scan_result)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'clean')
         RETURNING id, owner, hash, size, content_type, filename, visibility, room, scan_result, created_at`,
        [file.id, file.owner, blob.hash, blob.size, blob.contentType, file.filename, file.visibility, file.room],
      );
      await client.query('COMMIT');
      return { file: toFile({ ...rows[0]!, thumb_state: b.rows[0]!.thumb_state }), blobCreated: b.rows[0]!.created };
    } catch (err) {
      if (err instanceof QuotaError) throw err;
      await client.query('ROLLBACK').catch(() => {});
      throw new Error(`recording file ${file.filename} failed: ${(err as Error).message}`);
    }
  }

  /** Drops one reference; true when it was the last and the blob row is gone. */
  async releaseBlob(client: pg.PoolClient, hash: string): Promise<boolean> {
    const { rows } = await client.query<{ ref_count: number }>(
      'UPDATE media.blobs SET ref_count = ref_count - 1 WHERE hash = $1 RETURNING ref_count', [hash],
    );
    if (rows[0]?.ref_count === 0) {
      await client.query('DELETE FROM media.blobs WHERE hash = $1', [hash]);
      return true;
    }
    return false;
  }

  async deleteFile(client: pg.PoolClient, id: string): Promise<{ lastReference: boolean } | undefined> {
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ hash: string }>('DELETE FROM media.files WHERE id = $1 RETURNING hash', [id]);
      if (!rows[0]) {
        await client.query('ROLLBACK');
        return undefined;
      }
      const lastReference = await this.releaseBlob(client, rows[0].hash);
      await client.query('COMMIT');
      return { lastReference };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw new Error(`deleting file ${id} failed: ${(err as Error).message}`);
    }
  }

  async file(id: string): Promise<FileRecord | undefined> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
    const { rows } = await this.pool.query<FileRow>(
      `SELECT ${FILE_COLS} FROM media.files f JOIN media.blobs b USING (hash) WHERE f.id = $1`, [id],
    );
    return rows[0] && toFile(rows[0]);
  }

  async listOwned(owner: string, limit: number, cursor?: { createdAt: string; id: string }): Promise<FileRecord[]> {
    const { rows } = await this.pool.query<FileRow>(
      `SELECT ${FILE_COLS} FROM media.files f JOIN media.blobs b USING (hash)
        WHERE f.owner = $1 AND ($2::timestamptz IS NULL OR (f.created_at, f.id) < ($2::timestamptz, $3::uuid))
        ORDER BY f.created_at DESC, f.id DESC LIMIT $4`,
      [owner, cursor?.createdAt ?? null, cursor?.id ?? null, limit],
    );
    return rows.map(toFile);
  }

  /** Chat rooms are owned by the chat service; absent chat schema → no room access. */
  async isRoomMember(room: string, email: string): Promise<boolean> {
    const { rows } = await this.pool.query<{ t: string | null }>(`SELECT to_regclass('chat.members')::text AS t`);
    if (!rows[0]?.t) return false;
    const { rowCount } = await this.pool.query('SELECT 1 FROM chat.members WHERE channel_id = $1 AND email = $2', [room, email]);
    return (rowCount ?? 0) > 0;
  }

  async pendingThumbnails(limit: number): Promise<{ hash: string; contentType: string }[]> {
    const { rows } = await this.pool.query<{ hash: string; content_type: string }>(
      `SELECT hash, content_type FROM media.blobs WHERE thumb_state = 'pending' ORDER BY created_at LIMIT $1`, [limit],
    );
    return rows.map((r) => ({ hash: r.hash, contentType: r.content_type }));
  }

  async setThumbState(hash: string, state: 'done' | 'failed', error?: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE media.blobs SET thumb_state = $2, thumb_error = $3 WHERE hash = $1 AND thumb_state = 'pending'`, [hash, state, error ?? null],
    );
    return (rowCount ?? 0) > 0;
  }

  async thumbState(hash: string): Promise<{ state: FileRecord['thumbState']; error: string | null } | undefined> {
    const { rows } = await this.pool.query<{ thumb_state: FileRecord['thumbState']; thumb_error: string | null }>(
      'SELECT thumb_state, thumb_error FROM media.blobs WHERE hash = $1', [hash],
    );
    return rows[0] && { state: rows[0].thumb_state, error: rows[0].thumb_error };
  }

  /** Sets the avatar (a processed blob) and returns the hash it replaced, if any. */
  async setAvatar(client: pg.PoolClient, email: string, blob: NewBlob): Promise<{ previous?: string; blobCreated: boolean }> {
    try {
      await client.query('BEGIN');
      const b = await client.query<{ created: boolean }>(
        `INSERT INTO media.blobs (hash, size, content_type, ref_count, thumb_state) VALUES ($1, $2, $3, 1, 'none')
         ON CONFLICT (hash) DO UPDATE SET ref_count = media.blobs.ref_count + 1 RETURNING (xmax = 0) AS created`,
        [blob.hash, blob.size, blob.contentType],
      );
      const prev = await client.query<{ hash: string }>('SELECT hash FROM media.avatars WHERE email = $1 FOR UPDATE', [email]);
      await client.query(
        `INSERT INTO media.avatars (email, hash) VALUES ($1, $2) ON CONFLICT (email) DO UPDATE SET hash = EXCLUDED.hash, updated_at = now()`,
        [email, blob.hash],
      );
      await client.query('COMMIT');
      return { previous: prev.rows[0]?.hash, blobCreated: b.rows[0]!.created };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw new Error(`setting avatar of ${email} failed: ${(err as Error).message}`);
    }
  }

  async avatar(email: string): Promise<{ hash: string; contentType: string; size: number } | undefined> {
    const { rows } = await this.pool.query<{ hash: string; content_type: string; size: string }>(
      'SELECT a.hash, b.content_type, b.size FROM media.avatars a JOIN media.blobs b USING (hash) WHERE a.email = $1', [email],
    );
    return rows[0] && { hash: rows[0].hash, contentType: rows[0].content_type, size: Number(rows[0].size) };
  }

  async blobRefCount(hash: string): Promise<number | undefined> {
    const { rows } = await this.pool.query<{ ref_count: number }>('SELECT ref_count FROM media.blobs WHERE hash = $1', [hash]);
    return rows[0]?.ref_count;
  }
}

export class QuotaError extends Error {
  constructor() {
    super('upload would exceed the storage quota');
  }
}
