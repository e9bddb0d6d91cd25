import { describe, expect, it } from 'vitest';
import { canonicalJson, contentHash, GENESIS_HASH, rowHash } from '../../src/runtime-services/audit/chain.js';
import { decodeEntry } from '../../src/runtime-services/audit/event-codec.js';
import { compareIds } from '../../src/runtime-services/audit/stream-consumer.js';

const row = {
  seq: 1n, eventId: '1700000000000-0', recordedAt: new Date('2026-01-02T03:04:05.678Z'), occurredAt: new Date('2026-01-02T03:04:05.000Z'),
  actor: 'alice@family.test', action: 'chat.message.send', target: 'chat/channel/x', outcome: 'success',
  requestId: 'r1', source: 'chat', details: { b: 1, a: { d: [1, 2], c: null } },
};

describe('audit hash chain', () => {
  it('canonical JSON ignores key order at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}');
  });

  it('hashes equal content equally regardless of key order', () => {
    expect(rowHash(GENESIS_HASH, row)).toBe(rowHash(GENESIS_HASH, { ...row, details: { a: { c: null, d: [1, 2] }, b: 1 } }));
  });

  it.each([
    ['seq', { seq: 2n }],
    ['actor', { actor: 'mallory@family.test' }],
    ['recordedAt', { recordedAt: new Date('2026-01-02T03:04:05.679Z') }],
    ['details', { details: { b: 2, a: { d: [1, 2], c: null } } }],
    ['requestId', { requestId: null }],
  ])('changes when %s changes', (_name, change) => {
    expect(rowHash(GENESIS_HASH, { ...row, ...change })).not.toBe(rowHash(GENESIS_HASH, row));
  });

  it('links to the previous hash', () => {
    expect(rowHash('a'.repeat(64), row)).not.toBe(rowHash(GENESIS_HASH, row));
  });

  it('orders stream ids numerically, not as text', () => {
    expect(compareIds('9-0', '10-0')).toBe(-1);
    expect(compareIds('10-2', '10-10')).toBe(-1);
    expect(compareIds('10-1', '10-1')).toBe(0);
  });
});

describe('stream entry decoding', () => {
  it('decodes a published event', () => {
    const e = { actor: 'a@family.test', action: 'x', target: 't', outcome: 'failure', timestamp: '2026-01-02T03:04:05.123456Z', details: { k: 1 } };
    const r = decodeEntry('5-1', ['e', JSON.stringify(e)]);
    expect(r).toMatchObject({ eventId: '5-1', actor: 'a@family.test', outcome: 'failure', requestId: null, details: { k: 1 } });
    expect(r.occurredAt.toISOString()).toBe('2026-01-02T03:04:05.123Z');
    expect(r.contentHash).toBe(contentHash(r));
  });

  it.each([
    [['x', '1'], /no "e" field/],
    [['e', '{not json'], /not JSON/],
    [['e', JSON.stringify({ actor: 'a', action: 'x', target: 't', outcome: 'maybe', timestamp: '2026-01-01T00:00:00Z' })], /outcome/],
  ])('keeps a malformed entry as audit.malformed (%o)', (fields, reason) => {
    const r = decodeEntry('1700000000000-3', fields);
    expect(r.action).toBe('audit.malformed');
    expect(r.occurredAt.getTime()).toBe(1700000000000);
    expect(String(r.details.reason)).toMatch(reason);
  });

  it('precomputes the COPY text of the non-chain columns, escaped, with \\N for null and canonical details', () => {
    const e = { actor: 'a\tb', action: 'x\\y', target: 'l1\nl2\r', outcome: 'success', timestamp: '2026-01-02T03:04:05.123Z', details: { b: 'q\\', a: 1 } };
    const r = decodeEntry('5-1', ['e', JSON.stringify(e)]);
    expect(r.copyTail?.toString('utf8')).toBe(
      '5-1\t2026-01-02T03:04:05.123Z\ta\\tb\tx\\\\y\tl1\\nl2\\r\tsuccess\t\\N\t\\N\t{"a":1,"b":"q\\\\\\\\"}\n',
    );
  });

  it('strips NUL escapes that jsonb would reject', () => {
    const raw = JSON.stringify({ actor: 'a', action: 'x', target: 't', outcome: 'success', timestamp: '2026-01-01T00:00:00Z', details: { s: 'a\u0000b' } });
    expect(decodeEntry('1-1', ['e', raw]).details).toEqual({ s: 'ab' });
  });
});
