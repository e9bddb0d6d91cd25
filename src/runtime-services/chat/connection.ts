// One authenticated WebSocket. Owns the per-connection limits (rate,
// back-pressure) and the per-channel catch-up state that keeps history and
// live messages in offset order without duplicates.
import type { WebSocket } from 'ws';
import type { Principal } from '../base/jwt/principal.js';
import { CloseCode } from './close-codes.js';
import { TokenBucket } from './rate-limiter.js';

interface ChannelState {
  /** While history is being sent, live messages wait here. */
  catchingUp: boolean;
  pending: { offset: number; data: string }[];
  lastSent: number;
}

export interface ConnectionLimits {
  ratePerSec: number;
  burst: number;
  maxBufferedBytes: number;
}

let nextId = 0;

/** setTimeout fires at once for delays past 2^31-1 ms (~24.8 days), which a long-lived token can ask for. */
const MAX_TIMER_MS = 2_147_483_647;

export class ChatConnection {
  readonly id = ++nextId;
  readonly channels = new Map<string, ChannelState>();
  readonly bucket: TokenBucket;
  /** Frames of one connection are handled one after another, in arrival order. */
  work: Promise<void> = Promise.resolve();
  closed = false;
  private expiryTimer: NodeJS.Timeout | undefined;
  private noticeTimer: NodeJS.Timeout | undefined;
  /** When the session ends unless a fresh token arrives (token exp + clock leeway). */
  sessionEndsAt = Infinity;

  constructor(
    readonly ws: WebSocket,
    public principal: Principal,
    private readonly limits: ConnectionLimits,
    private readonly onClose: (code: number) => void,
  ) {
    this.bucket = new TokenBucket(limits.ratePerSec, limits.burst);
  }

  get user(): string {
    return this.principal.email;
  }

  /**
   * The socket lives exactly as long as its token: closed with 4002 at
   * `exp + leeway`, with a `token_expiring` notice `noticeMs` before, so a
   * client can send `auth` with a fresh token in time.
   */
  setSession(principal: Principal, leewayMs: number, noticeMs: number): void {
    this.principal = principal;
    clearTimeout(this.expiryTimer);
    clearTimeout(this.noticeTimer);
    this.sessionEndsAt = principal.expiresAt + leewayMs;
    const left = this.sessionEndsAt - Date.now();
    if (left > MAX_TIMER_MS) {
      // Re-arm once the end is within a timer's reach.
      this.expiryTimer = setTimeout(() => this.setSession(principal, leewayMs, noticeMs), MAX_TIMER_MS).unref();
      return;
    }
    this.noticeTimer = setTimeout(() => this.sendFrame({ type: 'token_expiring', exp: principal.expiresAt }), Math.max(0, left - noticeMs)).unref();
    this.expiryTimer = setTimeout(() => this.close(CloseCode.TokenExpired, 'token expired: reconnect or send auth with a fresh token'), Math.max(0, left)).unref();
  }

  endSession(): void {
    clearTimeout(this.expiryTimer);
    clearTimeout(this.noticeTimer);
  }

  /** A timer can fire late on a busy loop; frames check the deadline themselves. */
  get expired(): boolean {
    return Date.now() >= this.sessionEndsAt;
  }

  /** Sends unless the client is too far behind, in which case it is cut off. */
  send(data: string): boolean {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return false;
    if (this.ws.bufferedAmount > this.limits.maxBufferedBytes) {
      this.close(CloseCode.SlowConsumer, 'slow consumer: reconnect with your last offset');
      return false;
    }
    this.ws.send(data);
    return true;
  }

  sendFrame(frame: object): boolean {
    return this.send(JSON.stringify(frame));
  }

  startChannel(channel: string): ChannelState {
    const state: ChannelState = { catchingUp: true, pending: [], lastSent: 0 };
    this.channels.set(channel, state);
    return state;
  }

  /** Live message from the channel feed. */
  deliver(channel: string, offset: number, data: string): boolean {
    const state = this.channels.get(channel);
    if (!state) return false;
    if (state.catchingUp) {
      state.pending.push({ offset, data });
      return false;
    }
    if (offset <= state.lastSent) return false;
    state.lastSent = offset;
    return this.send(data);
  }

  /** Ends catch-up: history up to `upTo` has been sent; flush what arrived meanwhile. */
  finishCatchUp(channel: string, upTo: number): void {
    const state = this.channels.get(channel);
    if (!state) return;
    state.lastSent = Math.max(state.lastSent, upTo);
    state.catchingUp = false;
    const pending = state.pending;
    state.pending = [];
    for (const p of pending) this.deliver(channel, p.offset, p.data);
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.endSession();
    this.onClose(code);
    this.ws.close(code, reason);
    // A client that stopped reading may never complete the close handshake.
    setTimeout(() => this.ws.terminate(), 2000).unref();
  }
}
