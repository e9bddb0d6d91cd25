// The chat WebSocket endpoint. The token is checked before any frame is
// handled; frames arriving meanwhile wait. The socket then lives only as
// long as its token (a client refreshes in-band with an `auth` frame).
// Refusals close the socket with a code from close-codes.ts so a client can
// tell "get a new token" (4001/4002) from "you are not allowed" (4003).
import type { FastifyInstance } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { bearerToken, type TokenVerifier } from '../base/jwt/verifier.js';
import { AuthError, type Principal } from '../base/jwt/principal.js';
import { firstIssue } from '../base/validation.js';
import { CloseCode } from './close-codes.js';
import type { ConnectionQuota } from './connection-quota.js';
import { ChatConnection, type ConnectionLimits } from './connection.js';
import type { ChatHub } from './hub.js';
import { ClientFrameSchema } from './protocol.js';

export interface WsDeps {
  hub: ChatHub;
  verifier: TokenVerifier;
  limits: ConnectionLimits & { maxMessageBytes: number; maxConnectionsPerUser: number };
  session: { leewayMs: number; noticeMs: number };
  connections: Set<ChatConnection>;
  /** The per-user cap, counted across replicas. */
  quota: ConnectionQuota;
  isDraining: () => boolean;
  onClose: (code: number) => void;
}

/** Leaves room for the JSON envelope around the text. */
export const ENVELOPE_BYTES = 1024;

function rawLength(data: RawData): number {
  return Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data instanceof ArrayBuffer ? data.byteLength : data.length;
}

export function registerChatSocket(app: FastifyInstance, deps: WsDeps): void {
  app.get('/ws', { websocket: true }, (socket: WebSocket, req) => {
    if (deps.isDraining()) {
      socket.close(CloseCode.ServiceRestart, 'service restarting');
      return;
    }
    const log = req.log;
    const early: RawData[] = [];
    let conn: ChatConnection | undefined;

    const handle = (c: ChatConnection, data: RawData) => {
      if (c.closed) return;
      // Checked on arrival, not when the frame's turn comes, so a flood is
      // cut off while it happens.
      if (rawLength(data) > deps.limits.maxMessageBytes + ENVELOPE_BYTES) {
        c.close(CloseCode.MessageTooBig, `message larger than ${deps.limits.maxMessageBytes} bytes`);
        return;
      }
      if (!c.bucket.take()) {
        c.close(CloseCode.RateLimited, 'rate limit exceeded');
        return;
      }
      c.work = c.work.then(() => handleFrame(c, data)).catch((err: Error) => {
        log.error({ err: err.message, user: c.user }, 'chat frame failed');
        c.sendFrame({ type: 'error', code: 'internal', message: 'the frame could not be processed' });
      });
    };

    const refresh = async (c: ChatConnection, token: string) => {
      try {
        const next = await deps.verifier.verify(token);
        // The IdP may give every token its own subject; the chat identity is the e-mail.
        if (next.email !== c.user) {
          c.sendFrame({ type: 'error', code: 'forbidden', message: 'the token belongs to another user' });
          return;
        }
        c.setSession(next, deps.session.leewayMs, deps.session.noticeMs);
        c.sendFrame({ type: 'authenticated', user: next.email, exp: next.expiresAt });
      } catch (err) {
        const auth = err instanceof AuthError ? err : new AuthError('unauthenticated', 'token check failed');
        if (auth.kind === 'forbidden') {
          // Access was withdrawn (domain, verification): end the session now.
          c.close(CloseCode.Forbidden, auth.message.slice(0, 120));
          return;
        }
        c.sendFrame({ type: 'error', code: 'unauthenticated', message: auth.message });
      }
    };

    const handleFrame = async (c: ChatConnection, data: RawData) => {
      if (c.closed) return;
      if (c.expired) {
        c.close(CloseCode.TokenExpired, 'token expired: reconnect or send auth with a fresh token');
        return;
      }
      let json: unknown;
      try {
        json = JSON.parse(data.toString());
      } catch {
        c.sendFrame({ type: 'error', code: 'bad_request', message: 'frame is not JSON' });
        return;
      }
      const parsed = ClientFrameSchema.safeParse(json);
      if (!parsed.success) {
        const { field, message } = firstIssue(parsed.error);
        c.sendFrame({ type: 'error', code: 'bad_request', field, message });
        return;
      }
      const f = parsed.data;
      switch (f.type) {
        case 'auth':
          return refresh(c, f.token);
        case 'join':
          return deps.hub.join(c, f.channel, f.since);
        case 'leave':
          return deps.hub.leave(c, f.channel);
        case 'typing':
          return deps.hub.typing(c, f.channel);
        case 'send':
          if (Buffer.byteLength(f.text) > deps.limits.maxMessageBytes) {
            c.close(CloseCode.MessageTooBig, `message larger than ${deps.limits.maxMessageBytes} bytes`);
            return;
          }
          return deps.hub.send(c, f.channel, f.text, f.ref, req.id);
      }
    };

    socket.on('message', (data) => (conn ? handle(conn, data) : early.push(data)));
    socket.on('close', () => {
      if (!conn) return;
      conn.endSession();
      void deps.quota.release(conn.user, conn.id).catch((err: Error) => log.warn({ err: err.message }, 'releasing a chat connection slot failed'));
      deps.connections.delete(conn);
      void deps.hub.disconnect(conn).catch((err: Error) => log.warn({ err: err.message }, 'chat disconnect cleanup failed'));
    });
    socket.on('error', (err) => log.warn({ err: err.message }, 'chat socket error'));

    const query = req.query as { access_token?: string };
    const token = bearerToken(req.headers.authorization) ?? query.access_token ?? '';
    const admit = async (principal: Principal) => {
      if (socket.readyState !== socket.OPEN) return;
      const c = new ChatConnection(socket, principal, deps.limits, deps.onClose);
      let admitted: boolean;
      try {
        admitted = await deps.quota.acquire(principal.email, c.id);
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'chat connection slot could not be checked');
        socket.close(CloseCode.TryAgainLater, 'try again later');
        return;
      }
      if (!admitted) {
        log.info({ user: principal.email, limit: deps.limits.maxConnectionsPerUser }, 'chat connection refused: per-user cap');
        deps.onClose(CloseCode.TooManyConnections);
        socket.close(CloseCode.TooManyConnections, `at most ${deps.limits.maxConnectionsPerUser} connections per user`);
        return;
      }
      if (socket.readyState !== socket.OPEN) {
        // The client left while its slot was being taken.
        await deps.quota.release(principal.email, c.id);
        return;
      }
      conn = c;
      c.setSession(principal, deps.session.leewayMs, deps.session.noticeMs);
      deps.connections.add(c);
      deps.hub.connect(c);
      c.sendFrame({ type: 'ready', user: principal.email, exp: principal.expiresAt });
      for (const data of early.splice(0)) handle(c, data);
    };

    deps.verifier.verify(token).then(
      (principal) => admit(principal).catch((err: Error) => {
        log.error({ err: err.message }, 'admitting a chat connection failed');
        socket.close(CloseCode.TryAgainLater, 'try again later');
      }),
      (err: unknown) => {
        const auth = err instanceof AuthError ? err : new AuthError('unauthenticated', 'token check failed');
        const code = auth.kind === 'forbidden' ? CloseCode.Forbidden : CloseCode.Unauthenticated;
        log.info({ reason: auth.message, code }, 'chat connection refused');
        deps.onClose(code);
        // Close reasons are limited to 123 bytes.
        socket.close(code, auth.message.slice(0, 120));
      },
    );
  });
}
