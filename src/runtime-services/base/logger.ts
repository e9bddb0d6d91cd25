// pino JSON logs for the runtime services. Tokens travel in headers (and, for
// browsers' WebSocket, in the query string), so both are redacted here rather
// than trusting every call site to leave them out.
import pino, { type DestinationStream, type Logger } from 'pino';

export const RUNTIME_REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["sec-websocket-protocol"]',
  'headers.authorization',
  'token', '*.token', 'accessToken', '*.accessToken',
  'password', '*.password',
  'DATABASE_URL', 'REDIS_URL', 'AUDIT_OWNER_DATABASE_URL', 'METRICS_TOKEN',
];

export function createRuntimeLogger(opts: { level: string; name?: string; destination?: DestinationStream }): Logger {
  return pino({
    name: opts.name ?? 'familyhub-runtime',
    level: opts.level,
    redact: { paths: RUNTIME_REDACT_PATHS, censor: '[REDACTED]' },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, opts.destination);
}

/** Drops the query string: it may carry an access token. */
export function safeUrl(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
