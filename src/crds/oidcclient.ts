// OIDCClient: an application's registration at the family's identity
// provider. The client secret only ever lands in a Secret; status carries a
// hash of it so changes are visible without exposing it.
import { z } from 'zod';
import { SECURE_ORIGIN_PATTERN, SECURE_URI_PATTERN, celAllMatch, deletionPolicy, dnsSubdomain, duration, familyHubRef, re, scopeList, statusBase } from './common.js';
import { DURATION_PATTERN, parseDuration } from './duration.js';
import { asSet, celRegex, withCel } from './k8s-extensions.js';

export const CLIENT_ID_PATTERN = '^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$';
export const grantTypes = ['authorization_code', 'refresh_token', 'client_credentials'] as const;

const matchesAll = (pattern: string) => (list: string[]) => list.every((u) => new RegExp(pattern).test(u));

const uriList = (field: string, description: string, pattern: string, what: string, noWildcards = false) =>
  withCel(asSet(z.array(z.string().min(1).max(2048).describe(what)).max(32), field), [
    {
      rule: celAllMatch(pattern),
      message: `${field} must use https (http only for localhost or 127.0.0.1), no fragment`,
      check: matchesAll(pattern),
    },
    // Identity providers treat "*" as a wildcard: a redirect URI with one lets
    // any page it matches receive authorization codes (an open redirect).
    ...(noWildcards ? [{
      rule: "self.all(u, !u.contains('*'))",
      message: `${field} must not contain "*": a wildcard redirect URI is an open redirect at the identity provider`,
      check: (list: string[]) => list.every((u) => !u.includes('*')),
    }] : []),
  ]).default([]).describe(description);

/** client_ids Keycloak creates in every realm: adopting one would hand its powers to an app. */
export const RESERVED_CLIENT_IDS = ['account', 'account-console', 'admin-cli', 'broker', 'realm-management', 'security-admin-console'];

export const oidcClientSpecSchema = withCel(z.object({
  familyHubRef: withCel(familyHubRef(), [
    { rule: 'self == oldSelf', message: 'familyHubRef is immutable: the client is registered at that FamilyHub\'s identity provider' },
  ]),
  clientId: withCel(z.string().min(1).max(64).regex(re(CLIENT_ID_PATTERN), 'clientId must be lowercase letters, digits, ".", "_" or "-"'), [
    {
      rule: `!(self in [${RESERVED_CLIENT_IDS.map((c) => `'${c}'`).join(', ')}])`,
      message: `clientId must not be one of the identity provider's built-in clients (${RESERVED_CLIENT_IDS.join(', ')})`,
      check: (v) => !RESERVED_CLIENT_IDS.includes(v),
    },
  ]).optional()
    .describe('client_id to register; defaults to "<namespace>-<name>". Immutable once the client exists. Ignored for oidc-dcr providers that assign their own.'),
  clientType: z.enum(['confidential', 'public']).default('confidential').describe('confidential clients get a secret; public clients (SPAs, native apps) do not.'),
  redirectUris: uriList('redirectUris', 'Allowed redirect URIs after login: https, or http only for localhost/127.0.0.1; no wildcards.', SECURE_URI_PATTERN, 'A redirect URI.', true),
  postLogoutRedirectUris: uriList('postLogoutRedirectUris', 'Allowed redirect URIs after logout: https, or http only for localhost/127.0.0.1; no wildcards.', SECURE_URI_PATTERN, 'A post-logout redirect URI.', true),
  webOrigins: uriList('webOrigins', 'Origins allowed to call the token endpoint from a browser (CORS), e.g. https://app.example.org.', SECURE_ORIGIN_PATTERN, 'An origin (scheme://host[:port]).'),
  grantTypes: asSet(z.array(z.enum(grantTypes).describe('An OAuth 2.0 grant type.')).min(1).max(3), 'grantTypes').default(['authorization_code', 'refresh_token'])
    .describe('Grant types the client may use (default authorization_code, refresh_token).'),
  pkce: z.boolean().default(true).describe('Require PKCE (S256) for the authorization code flow.'),
  defaultScopes: scopeList('Scopes granted by default; defaults to the FamilyHub\'s identity.defaultScopes.', 'defaultScopes').optional(),
  optionalScopes: scopeList('Scopes the client may request in addition.', 'optionalScopes').default([]).describe('Scopes the client may request in addition (default none).'),
  secretName: dnsSubdomain('Secret the client credentials are written to (default "<name>-oidc").').optional(),
  rotation: withCel(z.object({
    generation: z.number().int().min(0).default(0).describe('Bump to rotate the client secret now.'),
    interval: duration('Also rotate the client secret automatically once it is this old (Go duration, e.g. 720h; at least 1m). Unset: only generation bumps rotate.').optional(),
  }).strict(), [
    {
      // Malformed durations already fail their own pattern; the guard keeps
      // this rule from adding a conversion error on top.
      rule: `!has(self.interval) || !self.interval.matches(${celRegex(DURATION_PATTERN)}) || duration(self.interval) >= duration('1m')`,
      message: 'rotation.interval must be at least 1m',
      fieldPath: '.interval',
      check: (r) => r.interval === undefined || parseDuration(r.interval) >= 60_000,
    },
  ]).default({}).describe('Client secret rotation: on demand (generation) and/or on a schedule (interval).'),
  adoptExisting: z.boolean().default(false).describe('Take over a client with the same clientId that already exists at the provider instead of failing.'),
  deletionPolicy: deletionPolicy('Delete', 'the client registration at the identity provider'),
}).strict(), [
  {
    rule: "self.clientType != 'public' || !('client_credentials' in self.grantTypes)",
    message: 'grantTypes: public clients cannot use client_credentials (they have no secret)',
    fieldPath: '.grantTypes',
    check: (s) => s.clientType !== 'public' || !s.grantTypes.includes('client_credentials'),
  },
  {
    rule: "self.clientType != 'public' || self.pkce",
    message: 'pkce must be true for public clients',
    fieldPath: '.pkce',
    check: (s) => s.clientType !== 'public' || s.pkce,
  },
  {
    rule: "!('authorization_code' in self.grantTypes) || size(self.redirectUris) > 0",
    message: 'redirectUris must not be empty when grantTypes contains authorization_code',
    fieldPath: '.redirectUris',
    reason: 'FieldValueRequired',
    check: (s) => !s.grantTypes.includes('authorization_code') || s.redirectUris.length > 0,
  },
  {
    rule: 'has(self.clientId) == has(oldSelf.clientId) && (!has(self.clientId) || self.clientId == oldSelf.clientId)',
    message: 'clientId is immutable: it cannot be added, changed or removed after the client is created',
    fieldPath: '.clientId',
    reason: 'FieldValueForbidden',
  },
]).describe('Desired client registration.');

export const oidcClientStatusSchema = statusBase.extend({
  clientId: z.string().optional().describe('client_id registered at the provider.'),
  secretName: z.string().optional().describe('Secret holding client_id, client_secret (confidential clients) and issuer.'),
  secretHash: z.string().optional().describe('SHA-256 of the current client secret, to notice changes; never the secret itself.'),
  idpClientUuid: z.string().optional().describe('Provider-internal id of the client (Keycloak client UUID or DCR registration id); not a credential.'),
  issuerUrl: z.string().optional().describe('Issuer the client is registered at.'),
  observedRotationGeneration: z.number().int().min(0).optional().describe('spec.rotation.generation the current secret was issued for.'),
  lastRotatedAt: z.string().datetime().optional().describe('When the client secret was last issued or rotated.'),
}).describe('Observed state of the registration.');

export type OIDCClientSpec = z.infer<typeof oidcClientSpecSchema>;
export type OIDCClientSpecInput = z.input<typeof oidcClientSpecSchema>;
export type OIDCClientStatus = z.infer<typeof oidcClientStatusSchema>;
export type GrantType = (typeof grantTypes)[number];
