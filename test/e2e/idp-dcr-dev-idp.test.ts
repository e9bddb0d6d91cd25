// The DCR adapter end to end against the development IdP (oidc-provider):
// register, read, update, rotate, delete — and the registered client can log
// a family member in.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { DcrAdapter } from '../../src/idp/dcr/adapter.js';
import { IdpError, specDiff, type ClientSpec } from '../../src/idp/types.js';

let idp: DevIdp;
beforeAll(async () => {
  idp = await startDevIdp();
});
afterAll(async () => {
  await idp?.stop();
});

const want: ClientSpec = {
  clientId: 'notes',
  name: 'Family notes',
  confidential: true,
  redirectUris: ['https://notes.family.test/cb'],
  postLogoutRedirectUris: [],
  webOrigins: [],
  grantTypes: ['authorization_code'],
  pkce: true,
  defaultScopes: ['openid', 'email'],
  optionalScopes: [],
};

describe('DCR adapter against oidc-provider', () => {
  it('refuses to register without the initial access token', async () => {
    const anon = new DcrAdapter({ issuerUrl: idp.issuer });
    await expect(anon.createClient(want)).rejects.toBeInstanceOf(IdpError);
  });

  it('registers, reads, updates, rotates and deletes', async () => {
    const dcr = new DcrAdapter({ issuerUrl: idp.issuer, initialAccessToken: idp.initialAccessToken });
    const health = await dcr.checkHealth();
    expect(health.admin).toBe(true);

    const created = await dcr.createClient(want);
    // The registration access token is the one the IdP accepts for this client's registration, and only that one.
    const read = (token: string) => fetch(created.ref.registrationClientUri!, { headers: { authorization: `Bearer ${token}` } });
    const own = await read(created.ref.registrationAccessToken!);
    expect(own.status).toBe(200);
    expect(((await own.json()) as { client_id: string }).client_id).toBe(created.ref.clientId);
    expect((await read(`${created.ref.registrationAccessToken}x`)).status).toBe(401);
    const observed = await dcr.getClient(created.ref);
    expect(specDiff(dcr.project(want), observed!.spec)).toEqual([]);

    const login = await idp.login({ clientId: created.ref.clientId, clientSecret: created.clientSecret, redirectUri: 'https://notes.family.test/cb', accountId: 'alice', scope: 'openid email' });
    expect(login.claims?.email).toBe('alice@family.test');

    const changed = { ...want, redirectUris: ['https://notes.family.test/cb2'] };
    const ref2 = await dcr.updateClient(observed!.ref, changed);
    // oidc-provider rotates the registration access token on update.
    expect(ref2.registrationAccessToken).not.toBe(observed!.ref.registrationAccessToken);
    expect((await dcr.getClient(ref2))!.spec.redirectUris).toEqual(['https://notes.family.test/cb2']);

    const rotated = await dcr.rotateSecret(ref2, changed);
    expect(rotated.clientSecret).not.toBe(created.clientSecret);
    expect(await dcr.getClient(ref2)).toBeUndefined();
    await expect(
      idp.login({ clientId: created.ref.clientId, clientSecret: created.clientSecret, redirectUri: 'https://notes.family.test/cb2', accountId: 'alice' }),
    ).rejects.toThrow(/scripted login stopped at \/auth with HTTP 400/);
    const relogin = await idp.login({ clientId: rotated.ref.clientId, clientSecret: rotated.clientSecret, redirectUri: 'https://notes.family.test/cb2', accountId: 'bob', scope: 'openid email' });
    expect(relogin.claims?.email).toBe('bob@family.test');

    await dcr.deleteClient(rotated.ref);
    expect(await dcr.getClient(rotated.ref)).toBeUndefined();
  });
});
