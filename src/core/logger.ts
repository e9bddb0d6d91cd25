// pino JSON logs. Redaction is a safety net: reconcilers must not log secret
// values in the first place, but a stray object with a password field must
// not reach the log either.
import pino from 'pino';

export const REDACT_PATHS = [
  'password', '*.password', '*.*.password',
  'token', '*.token', '*.*.token',
  'clientSecret', '*.clientSecret', 'client_secret', '*.client_secret',
  'secret', '*.secret',
  'data', '*.data', 'stringData', '*.stringData',
  'authorization', '*.authorization', 'headers.authorization', '*.headers.authorization',
  'connectionUrl', '*.connectionUrl', 'connection_url', '*.connection_url',
  'uri', '*.uri', 'DATABASE_URL', '*.DATABASE_URL',
];

/**
 * pino's redaction edits the logged object in place and puts the values back
 * after writing, except where two paths overlap (`*.data` over
 * `*.*.password`): there the caller's object kept `[REDACTED]` for good. So
 * the plain-object levels the paths can reach are copied first; other
 * instances (errors) are left to pino's serializers.
 */
function detached(value: unknown, depth = 0): unknown {
  if (depth > 3 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => detached(v, depth + 1));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const copy: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) copy[k] = detached(v, depth + 1);
  return copy;
}

/** `destination` (default stdout) lets a test read what would be written. */
export function createLogger(opts: { level?: string; name?: string; destination?: pino.DestinationStream } = {}) {
  return pino({
    name: opts.name ?? 'familyhub-operator',
    level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { log: (obj) => detached(obj) as Record<string, unknown> },
  }, opts.destination);
}
