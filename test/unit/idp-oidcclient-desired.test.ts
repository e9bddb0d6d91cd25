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
  it('allows path wildcards inside the family domain only', () => {
    expect(validateAgainstHub(parse({ redirectUris: ['https://photos.family.test/*'] }), hub)).toEqual([]);
    const problems = validateAgainstHub(parse({ redirectUris: ['https://attacker.example/*'] }), hub);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/wildcard .*family\.test/);
  });

  it('rejects a look-alike domain', () => {
    expect(validateAgainstHub(parse({ redirectUris: ['https://evilfamily.test/*'] }), hub)).toHaveLength(1);
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
