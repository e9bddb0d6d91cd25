// Checks an OIDCClient gets from its FamilyHub that the CRD schema cannot
// make: wildcards only inside the family's domain, https only off loopback,
// scopes the IdP actually offers.
import { describe, expect, it } from 'vitest';
import { familyHubSpecSchema } from '../../src/crds/familyhub.js';
import { oidcClientSpecSchema } from '../../src/crds/oidcclient.js';
import { desiredClient, unknownScopes, validateAgainstHub } from '../../src/controllers/oidcclient/desired.js';
import type { Hub } from '../../src/platform/hub.js';

const hub: Hub = {
  apiVersion: 'familyhub.dev/v1alpha1',
  kind: 'FamilyHub',
  metadata: { name: 'home', namespace: 'family' },
  spec: familyHubSpecSchema.parse({
    domain: 'family.test',
    allowedEmailDomains: ['family.test'],
    postgres: { host: 'db', database: 'fh', adminCredentialsSecretRef: { name: 'pg' } },
    identity: { kind: 'keycloak', issuerUrl: 'https://id.family.test/realms/home', realm: 'home', adminCredentialsSecretRef: { name: 'kc' }, defaultScopes: ['openid', 'email'] },
    runtime: { image: 'runtime:dev' },
  }),
};
const parse = (spec: Record<string, unknown>) => oidcClientSpecSchema.parse({ familyHubRef: { name: 'home' }, ...spec });
const obj = { metadata: { name: 'photos', namespace: 'family', uid: 'u1' } };

describe('OIDCClient checks against the FamilyHub', () => {
  it('refuses wildcard redirect URIs anywhere, inside the family domain too (open redirect)', () => {
    for (const uri of ['https://photos.family.test/*', 'https://attacker.example/*', 'https://*.family.test/cb']) {
      expect(() => parse({ redirectUris: [uri] }), uri).toThrow(/must not contain|must use https/);
    }
    expect(() => parse({ postLogoutRedirectUris: ['https://photos.family.test/*'] })).toThrow(/postLogoutRedirectUris must not contain/);
  });

  it('accepts an https redirect URI and refuses plain http off loopback', () => {
    expect(validateAgainstHub(parse({ redirectUris: ['https://photos.family.test/cb'] }), hub)).toEqual([]);
    expect(validateAgainstHub(parse({ redirectUris: ['http://localhost:3000/cb'] }), hub)).toEqual([]);
  });

  it('refuses the identity provider\'s built-in client ids', () => {
    expect(() => parse({ clientId: 'admin-cli', redirectUris: ['https://photos.family.test/cb'] })).toThrow(/built-in clients/);
  });

  it('derives client id, scopes and owner from the CR and the hub', () => {
    const d = desiredClient(obj, parse({ redirectUris: ['https://photos.family.test/cb'] }), hub);
    expect(d.clientId).toBe('family-photos');
    expect(d.defaultScopes).toEqual(['openid', 'email']);
    expect(d.owner).toBe('family/photos');
    expect(d.confidential).toBe(true);
    expect(d.pkce).toBe(true);
  });

  it('lists scopes the IdP does not offer', () => {
    const d = desiredClient(obj, parse({ redirectUris: ['https://photos.family.test/cb'], optionalScopes: ['superpowers'] }), hub);
    expect(unknownScopes(d, ['openid', 'email', 'profile'])).toEqual(['superpowers']);
    expect(unknownScopes(d, undefined)).toEqual([]);
  });
});
