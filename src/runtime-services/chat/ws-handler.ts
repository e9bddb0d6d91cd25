// The chat WebSocket endpoint. The token is checked before any frame is
// handled; frames arriving meanwhile wait. Refusals close the socket with a
// code from close-codes.ts so a client can tell "get a new token" (4001)
// from "you are not allowed" (4003).
import type { FastifyInstance } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { bearerToken, type TokenVerifier } from '../base/jwt/verifier.js';
import { AuthError } from '../base/jwt/principal.js';
import { CloseCode } from './close-codes.js';
import { ChatConnection, type ConnectionLimits } from './connection.js';
import type { ChatHub } from './hub.js';
import { ClientFrameSchema } from './protocol.js';

export interface WsDeps {
  hub: ChatHub;
  verifier: TokenVerifier;
  limits: ConnectionLimits & { maxMessageBytes: number };
  connections: Set<ChatConnection>;
  isDraining: () => boolean;
  onClose: (code: number) => void;
}

/** Leaves room for the JSON envelope around the text. */
const ENVELOPE_BYTES = 1024;

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

    const handleFrame = async (c: ChatConnection, data: RawData) => {
      if (c.closed) return;
      let json: unknown;
      try {
        json = JSON.parse(data.toString());
      } catch {
        c.sendFrame({ type: 'error', code: 'bad_request', message: 'frame is not JSON' });
        return;
      }
      const parsed = ClientFrameSchema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        c.sendFrame({ type: 'error', code: 'bad_request', message: `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}` });
        return;
      }
      const f = parsed.data;
      switch (f.type) {
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
      deps.connections.delete(conn);
      void deps.hub.disconnect(conn).catch((err: Error) => log.warn({ err: err.message }, 'chat disconnect cleanup failed'));
    });
    socket.on('error', (err) => log.warn({ err: err.message }, 'chat socket error'));

    const query = req.query as { access_token?: string };
    const token = bearerToken(req.headers.authorization) ?? query.access_token ?? '';
    deps.verifier.verify(token).then(
      (principal) => {
        if (socket.readyState !== socket.OPEN) return;
        const c = new ChatConnection(socket, principal, deps.limits, deps.onClose);
        conn = c;
        deps.connections.add(c);
        deps.hub.connect(c);
        c.sendFrame({ type: 'ready', user: principal.email });
        for (const data of early.splice(0)) handle(c, data);
      },
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
