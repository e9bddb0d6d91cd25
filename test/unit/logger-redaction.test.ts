// The loggers' redaction is the safety net behind "no reconciler logs a
// secret value": every configured path must hide its value in the JSON that
// is actually written, while the fields around it stay readable.
import { describe, expect, it } from 'vitest';
import { createLogger, REDACT_PATHS } from '../../src/core/logger.js';
import { createRuntimeLogger, RUNTIME_REDACT_PATHS } from '../../src/runtime-services/base/logger.js';

function capture() {
  const lines: string[] = [];
  return { lines, destination: { write: (s: string) => void lines.push(s) } };
}

/** `{a: {b: value}}` for "a.b"; a wildcard becomes a key of its own; `x["y-z"]` is the key y-z. */
function objectAt(path: string, value: unknown): Record<string, unknown> {
  const keys = path.match(/[^.[\]"]+/g)!.map((k, i) => (k === '*' ? `any${i}` : k));
  let node: unknown = value;
  for (const k of keys.reverse()) node = { [k]: node };
  return node as Record<string, unknown>;
}

function valueAt(obj: unknown, path: string): unknown {
  const keys = path.match(/[^.[\]"]+/g)!.map((k, i) => (k === '*' ? `any${i}` : k));
  return keys.reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], obj);
}

describe('operator logger redaction', () => {
  it.each(REDACT_PATHS)('hides the value at %s and keeps its neighbours', (path) => {
    const { lines, destination } = capture();
    const log = createLogger({ level: 'debug', destination });
    const secret = `s3cret-${path}-${Math.random().toString(36).slice(2)}`;
    log.info({ ...objectAt(path, secret), controller: 'familyhub', key: 'family/home' }, 'reconciled');
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(secret);
    const written = JSON.parse(lines[0]!);
    expect(valueAt(written, path)).toBe('[REDACTED]');
    expect(written).toMatchObject({ controller: 'familyhub', key: 'family/home', msg: 'reconciled' });
  });

  it('hides a whole Secret object logged by mistake, and credentials in a child logger binding', () => {
    const { lines, destination } = capture();
    const log = createLogger({ level: 'debug', destination });
    const inData = Buffer.from('pw-in-data').toString('base64');
    const secretObject = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pg-admin' }, data: { password: inData }, stringData: { password: 'pw-in-stringdata' } };
    log.debug({ obj: secretObject }, 'applying child');
    log.child({ token: 'tok-in-binding' }).warn({ uri: 'postgresql://u:pw-in-uri@db/x' }, 'retrying');
    const out = lines.join('');
    for (const v of [inData, 'pw-in-stringdata', 'tok-in-binding', 'pw-in-uri']) expect(out).not.toContain(v);
    expect(JSON.parse(lines[0]!).obj).toMatchObject({ kind: 'Secret', metadata: { name: 'pg-admin' }, data: '[REDACTED]', stringData: '[REDACTED]' });
  });

  it('leaves the caller\'s object as it was, also where two paths overlap', () => {
    const log = createLogger({ level: 'debug', destination: capture().destination });
    const o = { obj: { data: { password: 'kept' }, token: 'kept-too', metadata: { name: 'x' } }, password: 'top' };
    const before = JSON.stringify(o);
    log.info(o, 'applying child');
    expect(JSON.stringify(o)).toBe(before);
  });
});

describe('runtime logger redaction', () => {
  it.each(RUNTIME_REDACT_PATHS)('hides the value at %s', (path) => {
    const { lines, destination } = capture();
    const log = createRuntimeLogger({ level: 'debug', destination });
    const secret = `s3cret-${Math.random().toString(36).slice(2)}`;
    log.info({ ...objectAt(path, secret), service: 'chat' }, 'request');
    expect(lines[0]).not.toContain(secret);
    const written = JSON.parse(lines[0]!);
    expect(valueAt(written, path)).toBe('[REDACTED]');
    expect(written.service).toBe('chat');
  });
});
