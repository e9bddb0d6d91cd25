// The one interface the OIDCClient controller sees. Each IdP family (Keycloak
// admin API, generic RFC 7591/7592 registration, later Zitadel or Authentik)
// implements it in its own folder; nothing outside src/idp knows their wire
// formats.

export type IdpKind = 'keycloak' | 'oidc-dcr';

export type GrantType = 'authorization_code' | 'client_credentials' | 'refresh_token';

/** Desired client settings, normalized so two equal clients compare equal. */
export interface ClientSpec {
  /** Requested client id. DCR servers may assign their own; see ClientRef.clientId. */
  clientId: string;
  name: string;
  confidential: boolean;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  webOrigins: string[];
  grantTypes: GrantType[];
  /** Require PKCE (S256) on the authorization code flow. */
  pkce: boolean;
  defaultScopes: string[];
  optionalScopes: string[];
  /** Marks the client as ours (namespace/name/uid) where the IdP can store it. */
  owner?: string;
}

/**
 * Where a client lives in the IdP. For DCR, the registration access token is
 * a credential: callers persist the ref in a Secret, never in status.
 */
export interface ClientRef {
  clientId: string;
  registrationClientUri?: string;
  registrationAccessToken?: string;
}

export interface ObservedClient {
  ref: ClientRef;
  spec: ClientSpec;
  /** Owner marker found on the client, if the IdP keeps one. */
  owner?: string;
  /** The client's current secret, when the read returned it. */
  clientSecret?: string;
  /** IdP-specific settings found missing or changed that ClientSpec does not model (e.g. protocol mappers). */
  extraDrift?: string[];
}

export interface ClientWithSecret {
  ref: ClientRef;
  /** Undefined for public clients. */
  clientSecret?: string;
}

export interface IdpHealth {
  discovery: boolean;
  admin: boolean;
  message: string;
  /** Scopes the IdP offers, when it says so; used to reject unknown scopes. */
  knownScopes?: string[];
}

export interface IdpAdapter {
  readonly kind: IdpKind;
  readonly issuer: string;
  /**
   * 'exact': the IdP stores the scope lists as given. 'superset': it may add
   * its own defaults (DCR servers do), so only missing scopes count as drift.
   */
  readonly scopeSemantics: 'exact' | 'superset';
  checkHealth(): Promise<IdpHealth>;
  /** `spec` as this IdP can represent it, so it compares equal to what getClient returns. */
  project(spec: ClientSpec): ClientSpec;
  /** Looks a client up by ref; undefined when the IdP has no such client. */
  getClient(ref: ClientRef): Promise<ObservedClient | undefined>;
  createClient(spec: ClientSpec): Promise<ClientWithSecret>;
  /** Converges the client to `spec`; returns the ref, which DCR servers may rotate. */
  updateClient(ref: ClientRef, spec: ClientSpec): Promise<ClientRef>;
  /** Deleting a missing client is not an error. */
  deleteClient(ref: ClientRef): Promise<void>;
  /** Current secret, when the IdP can return it (Keycloak can, DCR servers only at registration). */
  readSecret(ref: ClientRef): Promise<string | undefined>;
  /** Issues a new secret; the old one stops working. DCR may change the client id too. */
  rotateSecret(ref: ClientRef, spec: ClientSpec): Promise<ClientWithSecret>;
  /**
   * Makes the IdP itself refuse accounts outside `domains`, where it can.
   * Returns 'changed' | 'unchanged', or 'unsupported' when the IdP offers no
   * way (then only the runtime services' token checks enforce it).
   */
  enforceEmailDomains(domains: string[]): Promise<'changed' | 'unchanged' | 'unsupported'>;
}

/** The IdP answered with an error: carries status and what we were doing. */
export class IdpError extends Error {
  constructor(
    readonly status: number,
    readonly operation: string,
    message: string,
  ) {
    super(`${operation}: ${message}`);
    this.name = 'IdpError';
  }
}

/** The IdP could not be reached at all (connection refused, timeout, DNS). */
export class IdpUnreachableError extends Error {
  constructor(
    readonly operation: string,
    cause: unknown,
  ) {
    super(`${operation}: IdP unreachable (${cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause)})`, { cause });
    this.name = 'IdpUnreachableError';
  }
}

/** Sorted copies of every list, so equality is order-insensitive. */
export function normalizeSpec(spec: ClientSpec): ClientSpec {
  const sorted = (a: string[]) => [...new Set(a)].sort();
  return {
    ...spec,
    redirectUris: sorted(spec.redirectUris),
    postLogoutRedirectUris: sorted(spec.postLogoutRedirectUris),
    webOrigins: sorted(spec.webOrigins),
    grantTypes: sorted(spec.grantTypes) as GrantType[],
    defaultScopes: sorted(spec.defaultScopes),
    optionalScopes: sorted(spec.optionalScopes),
  };
}

/** Field names whose values differ between desired and observed (owner and clientId excluded). */
export function specDiff(desired: ClientSpec, observed: ClientSpec, scopes: 'exact' | 'superset' = 'exact'): string[] {
  const a = normalizeSpec(desired);
  const b = normalizeSpec(observed);
  const keys: (keyof ClientSpec)[] = ['name', 'confidential', 'redirectUris', 'postLogoutRedirectUris', 'webOrigins', 'grantTypes', 'pkce', 'defaultScopes', 'optionalScopes'];
  return keys.filter((k) => {
    if (scopes === 'superset' && (k === 'defaultScopes' || k === 'optionalScopes')) {
      return (a[k] as string[]).some((s) => !(b[k] as string[]).includes(s));
    }
    return JSON.stringify(a[k]) !== JSON.stringify(b[k]);
  });
}
