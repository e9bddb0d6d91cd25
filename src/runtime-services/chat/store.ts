// PostgreSQL side of chat: channels, membership and the message log. The
// per-channel offset is taken from the channel row in the same statement
// that inserts the message, so offsets are gapless and in commit order.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { ChatMessage } from './protocol.js';
import { runMigrations } from '../base/connections.js';

const MIGRATION_LOCK = 7_265_002;

const STATEMENTS = [
  `CREATE SCHEMA IF NOT EXISTS chat`,
  `CREATE TABLE IF NOT EXISTS chat.channels (
     id          text PRIMARY KEY,
     kind        text NOT NULL CHECK (kind IN ('direct', 'group')),
     name        text,
     created_by  text NOT NULL,
     created_at  timestamptz NOT NULL DEFAULT now(),
     last_offset bigint NOT NULL DEFAULT 0
   )`,
  `CREATE TABLE IF NOT EXISTS chat.members (
     channel_id text NOT NULL REFERENCES chat.channels (id) ON DELETE CASCADE,
     email      text NOT NULL,
     added_at   timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (channel_id, email)
   )`,
  `CREATE INDEX IF NOT EXISTS members_email_idx ON chat.members (email)`,
  `CREATE TABLE IF NOT EXISTS chat.messages (
     channel_id text NOT NULL REFERENCES chat.channels (id) ON DELETE CASCADE,
     msg_offset bigint NOT NULL,
     id         uuid NOT NULL,
     sender     text NOT NULL,
     body       text NOT NULL,
     sent_at    timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (channel_id, msg_offset)
   )`,
];

export interface ChannelInfo {
  id: string;
  kind: 'direct' | 'group';
  name: string | null;
  createdBy: string;
  lastOffset: number;
}

interface MessageRow {
  channel_id: string;
  msg_offset: string;
  id: string;
  sender: string;
  body: string;
  sent_at: Date;
}

const toMessage = (r: MessageRow): ChatMessage => ({
  channel: r.channel_id, offset: Number(r.msg_offset), id: r.id, from: r.sender, text: r.body, ts: r.sent_at.toISOString(),
});

export function directChannelId(a: string, b: string): string {
  return `dm:${[a, b].sort().join(':')}`;
}

export class ChatStore {
  constructor(private readonly pool: pg.Pool) {}

  async migrate(): Promise<void> {
    await runMigrations(this.pool, 'chat', MIGRATION_LOCK, STATEMENTS);
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1 FROM chat.channels LIMIT 1');
  }

  /** Creates the channel with its first members; an existing channel is left as it is. */
  async createChannel(c: { id: string; kind: 'direct' | 'group'; name: string | null; createdBy: string; members: string[] }): Promise<{ created: boolean; added: string[] }> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const ins = await client.query(
        `INSERT INTO chat.channels (id, kind, name, created_by) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`,
        [c.id, c.kind, c.name, c.createdBy],
      );
      if ((ins.rowCount ?? 0) === 0) {
        // An existing channel's members change only through addMember /
        // removeMember (membership.ts decides): opening a direct channel
        // again must not re-add someone.
        await client.query('COMMIT');
        return { created: false, added: [] };
      }
      const added = await client.query<{ email: string }>(
        `INSERT INTO chat.members (channel_id, email) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING RETURNING email`,
        [c.id, [...new Set(c.members)]],
      );
      await client.query('COMMIT');
      return { created: (ins.rowCount ?? 0) > 0, added: added.rows.map((r) => r.email) };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw new Error(`creating channel ${c.id} failed: ${(err as Error).message}`);
    } finally {
      client.release();
    }
  }

  async channel(id: string): Promise<ChannelInfo | undefined> {
    const { rows } = await this.pool.query(
      'SELECT id, kind, name, created_by, last_offset FROM chat.channels WHERE id = $1', [id],
    );
    const r = rows[0];
    return r && { id: r.id, kind: r.kind, name: r.name, createdBy: r.created_by, lastOffset: Number(r.last_offset) };
  }

  async lastOffset(channel: string): Promise<number> {
    const { rows } = await this.pool.query<{ last_offset: string }>('SELECT last_offset FROM chat.channels WHERE id = $1', [channel]);
    return Number(rows[0]?.last_offset ?? 0);
  }

  async isMember(channel: string, email: string): Promise<boolean> {
    const { rowCount } = await this.pool.query('SELECT 1 FROM chat.members WHERE channel_id = $1 AND email = $2', [channel, email]);
    return (rowCount ?? 0) > 0;
  }

  async channelsOf(email: string): Promise<ChannelInfo[]> {
    const { rows } = await this.pool.query(
      `SELECT c.id, c.kind, c.name, c.created_by, c.last_offset FROM chat.channels c
         JOIN chat.members m ON m.channel_id = c.id WHERE m.email = $1 ORDER BY c.id`, [email],
    );
    return rows.map((r) => ({ id: r.id, kind: r.kind, name: r.name, createdBy: r.created_by, lastOffset: Number(r.last_offset) }));
  }

  async members(channel: string): Promise<string[]> {
    const { rows } = await this.pool.query<{ email: string }>('SELECT email FROM chat.members WHERE channel_id = $1 ORDER BY email', [channel]);
    return rows.map((r) => r.email);
  }

  async addMember(channel: string, email: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      'INSERT INTO chat.members (channel_id, email) VALUES ($1, $2) ON CONFLICT DO NOTHING', [channel, email],
    );
    return (rowCount ?? 0) > 0;
  }

  async removeMember(channel: string, email: string): Promise<boolean> {
    const { rowCount } = await this.pool.query('DELETE FROM chat.members WHERE channel_id = $1 AND email = $2', [channel, email]);
    return (rowCount ?? 0) > 0;
  }

  /** Undefined when the sender is not a member (or the channel does not exist). */
  async appendMessage(channel: string, sender: string, text: string): Promise<ChatMessage | undefined> {
    const { rows } = await this.pool.query<MessageRow>(
      `WITH ch AS (
         UPDATE chat.channels SET last_offset = last_offset + 1
          WHERE id = $1 AND EXISTS (SELECT 1 FROM chat.members WHERE channel_id = $1 AND email = $2)
         RETURNING last_offset)
       INSERT INTO chat.messages (channel_id, msg_offset, id, sender, body)
       SELECT $1, last_offset, $3, $2, $4 FROM ch
       RETURNING channel_id, msg_offset, id, sender, body, sent_at`,
      [channel, sender, randomUUID(), text],
    );
    return rows[0] && toMessage(rows[0]);
  }

  /** Messages with after < offset <= upTo, oldest first. */
  async messagesBetween(channel: string, after: number, upTo: number, limit: number): Promise<ChatMessage[]> {
    const { rows } = await this.pool.query<MessageRow>(
      `SELECT channel_id, msg_offset, id, sender, body, sent_at FROM chat.messages
        WHERE channel_id = $1 AND msg_offset > $2 AND msg_offset <= $3 ORDER BY msg_offset LIMIT $4`,
      [channel, after, upTo, limit],
    );
    return rows.map(toMessage);
  }

  /** Newest first, for paging back through history over HTTP. */
  async messagesBefore(channel: string, before: number | undefined, limit: number): Promise<ChatMessage[]> {
    const { rows } = await this.pool.query<MessageRow>(
      `SELECT channel_id, msg_offset, id, sender, body, sent_at FROM chat.messages
        WHERE channel_id = $1 AND ($2::bigint IS NULL OR msg_offset < $2) ORDER BY msg_offset DESC LIMIT $3`,
      [channel, before ?? null, limit],
    );
    return rows.map(toMessage);
  }
}
