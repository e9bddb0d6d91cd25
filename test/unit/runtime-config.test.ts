import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/runtime-services/config.js';

const base = {
  RUNTIME_SERVICES: 'chat, audit',
  DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db',
  REDIS_URL: 'redis://127.0.0.1:6379',
  OIDC_ISSUER_URL: 'http://127.0.0.1:9000',
  OIDC_AUDIENCE: 'chat',
  AUTH_ALLOWED_EMAIL_DOMAINS: 'family.test,example.org',
};

describe('runtime configuration', () => {
  it('parses lists and applies defaults', () => {
    const c = loadConfig(base);
    expect(c.RUNTIME_SERVICES).toEqual(['chat', 'audit']);
    expect(c.AUTH_ALLOWED_EMAIL_DOMAINS).toEqual(['family.test', 'example.org']);
    expect(c.OIDC_ALLOWED_ALGS).toEqual(['RS256', 'PS256', 'ES256', 'EdDSA']);
    expect(c.AUDIT_RETENTION_DAYS).toBe(365);
    expect(c.PORT).toBe(8080);
  });

  it.each([
    [{ DATABASE_URL: undefined }, 'invalid configuration: DATABASE_URL is required but not set'],
    [{ RUNTIME_SERVICES: 'chat,media' }, /^invalid configuration: RUNTIME_SERVICES .*'media'/],
    [{ AUDIT_BATCH_SIZE: 'lots' }, /^invalid configuration: AUDIT_BATCH_SIZE /],
    [{ OIDC_ALLOWED_ALGS: 'HS256' }, /^invalid configuration: OIDC_ALLOWED_ALGS /],
    [{ PORT: '70000' }, /^invalid configuration: PORT /],
  ])('stops with one line naming the bad setting (%o)', (override, message) => {
    let err: unknown;
    try {
      loadConfig({ ...base, ...override });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
  });
});
