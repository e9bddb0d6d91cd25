// A chat connection's session follows its token: notice, close with 4002,
// refresh moving the end, and tokens longer than a timer can wait.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';
import { CloseCode } from '../../src/runtime-services/chat/close-codes.js';
import { ChatConnection } from '../../src/runtime-services/chat/connection.js';

function setup(expiresInMs: number) {
  const sent: string[] = [];
  const closes: number[] = [];
  const ws = { OPEN: 1, readyState: 1, bufferedAmount: 0, send: (d: string) => sent.push(d), close: (c: number) => closes.push(c), terminate() {} };
  const principal = { subject: 's', email: 'b@family.test', roles: [], expiresAt: Date.now() + expiresInMs };
  const conn = new ChatConnection(ws as unknown as WebSocket, principal, { ratePerSec: 10, burst: 10, maxBufferedBytes: 1000 }, () => {});
  conn.setSession(principal, 1000, 2000);
  return { conn, sent, closes, principal };
}

const DAY = 86_400_000;

describe('chat session lifetime', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends token_expiring before the end and closes with 4002 at exp + leeway', () => {
    const { conn, sent, closes } = setup(5000);
    vi.advanceTimersByTime(3900);
    expect(sent).toEqual([]);
    vi.advanceTimersByTime(200);
    expect(JSON.parse(sent[0]!)).toMatchObject({ type: 'token_expiring' });
    vi.advanceTimersByTime(1850);
    expect(closes).toEqual([]);
    expect(conn.expired).toBe(false);
    vi.advanceTimersByTime(100);
    expect(closes).toEqual([CloseCode.TokenExpired]);
  });

  it('moves the end when a fresh token arrives', () => {
    const { conn, closes, principal } = setup(5000);
    vi.advanceTimersByTime(4000);
    conn.setSession({ ...principal, expiresAt: Date.now() + 60_000 }, 1000, 2000);
    vi.advanceTimersByTime(10_000);
    expect(closes).toEqual([]);
    vi.advanceTimersByTime(51_000);
    expect(closes).toEqual([CloseCode.TokenExpired]);
  });

  it('does not close at once for a token valid longer than a timer can wait (~24.8 days)', () => {
    const { conn, closes } = setup(60 * DAY);
    vi.advanceTimersByTime(1000);
    expect(closes).toEqual([]);
    vi.advanceTimersByTime(30 * DAY);
    expect(closes).toEqual([]);
    expect(conn.expired).toBe(false);
    vi.advanceTimersByTime(30 * DAY + 2000);
    expect(closes).toEqual([CloseCode.TokenExpired]);
  });
});
