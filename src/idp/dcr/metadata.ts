// RFC 7591 client metadata <-> ClientSpec. Plain DCR has a single `scope`
// string and no notion of web origins or a PKCE switch, so project() says
// what survives the round trip and the controller only compares that.
import type { ClientSpec, GrantType } from '../types.js';

export interface ClientMetadata {
  client_id?: string;
  client_secret?: string;
  client_name?: string;
  redirect_uris?: string[];
  post_logout_redirect_uris?: string[];
  grant_types?: string[];
  response_types?: string[];
  token_endpoint_auth_method?: string;
  scope?: string;
  registration_access_token?: string;
  registration_client_uri?: string;
  [key: string]: unknown;
}

export function projectForDcr(spec: ClientSpec): ClientSpec {
  return {
    ...spec,
    webOrigins: [],
    pkce: false,
    defaultScopes: [...new Set([...spec.defaultScopes, ...spec.optionalScopes])],
    optionalScopes: [],
    grantTypes: spec.confidential ? spec.grantTypes : spec.grantTypes.filter((g) => g !== 'client_credentials'),
  };
}

export function toMetadata(spec: ClientSpec): ClientMetadata {
  const p = projectForDcr(spec);
  const hasCode = p.grantTypes.includes('authorization_code');
  return {
    client_name: p.name,
    redirect_uris: p.redirectUris,
    post_logout_redirect_uris: p.postLogoutRedirectUris,
    grant_types: p.grantTypes,
    response_types: hasCode ? ['code'] : [],
    token_endpoint_auth_method: p.confidential ? 'client_secret_basic' : 'none',
    ...(p.defaultScopes.length ? { scope: p.defaultScopes.join(' ') } : {}),
  };
}

const KNOWN_GRANTS: GrantType[] = ['authorization_code', 'client_credentials', 'refresh_token'];

export function fromMetadata(md: ClientMetadata): ClientSpec {
  return {
    clientId: md.client_id ?? '',
    name: md.client_name ?? '',
    confidential: (md.token_endpoint_auth_method ?? 'client_secret_basic') !== 'none',
    redirectUris: md.redirect_uris ?? [],
    postLogoutRedirectUris: md.post_logout_redirect_uris ?? [],
    webOrigins: [],
    grantTypes: (md.grant_types ?? ['authorization_code']).filter((g): g is GrantType => (KNOWN_GRANTS as string[]).includes(g)),
    pkce: false,
    defaultScopes: (md.scope ?? '').split(' ').filter(Boolean),
    optionalScopes: [],
  };
}
