import { describe, expect, it } from 'vitest';
import { forwardedUrl, safeReturnUrl } from '../../src/runtime-services/auth/return-url.js';
import { cookieKey, openFlow, openSession, parseCookies, sealFlow, sealSession, setCookie } from '../../src/runtime-services/auth/session.js';

describe('return URLs (no open redirect)', () => {
  const ok = (u: string) => safeReturnUrl(u, 'family.test')?.href;
  it('accepts https URLs on the domain and its subdomains', () => {
    expect(ok('https://family.test/')).toBe('https://family.test/');
    expect(ok('https://photos.family.test:8443/album?id=1')).toBe('https://photos.family.test:8443/album?id=1');
    expect(ok('https://a.b.FAMILY.test/x')).toBeDefined();
  });
  it.each([
    'https://evil.example/',
    'https://evilfamily.test/',
    'https://family.test.evil.example/',
    'http://photos.family.test/',
    'https://user:pw@photos.family.test/',
    '//evil.example/',
    '/relative',
    'javascript:alert(1)',
    '',
  ])('refuses %s', (u) => {
    expect(ok(u)).toBeUndefined();
  });
  it('rebuilds the original URL from the gateway headers', () => {
    expect(forwardedUrl({ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'photos.family.test', 'x-forwarded-uri': '/a?b=1' })).toBe('https://photos.family.test/a?b=1');
    expect(forwardedUrl({ 'x-forwarded-uri': '/a' })).toBeUndefined();
  });
});

describe('session cookie', () => {
  const key = cookieKey('x'.repeat(32));
  const session = { sub: 'alice', email: 'alice@family.test', roles: ['parents'], exp: Date.now() + 60_000, sx: Date.now() + 3_600_000, rt: 'refresh' };

  it('round-trips, and is opaque (no e-mail or refresh token in clear)', async () => {
    const sealed = await sealSession(session, key);
    expect(sealed).not.toContain('alice');
    expect(Buffer.from(sealed.split('.')[0]!, 'base64url').toString()).toContain('A256GCM');
    expect(await openSession(sealed, key)).toMatchObject({ sub: 'alice', email: 'alice@family.test', roles: ['parents'], rt: 'refresh', exp: session.exp });
  });
  it('a tampered cookie, another key, or a login-flow cookie is not a session', async () => {
    const sealed = await sealSession(session, key);
    const parts = sealed.split('.');
    parts[3] = `${parts[3]![0] === 'A' ? 'B' : 'A'}${parts[3]!.slice(1)}`;
    expect(await openSession(parts.join('.'), key)).toBeUndefined();
    expect(await openSession(sealed, cookieKey('y'.repeat(32)))).toBeUndefined();
    const flow = await sealFlow({ verifier: 'v', state: 's', nonce: 'n', rd: 'https://family.test/' }, key, 60);
    expect(await openSession(flow, key)).toBeUndefined();
    expect(await openFlow(flow, key)).toMatchObject({ state: 's' });
  });
  it('past its absolute end it is gone', async () => {
    const sealed = await sealSession({ ...session, sx: Date.now() - 1000 }, key);
    expect(await openSession(sealed, key)).toBeUndefined();
  });
  it('cookie attributes: the whole domain, Secure, HttpOnly, SameSite=Lax', () => {
    expect(setCookie('familyhub_session', 'v', { domain: 'family.test', path: '/', maxAgeSec: 60 }))
      .toBe('familyhub_session=v; Domain=.family.test; Path=/; Max-Age=60; Secure; HttpOnly; SameSite=Lax');
    expect(parseCookies('a=1; familyhub_session=xyz; b=2').get('familyhub_session')).toBe('xyz');
  });
});
