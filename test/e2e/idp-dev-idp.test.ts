// The development IdP is a real OpenID Provider: tokens come from a real
// grant, are signed with keys published in its JWKS, and dynamic client
// registration works with its initial access token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';

describe('development IdP', () => {
  let idp: DevIdp;
  beforeAll(async () => {
    idp = await startDevIdp({ allowedDomain: 'family.test' });
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it('publishes discovery with DCR enabled', async () => {
    const res = await fetch(`${idp.issuer}/.well-known/openid-configuration`);
    const meta = (await res.json()) as Record<string, unknown>;
    expect(meta.issuer).toBe(idp.issuer);
    expect(meta.registration_endpoint).toBe(`${idp.issuer}/reg`);
  });

  it('has family users on the allowed domain and one outside it', () => {
    const inside = idp.users.filter((u) => u.email.endsWith('@family.test'));
    const outside = idp.users.filter((u) => !u.email.endsWith('@family.test'));
    expect(inside.length).toBeGreaterThanOrEqual(2);
    expect(outside.length).toBe(1);
  });

  it('issues a JWT access token that verifies against its JWKS and carries email and groups', async () => {
    const token = await idp.issueAccessToken({ email: 'bob@family.test', groups: ['parents'], audience: 'chat', expiresInSec: 120 });
    const jwks = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`));
    const { payload } = await jwtVerify(token, jwks, { issuer: idp.issuer, audience: 'chat' });
    expect(payload.email).toBe('bob@family.test');
    expect(payload.email_verified).toBe(true);
    expect(payload.groups).toEqual(['parents']);
    expect(payload.exp! - payload.iat!).toBe(120);
  });

  it('does not verify against the wrong audience', async () => {
    const token = await idp.issueAccessToken({ email: 'mallory@outsider.example', audience: 'https://media.family.test' });
    const jwks = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`));
    await expect(jwtVerify(token, jwks, { issuer: idp.issuer, audience: 'chat' })).rejects.toThrow(/aud/);
    const { payload } = await jwtVerify(token, jwks, { issuer: idp.issuer, audience: 'https://media.family.test' });
    expect(payload.email).toBe('mallory@outsider.example');
  });

  it('refuses registration without the initial access token', async () => {
    const res = await fetch(`${idp.issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['https://app.family.test/cb'] }),
    });
    expect(res.status).toBe(401);
  });

  it('logs a family member in to a dynamically registered client', async () => {
    const reg = await fetch(`${idp.issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${idp.initialAccessToken}` },
      body: JSON.stringify({ redirect_uris: ['https://app.family.test/cb'], grant_types: ['authorization_code'], response_types: ['code'] }),
    });
    expect(reg.status).toBe(201);
    const client = (await reg.json()) as { client_id: string; client_secret: string };
    const result = await idp.login({ clientId: client.client_id, clientSecret: client.client_secret, redirectUri: 'https://app.family.test/cb', accountId: 'alice' });
    expect(result.claims?.sub).toBe('alice');
    expect(result.idToken).toBeTruthy();
  });
});
