// Any IdP with OpenID Dynamic Client Registration: RFC 7591 to register
// (through openid-client, which also does discovery) and RFC 7592 to read,
// update and delete with the registration access token. Works against
// oidc-provider and Keycloak's openid-connect registration endpoint.
import * as oidc from 'openid-client';
import { idpFetch } from '../http.js';
import { IdpError, IdpUnreachableError, type ClientRef, type ClientSpec, type ClientWithSecret, type IdpAdapter, type IdpHealth, type ObservedClient } from '../types.js';
import { fromMetadata, projectForDcr, toMetadata, type ClientMetadata } from './metadata.js';

export interface DcrAdapterConfig {
  issuerUrl: string;
  /** RFC 7591 initial access token, when the registration endpoint requires one. */
  initialAccessToken?: string;
}

export class DcrAdapter implements IdpAdapter {
  readonly kind = 'oidc-dcr' as const;
  readonly scopeSemantics = 'superset' as const;
  readonly issuer: string;
  /**
   * Some servers (Keycloak) treat `openid` as protocol-level and refuse it in
   * a registration's `scope`; others (oidc-provider) require it there. Learnt
   * from the first refusal and remembered for this adapter.
   */
  private openidImplicit = false;

  constructor(private readonly cfg: DcrAdapterConfig) {
    this.issuer = cfg.issuerUrl.replace(/\/$/, '');
  }

  private get insecure(): boolean {
    return this.issuer.startsWith('http://');
  }

  async checkHealth(): Promise<IdpHealth> {
    const { body: meta } = await idpFetch<{ issuer?: string; registration_endpoint?: string; scopes_supported?: string[] }>(
      'dcr discovery',
      `${this.issuer}/.well-known/openid-configuration`,
    );
    if (meta.issuer !== this.issuer) return { discovery: false, admin: false, message: `discovery names issuer ${meta.issuer}, expected ${this.issuer}` };
    if (!meta.registration_endpoint) return { discovery: true, admin: false, message: 'IdP does not advertise a registration_endpoint' };
    return { discovery: true, admin: true, message: `registration endpoint ${meta.registration_endpoint} advertised`, knownScopes: meta.scopes_supported };
  }

  project(spec: ClientSpec): ClientSpec {
    const p = projectForDcr(spec);
    return this.openidImplicit ? { ...p, defaultScopes: p.defaultScopes.filter((s) => s !== 'openid') } : p;
  }

  private metadataFor(spec: ClientSpec) {
    return toMetadata(this.project(spec));
  }

  /** Runs `fn`; on a scope refusal while `openid` was sent, retries once without it. */
  private async withScopeFallback<T>(spec: ClientSpec, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const scopeRefused = err instanceof IdpError && [400, 403].includes(err.status) && /scope/i.test(err.message);
      if (!scopeRefused || this.openidImplicit || !this.project(spec).defaultScopes.includes('openid')) throw err;
      this.openidImplicit = true;
      return fn();
    }
  }

  private async manage(operation: string, ref: ClientRef, method: string, body?: unknown) {
    if (!ref.registrationClientUri || !ref.registrationAccessToken) {
      throw new IdpError(400, operation, 'no registration access token stored for this client; it cannot be managed through DCR');
    }
    return idpFetch<ClientMetadata>(operation, ref.registrationClientUri, {
      method,
      headers: { authorization: `Bearer ${ref.registrationAccessToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  }

  /** Servers may rotate the registration access token on any management call (Keycloak does). */
  private nextRef(ref: ClientRef, md: ClientMetadata): ClientRef {
    return {
      clientId: md.client_id ?? ref.clientId,
      registrationClientUri: md.registration_client_uri ?? ref.registrationClientUri,
      registrationAccessToken: md.registration_access_token ?? ref.registrationAccessToken,
    };
  }

  async getClient(ref: ClientRef): Promise<ObservedClient | undefined> {
    try {
      const { body } = await this.manage(`dcr read client ${ref.clientId}`, ref, 'GET');
      return { ref: this.nextRef(ref, body), spec: fromMetadata(body), clientSecret: body.client_secret };
    } catch (err) {
      // RFC 7592 §2: an unknown client is answered with 401 (and 404 by some servers).
      if (err instanceof IdpError && (err.status === 401 || err.status === 404)) return undefined;
      throw err;
    }
  }

  async createClient(spec: ClientSpec): Promise<ClientWithSecret> {
    return this.withScopeFallback(spec, () => this.register(spec));
  }

  private async register(spec: ClientSpec): Promise<ClientWithSecret> {
    let config: oidc.Configuration;
    try {
      config = await oidc.dynamicClientRegistration(new URL(this.issuer), this.metadataFor(spec) as Partial<oidc.ClientMetadata>, undefined, {
        initialAccessToken: this.cfg.initialAccessToken,
        ...(this.insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
      });
    } catch (err) {
      throw classify(`dcr register ${spec.name}`, err);
    }
    const md = config.clientMetadata() as ClientMetadata;
    return {
      ref: { clientId: md.client_id!, registrationClientUri: md.registration_client_uri, registrationAccessToken: md.registration_access_token },
      clientSecret: md.client_secret,
    };
  }

  async updateClient(ref: ClientRef, spec: ClientSpec): Promise<ClientRef> {
    // RFC 7592 §2.2: the body replaces all metadata and must repeat client_id.
    return this.withScopeFallback(spec, async () => {
      const { body } = await this.manage(`dcr update client ${ref.clientId}`, ref, 'PUT', { ...this.metadataFor(spec), client_id: ref.clientId });
      return this.nextRef(ref, body);
    });
  }

  async deleteClient(ref: ClientRef): Promise<void> {
    try {
      await this.manage(`dcr delete client ${ref.clientId}`, ref, 'DELETE');
    } catch (err) {
      if (err instanceof IdpError && (err.status === 401 || err.status === 404)) return;
      throw err;
    }
  }

  async readSecret(ref: ClientRef): Promise<string | undefined> {
    const { body } = await this.manage(`dcr read client ${ref.clientId}`, ref, 'GET');
    return body.client_secret;
  }

  /** Plain DCR gives no say over who may log in. */
  async enforceEmailDomains(): Promise<'unsupported'> {
    return 'unsupported';
  }

  /**
   * RFC 7592 has no "new secret" operation, so rotation registers a fresh
   * client with the same metadata and deletes the old one: the old secret
   * stops working and the client id changes with it.
   */
  async rotateSecret(ref: ClientRef, spec: ClientSpec): Promise<ClientWithSecret> {
    const fresh = await this.createClient(spec);
    await this.deleteClient(ref);
    return fresh;
  }
}

function classify(operation: string, err: unknown): Error {
  if (err instanceof oidc.ResponseBodyError) return new IdpError(err.status, operation, `${err.error}${err.error_description ? ` ${err.error_description}` : ''}`);
  if (err instanceof oidc.ClientError && err.cause instanceof Response) return new IdpError(err.cause.status, operation, err.message);
  if (err instanceof TypeError || (err instanceof Error && /fetch failed|ECONNREFUSED|timed? ?out/i.test(`${err.message} ${String(err.cause ?? '')}`))) {
    return new IdpUnreachableError(operation, err);
  }
  return new IdpError(0, operation, err instanceof Error ? err.message : String(err));
}
