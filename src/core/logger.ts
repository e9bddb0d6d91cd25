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

export function createLogger(opts: { level?: string; name?: string } = {}) {
  return pino({
    name: opts.name ?? 'familyhub-operator',
    level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
