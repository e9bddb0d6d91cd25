// The auth service's client credentials as the operator hands them over:
// the id as plain env, the secret as a mounted file, the cookie key derived
// from it when none is given.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuthSettingsSchema, resolveAuthSettings } from '../../src/runtime-services/auth/config.js';

const base = { AUTH_DOMAIN: 'family.test', AUTH_PUBLIC_URL: 'https://auth.family.test' };
const secretFile = (content: string) => {
  const f = path.join(mkdtempSync(path.join(tmpdir(), 'fh-auth-')), 'client-secret');
  writeFileSync(f, content);
  return f;
};

describe('auth service settings', () => {
  it('takes the client id from OIDC_CLIENT_ID and the secret from its file; derives a stable cookie key', () => {
    const env = { ...base, OIDC_CLIENT_ID: 'family-home-auth', OIDC_CLIENT_SECRET_FILE: secretFile('s3cret-from-idp\n') };
    const a = resolveAuthSettings(AuthSettingsSchema.parse(env));
    expect(a.AUTH_CLIENT_ID).toBe('family-home-auth');
    expect(a.AUTH_CLIENT_SECRET).toBe('s3cret-from-idp');
    expect(a.AUTH_COOKIE_SECRET.length).toBeGreaterThanOrEqual(32);
    expect(a.AUTH_COOKIE_SECRET).not.toContain('s3cret');
    // Every replica derives the same key; another client secret another key.
    expect(resolveAuthSettings(AuthSettingsSchema.parse(env)).AUTH_COOKIE_SECRET).toBe(a.AUTH_COOKIE_SECRET);
    const other = resolveAuthSettings(AuthSettingsSchema.parse({ ...env, OIDC_CLIENT_SECRET_FILE: secretFile('another') }));
    expect(other.AUTH_COOKIE_SECRET).not.toBe(a.AUTH_COOKIE_SECRET);
  });

  it('explicit settings win; a missing client id or cookie key is one line naming it', () => {
    const explicit = resolveAuthSettings(AuthSettingsSchema.parse({
      ...base, AUTH_CLIENT_ID: 'x', AUTH_CLIENT_SECRET: 'y', AUTH_COOKIE_SECRET: 'c'.repeat(32), OIDC_CLIENT_ID: 'ignored',
    }));
    expect(explicit).toMatchObject({ AUTH_CLIENT_ID: 'x', AUTH_CLIENT_SECRET: 'y', AUTH_COOKIE_SECRET: 'c'.repeat(32) });
    expect(() => resolveAuthSettings(AuthSettingsSchema.parse({ ...base, AUTH_COOKIE_SECRET: 'c'.repeat(32) }))).toThrow(/^invalid configuration: AUTH_CLIENT_ID is required/);
    expect(() => resolveAuthSettings(AuthSettingsSchema.parse({ ...base, AUTH_CLIENT_ID: 'x' }))).toThrow(/^invalid configuration: AUTH_COOKIE_SECRET is required/);
  });
});
