import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineService } from '../../src/runtime-services/base/service.js';
import { ConfigError, loadConfig } from '../../src/runtime-services/config.js';
import { SERVICES } from '../../src/runtime-services/services.js';

const base = {
  RUNTIME_SERVICES: 'chat, audit',
  DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db',
  REDIS_URL: 'redis://127.0.0.1:6379',
  OIDC_ISSUER_URL: 'http://127.0.0.1:9000',
  OIDC_AUDIENCE: 'chat',
  AUTH_ALLOWED_EMAIL_DOMAINS: 'family.test,example.org',
};

function configError(env: Record<string, string | undefined>, services = SERVICES): Error {
  let err: unknown;
  try {
    loadConfig(env, services);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as Error).message).not.toContain('\n');
  return err as Error;
}

describe('runtime configuration', () => {
  it('parses lists and applies defaults, per selected service', () => {
    const c = loadConfig(base, SERVICES);
    expect(c.services.map((s) => s.definition.name)).toEqual(['chat', 'audit']);
    expect(c.base.AUTH_ALLOWED_EMAIL_DOMAINS).toEqual(['family.test', 'example.org']);
    expect(c.base.OIDC_ALLOWED_ALGS).toEqual(['RS256', 'PS256', 'ES256', 'EdDSA']);
    expect(c.base.PORT).toBe(8080);
    const audit = c.services.find((s) => s.definition.name === 'audit')!.settings;
    expect(audit.AUDIT_RETENTION_DAYS).toBe(365);
    // Each service gets only its own settings.
    expect(audit).not.toHaveProperty('CHAT_MAX_MESSAGE_BYTES');
  });

  it.each([
    [{ DATABASE_URL: undefined }, 'invalid configuration: DATABASE_URL is required but not set'],
    [{ RUNTIME_SERVICES: 'chat,nonsense' }, /^invalid configuration: RUNTIME_SERVICES .*'nonsense'/],
    [{ AUDIT_BATCH_SIZE: 'lots' }, /^invalid configuration: AUDIT_BATCH_SIZE /],
    [{ OIDC_ALLOWED_ALGS: 'HS256' }, /^invalid configuration: OIDC_ALLOWED_ALGS /],
    [{ PORT: '70000' }, /^invalid configuration: PORT /],
  ])('stops with one line naming the bad setting (%o)', (override, message) => {
    expect(configError({ ...base, ...override }).message).toMatch(message);
  });

  it('requires a service setting only when that service is selected', () => {
    const clock = defineService({
      name: 'clock', prefix: '/api/clock', settings: z.object({ CLOCK_TICK_MS: z.coerce.number().int().min(1).default(1000) }),
      create: () => ({ readiness: {}, plugin: async () => {}, start: async () => {}, drain: async () => {}, close: async () => {} }),
    });
    const withoutDb = { ...base, RUNTIME_SERVICES: 'clock', DATABASE_URL: undefined, REDIS_URL: undefined };
    const c = loadConfig(withoutDb, [...SERVICES, clock]);
    expect(c.services.map((s) => [s.definition.name, s.settings])).toEqual([['clock', { CLOCK_TICK_MS: 1000 }]]);
    // Chat's own setting is not even looked at when chat is not selected.
    expect(() => loadConfig({ ...withoutDb, CHAT_RATE_PER_SEC: 'fast' }, [...SERVICES, clock])).not.toThrow();
    expect(configError({ ...withoutDb, RUNTIME_SERVICES: 'clock,audit' }, [...SERVICES, clock]).message).toBe(
      'invalid configuration: DATABASE_URL is required but not set',
    );
    expect(configError({ ...withoutDb, CLOCK_TICK_MS: '0' }, [...SERVICES, clock]).message).toMatch(/^invalid configuration: CLOCK_TICK_MS /);
  });
});
