// Unit tests with fakes: the feed's ordering logic and the connection's
// limits. The e2e chat test proves the same behaviour across real replicas.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import type { WebSocket } from 'ws';
import { ChannelFeed } from '../../src/runtime-services/chat/channel-feed.js';
import { CloseCode } from '../../src/runtime-services/chat/close-codes.js';
import { ChatConnection } from '../../src/runtime-services/chat/connection.js';
import type { ChatMessage } from '../../src/runtime-services/chat/protocol.js';
import { TokenBucket } from '../../src/runtime-services/chat/rate-limiter.js';

const log = pino({ level: 'silent' });

function fakeSocket() {
  const sent: string[] = [];
  const closes: number[] = [];
  const ws = { OPEN: 1, readyState: 1, bufferedAmount: 0, sent, closes, send: (d: string) => sent.push(d), close: (c: number) => closes.push(c), terminate() {} };
  return ws;
}

const msg = (offset: number): ChatMessage => ({ channel: 'c', offset, id: `id${offset}`, from: 'a@family.test', text: `m${offset}`, ts: '2026-01-01T00:00:00.000Z' });

function setup(stored: ChatMessage[] = []) {
  const ws = fakeSocket();
  const conn = new ChatConnection(ws as unknown as WebSocket, { subject: 's', email: 'b@family.test', roles: [], expiresAt: Date.now() + 600_000 }, { ratePerSec: 10, burst: 10, maxBufferedBytes: 1000 }, () => {});
  const queries: [number, number][] = [];
  const feed = new ChannelFeed('c', {
    messagesBetween: async (_c, after, upTo) => {
      queries.push([after, upTo]);
      return stored.filter((m) => m.offset > after && m.offset <= upTo);
    },
  }, 20, log, () => {});
  feed.init(0);
  conn.startChannel('c');
  conn.finishCatchUp('c', 0);
  feed.conns.add(conn);
  const offsets = () => ws.sent.map((s) => (JSON.parse(s) as { offset: number }).offset);
  return { ws, conn, feed, queries, offsets };
}

describe('channel feed ordering', () => {
  it('holds early arrivals until the missing offset arrives', () => {
    const { feed, offsets } = setup();
    feed.onMessage(msg(2));
    feed.onMessage(msg(3));
    expect(offsets()).toEqual([]);
    feed.onMessage(msg(1));
    feed.onMessage(msg(2)); // duplicate
    expect(offsets()).toEqual([1, 2, 3]);
  });

  it('fills a gap from the store when the missing publish never comes', async () => {
    const { feed, offsets, queries } = setup([msg(1), msg(2), msg(3)]);
    feed.onMessage(msg(3));
    await new Promise((r) => setTimeout(r, 60));
    expect(queries).toEqual([[0, 3]]);
    expect(offsets()).toEqual([1, 2, 3]);
  });

  it('queues live messages during catch-up and skips what history already sent', () => {
    const { feed, conn, offsets, ws } = setup();
    conn.startChannel('c');
    feed.onMessage(msg(1));
    feed.onMessage(msg(2));
    expect(ws.sent).toEqual([]);
    conn.finishCatchUp('c', 1); // history covered offset 1
    expect(offsets()).toEqual([2]);
  });
});

describe('connection limits', () => {
  it('cuts off a consumer whose send buffer is over the limit', () => {
    const { ws, conn } = setup();
    expect(conn.send('x')).toBe(true);
    ws.bufferedAmount = 1001;
    expect(conn.send('y')).toBe(false);
    expect(ws.closes).toEqual([CloseCode.SlowConsumer]);
    expect(conn.closed).toBe(true);
  });

  it('token bucket allows the burst, then the steady rate', () => {
    let now = 0;
    const b = new TokenBucket(10, 3, () => now);
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, true, false]);
    now += 100; // one token at 10/s
    expect([b.take(), b.take()]).toEqual([true, false]);
    now += 10_000;
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, true, false]);
  });
});
