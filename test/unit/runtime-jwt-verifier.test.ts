// The verifier against a real HTTP issuer endpoint (discovery + JWKS served
// on loopback, tokens signed with real keys). The e2e tests use the
// oidc-provider based development IdP; this file covers what that IdP cannot
// be asked to do: rotate keys, sign with a disallowed algorithm, set nbf.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJwtVerifier, type TokenVerifier } from '../../src/runtime-services/base/jwt/verifier.js';
import { AuthError } from '../../src/runtime-services/base/jwt/principal.js';

let server: http.Server;
let issuer: string;
let published: JWK[] = [];
let jwksFetches = 0;

async function newKey(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

function sign(key: { kid: string; privateKey: CryptoKey }, claims: Record<string, unknown> = {}, opts: { exp?: number; nbf?: number; aud?: string; iss?: string } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ email: 'bob@family.test', email_verified: true, groups: ['parents'], ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setSubject('bob')
    .setIssuer(opts.iss ?? issuer)
    .setAudience(opts.aud ?? 'chat')
    .setIssuedAt(now)
    .setExpirationTime(opts.exp ?? now + 60);
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
  return jwt.sign(key.privateKey);
}

async function rejection(verifier: TokenVerifier, token: string): Promise<AuthError> {
  try {
    await verifier.verify(token);
  } catch (err) {
    return err as AuthError;
  }
  throw new Error('token was accepted');
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') return res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    if (req.url === '/jwks') {
      jwksFetches++;
      return res.end(JSON.stringify({ keys: published }));
    }
    res.statusCode = 404;
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const verifierFor = (algorithms = ['ES256', 'RS256']) =>
  createJwtVerifier({ issuer, audience: 'chat', algorithms, clockToleranceSec: 5, allowedDomains: ['family.test'], jwksCacheMaxAgeMs: 600_000 });

describe('JWT verifier', () => {
  it('accepts a valid token and picks up a rotated key without a restart', async () => {
    const k1 = await newKey('k1');
    published = [k1.jwk];
    const verifier = verifierFor();
    expect(await verifier.verify(await sign(k1))).toEqual({ subject: 'bob', email: 'bob@family.test', roles: ['parents'], expiresAt: expect.any(Number) });
    const fetchesBefore = jwksFetches;
    await verifier.verify(await sign(k1));
    expect(jwksFetches).toBe(fetchesBefore); // cached

    // Rotation: the IdP publishes k2 and drops k1. jose refetches on an
    // unknown kid once its 5 s cool-down has passed.
    const k2 = await newKey('k2');
    published = [k2.jwk];
    await new Promise((r) => setTimeout(r, 5100));
    expect((await verifier.verify(await sign(k2))).email).toBe('bob@family.test');
    expect(jwksFetches).toBeGreaterThan(fetchesBefore);
  }, 15_000);

  it('refuses algorithms outside the allowlist, including HS256 with the public key as secret', async () => {
    const k = await newKey('k3');
    published = [k.jwk];
    expect((await rejection(verifierFor(['RS256']), await sign(k))).kind).toBe('unauthenticated');
    const hs = await new SignJWT({ email: 'bob@family.test', email_verified: true })
      .setProtectedHeader({ alg: 'HS256', kid: 'k3' }).setSubject('bob').setIssuer(issuer).setAudience('chat').setExpirationTime('1m')
      .sign(new TextEncoder().encode(JSON.stringify(k.jwk)));
    expect((await rejection(verifierFor(), hs)).message).toMatch(/token rejected/);
  });

  it('applies the leeway to exp and nbf, and checks iss and aud', async () => {
    const k = await newKey('k4');
    published = [k.jwk];
    const v = verifierFor();
    const now = Math.floor(Date.now() / 1000);
    await expect(v.verify(await sign(k, {}, { exp: now - 2 }))).resolves.toBeTruthy(); // within 5 s leeway
    expect((await rejection(v, await sign(k, {}, { exp: now - 30 }))).message).toBe('token expired');
    expect((await rejection(v, await sign(k, {}, { nbf: now + 60 }))).message).toMatch(/nbf/);
    expect((await rejection(v, await sign(k, {}, { aud: 'audit' }))).message).toMatch(/aud/);
    expect((await rejection(v, await sign(k, {}, { iss: 'http://elsewhere' }))).message).toMatch(/iss/);
    const outsider = await rejection(v, await sign(k, { email: 'mallory@outsider.example' }));
    expect(outsider.kind).toBe('forbidden');
  });
});
