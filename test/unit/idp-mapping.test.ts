// Pure mapping logic of the IdP adapters: Keycloak representation and RFC
// 7591 metadata must round-trip a ClientSpec, and the diff must ignore order.
import { describe, expect, it } from 'vitest';
import { fromRepresentation, toRepresentation } from '../../src/idp/keycloak/representation.js';
import { KeycloakAdapter, emailDomainPattern, splitIssuer } from '../../src/idp/keycloak/adapter.js';
import { fromMetadata, projectForDcr, toMetadata } from '../../src/idp/dcr/metadata.js';
import { specDiff, type ClientSpec } from '../../src/idp/types.js';

const spec: ClientSpec = {
  clientId: 'photos',
  name: 'family/photos',
  confidential: true,
  redirectUris: ['https://photos.family.test/cb', 'http://localhost:3000/cb'],
  postLogoutRedirectUris: ['https://photos.family.test/', 'https://photos.family.test/bye'],
  webOrigins: ['https://photos.family.test'],
  grantTypes: ['authorization_code', 'client_credentials'],
  pkce: true,
  defaultScopes: ['openid', 'email', 'profile'],
  optionalScopes: ['phone'],
  owner: 'family/photos',
};

const keycloak = new KeycloakAdapter({ issuerUrl: 'http://127.0.0.1:1/realms/family', credentials: { kind: 'password', username: 'u', password: 'p' } });

describe('Keycloak representation', () => {
  it('round-trips a spec, with openid dropped and Keycloak-managed scopes ignored', () => {
    const rep = toRepresentation(spec);
    expect(rep.defaultClientScopes).toEqual(['basic', 'email', 'profile']);
    expect(rep.attributes?.['post.logout.redirect.uris']).toBe('https://photos.family.test/##https://photos.family.test/bye');
    expect(rep.serviceAccountsEnabled).toBe(true);
    expect(rep.attributes?.['use.refresh.tokens']).toBe('false');
    // What Keycloak returns: it links service_account itself and reorders lists.
    const back = fromRepresentation({ ...rep, defaultClientScopes: ['service_account', 'profile', 'basic', 'email'], redirectUris: [...rep.redirectUris!].reverse() });
    expect(back.owner).toBe('family/photos');
    expect(back.mappersPresent).toBe(true);
    expect(specDiff(keycloak.project(spec), back.spec)).toEqual([]);
  });

  it('sees a hand edit as drift and a missing mapper as extra drift', () => {
    const rep = toRepresentation(spec);
    const edited = fromRepresentation({ ...rep, publicClient: true, redirectUris: ['https://evil.example/cb'], protocolMappers: rep.protocolMappers!.slice(1) });
    expect(specDiff(keycloak.project(spec), edited.spec).sort()).toEqual(['confidential', 'redirectUris']);
    expect(edited.mappersPresent).toBe(false);
  });

  it('never enables service accounts on a public client', () => {
    const pub = { ...spec, confidential: false };
    expect(toRepresentation(pub).serviceAccountsEnabled).toBe(false);
    expect(keycloak.project(pub).grantTypes).toEqual(['authorization_code']);
  });

  it('splits the issuer into server and realm, and refuses a non-realm issuer', () => {
    expect(splitIssuer('https://id.family.test/auth/realms/home')).toEqual({ baseUrl: 'https://id.family.test/auth', realm: 'home' });
    expect(() => splitIssuer('https://id.family.test/')).toThrow(/realms/);
  });
});

describe('e-mail domain pattern', () => {
  const re = new RegExp(emailDomainPattern(['family.test', 'grand-parents.example']));
  it('accepts family addresses only', () => {
    expect(re.test('alice@family.test')).toBe(true);
    expect(re.test('granny@grand-parents.example')).toBe(true);
    expect(re.test('mallory@outsider.example')).toBe(false);
    expect(re.test('mallory@family.test.evil.example')).toBe(false);
    expect(re.test('mallory@familyXtest')).toBe(false);
    expect(re.test('a@b@family.test')).toBe(false);
  });
});

describe('DCR metadata', () => {
  it('round-trips what RFC 7591 can carry', () => {
    const md = toMetadata(spec);
    expect(md.token_endpoint_auth_method).toBe('client_secret_basic');
    expect(md.response_types).toEqual(['code']);
    expect(md.scope).toBe('openid email profile phone');
    const back = fromMetadata({ ...md, client_id: 'generated-id' });
    expect(specDiff(projectForDcr(spec), back)).toEqual([]);
    expect(back.clientId).toBe('generated-id');
  });

  it('registers public clients without a secret and without client_credentials', () => {
    const md = toMetadata({ ...spec, confidential: false });
    expect(md.token_endpoint_auth_method).toBe('none');
    expect(md.grant_types).toEqual(['authorization_code']);
  });

  it('notices a changed redirect URI', () => {
    const back = fromMetadata({ ...toMetadata(spec), redirect_uris: ['https://photos.family.test/other'] });
    expect(specDiff(projectForDcr(spec), back)).toEqual(['redirectUris']);
  });
});
