// The Keycloak adapter against a real Keycloak: settings land in the realm,
// tokens issued to the client verify against the realm's JWKS and carry the
// e-mail, drift is visible and repaired, rotation revokes the old secret.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { createRealm, startKeycloak, type KeycloakInstance } from '../../hack/local/keycloak.js';
import { clientCredentialsToken, keycloakLogin } from '../../hack/keycloak/login.js';
import { KeycloakAdapter } from '../../src/idp/keycloak/adapter.js';
import { DcrAdapter } from '../../src/idp/dcr/adapter.js';
import { specDiff, type ClientSpec } from '../../src/idp/types.js';
import { jwtClaims } from '../support/jwt.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const REALM = 'family';
let kc: KeycloakInstance;
let issuer: string;
let adapter: KeycloakAdapter;

const spec = (over: Partial<ClientSpec> = {}): ClientSpec => ({
  clientId: 'photos',
  name: 'Family photos',
  confidential: true,
  redirectUris: ['https://photos.family.test/callback'],
  postLogoutRedirectUris: ['https://photos.family.test/'],
  webOrigins: ['https://photos.family.test'],
  grantTypes: ['authorization_code', 'client_credentials'],
  pkce: true,
  defaultScopes: ['openid', 'email', 'profile'],
  optionalScopes: [],
  owner: 'default/photos/uid-1',
  ...over,
});

beforeAll(async () => {
  kc = await startKeycloak();
  await createRealm(kc, REALM, [
    { username: 'alice', email: 'alice@family.test', password: 'alice-pw', groups: ['parents'] },
    { username: 'mallory', email: 'mallory@outsider.example', password: 'mallory-pw' },
  ]);
  issuer = `${kc.baseUrl}/realms/${REALM}`;
  adapter = new KeycloakAdapter({ issuerUrl: issuer, credentials: { kind: 'password', username: kc.adminUser, password: kc.adminPassword } });
});
afterAll(async () => {
  await kc?.stop();
});

describe('Keycloak admin adapter', () => {
  it('reports health from discovery and an admin call', async () => {
    const h = await adapter.checkHealth();
    expect(h.discovery && h.admin).toBe(true);
    expect(h.knownScopes).toEqual(expect.arrayContaining(['openid', 'email', 'profile']));
  });

  it('creates a client with the declared settings and a working secret', async () => {
    const created = await adapter.createClient(spec());
    expect(created.clientSecret).toMatch(/.{16,}/);
    const observed = await adapter.getClient(created.ref);
    expect(observed?.owner).toBe('default/photos/uid-1');
    expect(observed?.extraDrift).toEqual([]);
    expect(specDiff(adapter.project(spec()), observed!.spec)).toEqual([]);

    const tokens = await keycloakLogin({
      issuer, clientId: 'photos', clientSecret: created.clientSecret, redirectUri: 'https://photos.family.test/callback',
      username: 'alice', password: 'alice-pw',
    });
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${issuer}/protocol/openid-connect/certs`)), { issuer });
    expect(payload.email).toBe('alice@family.test');
    expect(payload.groups).toEqual(['parents']);
    expect(payload.azp).toBe('photos');
  });

  it('converges redirect URIs, scopes and repairs hand-made changes', async () => {
    const want = spec({ redirectUris: ['https://photos.family.test/cb2'], optionalScopes: ['phone'] });
    await adapter.updateClient({ clientId: 'photos' }, want);
    let observed = await adapter.getClient({ clientId: 'photos' });
    expect(observed!.spec.redirectUris).toEqual(['https://photos.family.test/cb2']);
    expect(specDiff(adapter.project(want), observed!.spec)).toEqual([]);

    // Someone edits the client in the Keycloak console.
    const token = await kc.adminToken();
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const [rep] = (await (await fetch(`${kc.baseUrl}/admin/realms/${REALM}/clients?clientId=photos`, { headers })).json()) as { id: string }[];
    const put = await fetch(`${kc.baseUrl}/admin/realms/${REALM}/clients/${rep!.id}`, {
      method: 'PUT', headers, body: JSON.stringify({ ...rep, redirectUris: ['https://evil.example/cb'], publicClient: true }),
    });
    expect(put.status).toBe(204);
    observed = await adapter.getClient({ clientId: 'photos' });
    expect(specDiff(adapter.project(want), observed!.spec)).toEqual(expect.arrayContaining(['redirectUris', 'confidential']));

    await adapter.updateClient({ clientId: 'photos' }, want);
    observed = await adapter.getClient({ clientId: 'photos' });
    expect(specDiff(adapter.project(want), observed!.spec)).toEqual([]);
  });

  it('rotates the secret: the old one stops working, the new one works', async () => {
    const old = await adapter.readSecret({ clientId: 'photos' });
    const rotated = await adapter.rotateSecret({ clientId: 'photos' }, spec());
    expect(rotated.clientSecret).not.toBe(old);
    const fresh = await clientCredentialsToken(issuer, 'photos', rotated.clientSecret!);
    expect(jwtClaims(fresh.access_token)).toMatchObject({ iss: issuer, azp: 'photos' });
    await expect(clientCredentialsToken(issuer, 'photos', old!)).rejects.toMatchObject({ error: expect.stringMatching(/unauthorized_client|invalid_client/) });
  });

  it('makes the realm refuse accounts outside the allowed e-mail domains', async () => {
    const login = (username: string) => keycloakLogin({
      issuer, clientId: 'photos', clientSecret: undefined, redirectUri: 'https://photos.family.test/cb2', username, password: `${username}-pw`,
    });
    await adapter.updateClient({ clientId: 'photos' }, spec({ confidential: false, grantTypes: ['authorization_code'], redirectUris: ['https://photos.family.test/cb2'] }));
    expect(jwtClaims((await login('mallory')).access_token)).toMatchObject({ iss: issuer, azp: 'photos' });

    expect(await adapter.enforceEmailDomains(['family.test'])).toBe('changed');
    expect(await adapter.enforceEmailDomains(['family.test'])).toBe('unchanged');
    await expect(login('mallory')).rejects.toThrow(/did not redirect to the client/);
    const { access_token } = await login('alice');
    const { payload } = await jwtVerify(access_token, createRemoteJWKSet(new URL(`${issuer}/protocol/openid-connect/certs`)), { issuer });
    expect(payload.email).toBe('alice@family.test');
  });

  it('deletes the client, and deleting again is not an error', async () => {
    await adapter.deleteClient({ clientId: 'photos' });
    expect(await adapter.getClient({ clientId: 'photos' })).toBeUndefined();
    await adapter.deleteClient({ clientId: 'photos' });
  });

  it('reports an unreachable admin API with context', async () => {
    const down = new KeycloakAdapter({ issuerUrl: 'http://127.0.0.1:1/realms/family', credentials: { kind: 'password', username: 'x', password: 'y' } });
    await expect(down.checkHealth()).rejects.toThrow(/keycloak discovery: IdP unreachable/);
  });
});

describe('DCR adapter against Keycloak client registration', () => {
  it('registers, reads, updates and deletes with the registration access token', async () => {
    const token = await kc.adminToken();
    const iatRes = await fetch(`${kc.baseUrl}/admin/realms/${REALM}/clients-initial-access`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ count: 5, expiration: 600 }),
    });
    const { token: initialAccessToken } = (await iatRes.json()) as { token: string };
    const dcr = new DcrAdapter({ issuerUrl: issuer, initialAccessToken });
    expect((await dcr.checkHealth()).admin).toBe(true);

    const want = spec({ clientId: 'dcr-app', name: 'DCR app', grantTypes: ['authorization_code'], defaultScopes: [] });
    const created = await dcr.createClient(want);
    expect(created.ref.registrationAccessToken).toBeTruthy();
    // The secret DCR handed out is the one Keycloak holds for that client.
    expect(created.clientSecret).toBe(await adapter.readSecret({ clientId: created.ref.clientId }));

    const observed = await dcr.getClient(created.ref);
    expect(observed!.spec.redirectUris).toEqual(want.redirectUris);
    expect(observed!.spec.name).toBe('DCR app');

    const updatedWant = { ...want, redirectUris: ['https://dcr.family.test/cb'] };
    const ref2 = await dcr.updateClient(observed!.ref, updatedWant);
    const again = await dcr.getClient(ref2);
    expect(again!.spec.redirectUris).toEqual(['https://dcr.family.test/cb']);

    await dcr.deleteClient(again!.ref);
    const adminView = await fetch(`${kc.baseUrl}/admin/realms/${REALM}/clients?clientId=${created.ref.clientId}`, { headers: { authorization: `Bearer ${await kc.adminToken()}` } });
    expect(await adminView.json()).toEqual([]);
  });
});
