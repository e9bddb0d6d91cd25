// Translation between our normalized ClientSpec and Keycloak's
// ClientRepresentation. Keycloak spreads one OAuth concept over several
// fields (grant types are flags, post-logout URIs an attribute joined by
// "##"), so the mapping lives in one place and is unit tested both ways.
import type { ClientSpec, GrantType } from '../types.js';

export const OWNER_ATTRIBUTE = 'familyhub.dev/owner';
export const EMAIL_MAPPER = 'familyhub-email';
export const GROUPS_MAPPER = 'familyhub-groups';
/** Scopes Keycloak needs on every client for basic claims (sub, auth_time). */
export const IMPLICIT_DEFAULT_SCOPES = ['basic'];
/** Scopes Keycloak links and unlinks itself (service_account follows serviceAccountsEnabled). */
export const KEYCLOAK_MANAGED_SCOPES = ['service_account'];
/** Scope names that are protocol-level in Keycloak rather than client scopes. */
const PROTOCOL_SCOPES = new Set(['openid']);

export interface ProtocolMapperRep {
  id?: string;
  name: string;
  protocol: string;
  protocolMapper: string;
  config: Record<string, string>;
}

export interface ClientRep {
  id?: string;
  clientId: string;
  name?: string;
  enabled?: boolean;
  protocol?: string;
  publicClient?: boolean;
  bearerOnly?: boolean;
  clientAuthenticatorType?: string;
  redirectUris?: string[];
  webOrigins?: string[];
  standardFlowEnabled?: boolean;
  implicitFlowEnabled?: boolean;
  directAccessGrantsEnabled?: boolean;
  serviceAccountsEnabled?: boolean;
  attributes?: Record<string, string>;
  defaultClientScopes?: string[];
  optionalClientScopes?: string[];
  protocolMappers?: ProtocolMapperRep[];
  secret?: string;
}

export function keycloakScopes(scopes: string[]): string[] {
  return scopes.filter((s) => !PROTOCOL_SCOPES.has(s));
}

export function desiredMappers(): ProtocolMapperRep[] {
  const claimConfig = { 'id.token.claim': 'true', 'access.token.claim': 'true', 'userinfo.token.claim': 'true', 'introspection.token.claim': 'true' };
  return [
    {
      name: EMAIL_MAPPER,
      protocol: 'openid-connect',
      protocolMapper: 'oidc-usermodel-property-mapper',
      config: { ...claimConfig, 'user.attribute': 'email', 'claim.name': 'email', 'jsonType.label': 'String' },
    },
    {
      name: GROUPS_MAPPER,
      protocol: 'openid-connect',
      protocolMapper: 'oidc-group-membership-mapper',
      config: { ...claimConfig, 'claim.name': 'groups', 'full.path': 'false' },
    },
  ];
}

export function toRepresentation(spec: ClientSpec): ClientRep {
  const grants = new Set(spec.grantTypes);
  const attributes: Record<string, string> = {
    'pkce.code.challenge.method': spec.pkce ? 'S256' : '',
    'post.logout.redirect.uris': spec.postLogoutRedirectUris.join('##'),
    'use.refresh.tokens': grants.has('refresh_token') ? 'true' : 'false',
  };
  if (spec.owner) attributes[OWNER_ATTRIBUTE] = spec.owner;
  return {
    clientId: spec.clientId,
    name: spec.name,
    enabled: true,
    protocol: 'openid-connect',
    publicClient: !spec.confidential,
    bearerOnly: false,
    clientAuthenticatorType: 'client-secret',
    redirectUris: spec.redirectUris,
    webOrigins: spec.webOrigins,
    standardFlowEnabled: grants.has('authorization_code'),
    implicitFlowEnabled: false,
    directAccessGrantsEnabled: false,
    // Keycloak only allows service accounts on confidential clients.
    serviceAccountsEnabled: spec.confidential && grants.has('client_credentials'),
    attributes,
    defaultClientScopes: [...new Set([...IMPLICIT_DEFAULT_SCOPES, ...keycloakScopes(spec.defaultScopes)])],
    optionalClientScopes: keycloakScopes(spec.optionalScopes),
    protocolMappers: desiredMappers(),
  };
}

export function fromRepresentation(rep: ClientRep): { spec: ClientSpec; owner?: string; mappersPresent: boolean } {
  const attrs = rep.attributes ?? {};
  const grants: GrantType[] = [];
  if (rep.standardFlowEnabled) grants.push('authorization_code');
  if (rep.serviceAccountsEnabled) grants.push('client_credentials');
  if (attrs['use.refresh.tokens'] !== 'false') grants.push('refresh_token');
  const names = new Set((rep.protocolMappers ?? []).map((m) => m.name));
  return {
    spec: {
      clientId: rep.clientId,
      name: rep.name ?? '',
      confidential: !rep.publicClient,
      redirectUris: rep.redirectUris ?? [],
      postLogoutRedirectUris: (attrs['post.logout.redirect.uris'] ?? '').split('##').filter(Boolean),
      webOrigins: rep.webOrigins ?? [],
      grantTypes: grants,
      pkce: attrs['pkce.code.challenge.method'] === 'S256',
      defaultScopes: (rep.defaultClientScopes ?? []).filter((s) => !IMPLICIT_DEFAULT_SCOPES.includes(s) && !KEYCLOAK_MANAGED_SCOPES.includes(s)),
      optionalScopes: (rep.optionalClientScopes ?? []).filter((s) => !KEYCLOAK_MANAGED_SCOPES.includes(s)),
    },
    owner: attrs[OWNER_ATTRIBUTE],
    mappersPresent: names.has(EMAIL_MAPPER) && names.has(GROUPS_MAPPER),
  };
}
