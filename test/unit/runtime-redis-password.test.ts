// The runtime's Redis clients log in with the password from
// REDIS_PASSWORD_FILE (the hub's passwordSecretRef, mounted by the operator),
// against a real redis-server with requirepass; the password never reaches
// the logs, not even when it is wrong.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../hack/local/process.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';
import { createRedis, readRedisPassword } from '../../src/runtime-services/base/connections.js';
import { createRuntimeLogger } from '../../src/runtime-services/base/logger.js';
import { loadConfig } from '../../src/runtime-services/config.js';
import { SERVICES } from '../../src/runtime-services/services.js';

describe('Redis password from REDIS_PASSWORD_FILE', () => {
  const password = randomBytes(18).toString('base64url');
  let redis: LocalRedis;
  let dir: string;
  const clients: Redis[] = [];
  let logged = '';
  const log = createRuntimeLogger({
    level: 'debug',
    destination: new Writable({ write: (chunk, _enc, cb) => { logged += String(chunk); cb(); } }),
  });
  const file = (name: string, content: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, content);
    return p;
  };
  const client = (settings: { REDIS_URL: string; REDIS_PASSWORD_FILE?: string }) => {
    const c = createRedis(settings, 'test', log);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    redis = await startRedis({ password });
    dir = mkdtempSync(path.join(os.tmpdir(), 'redis-pw-'));
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is a setting of every Redis user, optional', () => {
    const env = {
      RUNTIME_SERVICES: 'chat,audit,media,gaming', DATABASE_URL: 'postgres://u@127.0.0.1/db', REDIS_URL: redis.url,
      OIDC_ISSUER_URL: 'http://127.0.0.1:9000', OIDC_AUDIENCE: 'x', AUTH_ALLOWED_EMAIL_DOMAINS: 'family.test',
    };
    for (const s of loadConfig({ ...env, REDIS_PASSWORD_FILE: '/var/run/familyhub/redis/password' }, SERVICES).services) {
      expect(s.settings.REDIS_PASSWORD_FILE, s.definition.name).toBe('/var/run/familyhub/redis/password');
    }
    expect(loadConfig(env, SERVICES).services.every((s) => s.settings.REDIS_PASSWORD_FILE === undefined)).toBe(true);
  });

  it('logs in with the file\'s password, one trailing newline trimmed (as kubectl --from-file leaves it)', async () => {
    const c = client({ REDIS_URL: redis.url, REDIS_PASSWORD_FILE: file('pw-newline', `${password}\n`) });
    await c.connect();
    expect(await c.ping()).toBe('PONG');
    expect(readRedisPassword(file('pw-crlf', `${password}\r\n`))).toBe(password);
    expect(readRedisPassword(file('pw-plain', password))).toBe(password);
    // Only one: a second line break is part of what the Secret holds.
    expect(readRedisPassword(file('pw-two', `${password}\n\n`))).toBe(`${password}\n`);
  });

  it('without the password Redis refuses the commands', async () => {
    const c = client({ REDIS_URL: redis.url });
    await c.connect().catch(() => {});
    await expect(c.ping()).rejects.toThrow(/NOAUTH/);
  });

  it('a missing or empty file is an error naming the file, and a wrong password never shows up in the log', async () => {
    expect(() => readRedisPassword(path.join(dir, 'absent'))).toThrow(/REDIS_PASSWORD_FILE .*absent cannot be read: ENOENT/);
    expect(() => readRedisPassword(file('empty', '\n'))).toThrow(/is empty/);
    const wrong = `${password}-wrong`;
    logged = '';
    const c = client({ REDIS_URL: redis.url, REDIS_PASSWORD_FILE: file('pw-wrong', wrong) });
    c.connect().catch(() => {});
    await waitFor('the refused login logged', async () => /Redis connection error/.test(logged), { timeoutMs: 10_000, intervalMs: 50 });
    expect(logged).toMatch(/WRONGPASS|invalid password|invalid username-password/i);
    expect(logged).not.toContain(password);
  });
});
