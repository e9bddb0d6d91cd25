// The audit store's COPY path against real PostgreSQL: field text survives
// COPY escaping byte for byte (so the chain verifies), and a batch mixing
// stored and new stream ids falls back from the fast path to storing only
// the new ones.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { contentHash } from '../../src/runtime-services/audit/chain.js';
import { decodeEntry, encodeEntry, type AuditRecord } from '../../src/runtime-services/audit/event-codec.js';
import { migrateAuditSchema } from '../../src/runtime-services/audit/schema.js';
import { appendBatch } from '../../src/runtime-services/audit/store.js';
import { verifyChain } from '../../src/runtime-services/audit/verify.js';
import { createAuditDatabase } from './runtime-harness.js';

let pgInst: LocalPostgres;
let app: pg.Pool;

beforeAll(async () => {
  pgInst = await startPostgres();
  const db = await createAuditDatabase(pgInst, 'audit_store');
  const owner = new pg.Pool({ connectionString: db.ownerUrl });
  await migrateAuditSchema(owner, { appRole: db.appRole });
  await owner.end();
  app = new pg.Pool({ connectionString: db.appUrl });
});

afterAll(async () => {
  await app?.end();
  await pgInst?.stop();
});

const awkward = {
  actor: 'tab\there@family.test',
  action: 'line\nbreak\r\nand \\ backslash',
  target: '\\N',
  outcome: 'success',
  requestId: 'quote"\'` and 🦊 ünïcödé',
  source: 'back\\slash\\',
  timestamp: '2026-03-04T05:06:07.089Z',
  details: { 'k\ty': 'v\\n not a newline', nested: { arr: [1, 'two\n', null, { '\\': '\t' }], z: 'ß🦊' }, quote: '"\'' },
};

interface Row {
  seq: string; event_id: string; actor: string; action: string; target: string; outcome: string;
  request_id: string | null; source: string | null; details: unknown; occurred_at: Date;
}

const rowsFor = async (ids: string[]) =>
  (await app.query<Row>('SELECT * FROM audit.events WHERE event_id = ANY($1) ORDER BY seq', [ids])).rows;

describe('audit store', () => {
  it('stores text with tabs, newlines, backslashes and non-ASCII exactly, and the chain verifies', async () => {
    // Decoded entries (precomputed COPY tail), one the consumer's lean form, and a record without a tail.
    const decoded = decodeEntry('1700000000001-0', ['e', JSON.stringify(awkward)]);
    const encoded = encodeEntry('1700000000001-1', ['e', JSON.stringify({ ...awkward, requestId: undefined, source: undefined })]);
    const fields = {
      eventId: '1700000000001-2', occurredAt: new Date('2026-03-04T05:06:07.089Z'), actor: 'a\tb', action: 'x\\y', target: 'line\nend',
      outcome: 'failure', requestId: null, source: '\\N', details: { s: 'a\\b\tc\n' },
    };
    const plain: AuditRecord = { ...fields, contentHash: contentHash(fields) };
    expect(await appendBatch(app, [decoded, encoded, plain])).toEqual({ inserted: 3, duplicates: 0 });

    const rows = await rowsFor(['1700000000001-0', '1700000000001-1', '1700000000001-2']);
    expect(rows.map((r) => r.event_id)).toEqual(['1700000000001-0', '1700000000001-1', '1700000000001-2']);
    expect(rows[0]).toMatchObject({
      actor: awkward.actor, action: awkward.action, target: awkward.target, outcome: 'success',
      request_id: awkward.requestId, source: awkward.source, details: awkward.details,
    });
    expect(rows[0]!.occurred_at.toISOString()).toBe(awkward.timestamp);
    expect(rows[1]).toMatchObject({ actor: awkward.actor, request_id: null, source: null, details: awkward.details });
    expect(rows[2]).toMatchObject({ actor: 'a\tb', action: 'x\\y', target: 'line\nend', outcome: 'failure', request_id: null, source: '\\N', details: { s: 'a\\b\tc\n' } });
    expect(await verifyChain(app)).toMatchObject({ ok: true, checkedRows: 3 });
  });

  it('stores only the new ids of a batch that repeats stored ones, in one contiguous run of the chain', async () => {
    const entry = (n: number) => encodeEntry(`1700000000002-${n}`, ['e', JSON.stringify({ ...awkward, target: `t/${n}` })]);
    const before = Number((await app.query('SELECT last_seq FROM audit.chain_head')).rows[0].last_seq);
    expect(await appendBatch(app, [entry(0), entry(2), entry(4)])).toEqual({ inserted: 3, duplicates: 0 });
    expect(await appendBatch(app, [0, 1, 2, 3, 4, 5].map(entry))).toEqual({ inserted: 3, duplicates: 3 });

    const rows = await rowsFor([0, 1, 2, 3, 4, 5].map((n) => `1700000000002-${n}`));
    expect(rows.map((r) => [Number(r.seq) - before, r.target])).toEqual([
      [1, 't/0'], [2, 't/2'], [3, 't/4'], [4, 't/1'], [5, 't/3'], [6, 't/5'],
    ]);
    expect(Number((await app.query('SELECT last_seq FROM audit.chain_head')).rows[0].last_seq)).toBe(before + 6);
    expect((await app.query('SELECT count(*) AS n FROM audit.event_ids WHERE ms = 1700000000002')).rows[0].n).toBe('6');
    expect((await verifyChain(app)).ok).toBe(true);
  });
});
