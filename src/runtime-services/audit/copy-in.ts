// COPY ... FROM STDIN for node-postgres, which has no API for it of its own
// (the pg-copy-streams package adds one). The client hands the server's
// CopyInResponse to the active query object, so a Query subclass can answer
// it with the whole batch in one CopyData message followed by CopyDone.
// COPY is used because the server parses its text format more cheaply than
// a dozen unnest()ed array parameters, and the client skips pg's per-element
// array escaping: both sit on the path of every audit event.
import pg from 'pg';

interface CopyConnection {
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

class CopyFromBuffer extends pg.Query {
  constructor(sql: string, private readonly data: Buffer, callback: (err: Error | undefined, result: { rowCount: number | null }) => void) {
    super(sql, undefined, callback);
  }

  /** Called by pg.Client when the server is ready to receive rows. */
  handleCopyInResponse(connection: CopyConnection): void {
    if (this.data.length > 0) connection.sendCopyFromChunk(this.data);
    connection.endCopyFrom();
  }
}

/** Runs `sql` (a COPY ... FROM STDIN) with `data` in COPY text format; resolves with the row count. */
export function copyFrom(client: pg.ClientBase, sql: string, data: string | Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const query = new CopyFromBuffer(sql, bytes, (err, result) => {
      if (err) reject(err);
      else resolve(result.rowCount ?? 0);
    });
    client.query(query);
  });
}

const SPECIAL = /[\\\t\n\r]/;
const SPECIAL_ALL = /[\\\t\n\r]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** One field in COPY text format (tab-separated, `\N` for NULL). */
export function copyField(value: string | null): string {
  if (value === null) return '\\N';
  return SPECIAL.test(value) ? value.replace(SPECIAL_ALL, (c) => ESCAPES[c]!) : value;
}
