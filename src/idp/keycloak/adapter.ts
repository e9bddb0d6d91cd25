// Keycloak through its admin REST API: full control of client settings,
// protocol mappers and secrets, which DCR cannot offer.
import { idpFetch } from '../http.js';
import { IdpError, type ClientRef, type ClientSpec, type ClientWithSecret, type IdpAdapter, type IdpHealth, type ObservedClient } from '../types.js';
import { KeycloakAdminSession, type KeycloakAdminCredentials } from './admin-session.js';
import { KEYCLOAK_MANAGED_SCOPES, fromRepresentation, keycloakScopes, toRepresentation, type ClientRep, type ProtocolMapperRep } from './representation.js';

export interface KeycloakAdapterConfig {
  /** Issuer of the realm, e.g. http://127.0.0.1:8080/realms/family */
  issuerUrl: string;
  credentials: KeycloakAdminCredentials;
  /** Realm the admin credentials belong to; default master. */
  adminRealm?: string;
}

export function splitIssuer(issuerUrl: string): { baseUrl: string; realm: string } {
  const m = /^(.*)\/realms\/([^/]+)\/?$/.exec(issuerUrl);
  if (!m) throw new Error(`keycloak issuer URL ${issuerUrl} does not end in /realms/<realm>`);
  return { baseUrl: m[1]!, realm: decodeURIComponent(m[2]!) };
}

export class KeycloakAdapter implements IdpAdapter {
  readonly kind = 'keycloak' as const;
  readonly scopeSemantics = 'exact' as const;
  readonly issuer: string;
  private readonly baseUrl: string;
  private readonly realm: string;
  private readonly session: KeycloakAdminSession;

  constructor(cfg: KeycloakAdapterConfig) {
    this.issuer = cfg.issuerUrl.replace(/\/$/, '');
    ({ baseUrl: this.baseUrl, realm: this.realm } = splitIssuer(this.issuer));
    this.session = new KeycloakAdminSession(this.baseUrl, cfg.adminRealm ?? 'master', cfg.credentials);
  }

  private get adminBase(): string {
    return `${this.baseUrl}/admin/realms/${encodeURIComponent(this.realm)}`;
  }

  /** Admin call with one retry on 401, since the cached token may have been revoked. */
  private async admin<T>(operation: string, method: string, path: string, body?: unknown, okStatuses?: number[]) {
    for (let attempt = 0; ; attempt++) {
      const token = await this.session.accessToken();
      try {
        return await idpFetch<T>(`keycloak ${operation}`, `${this.adminBase}${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          body: body === undefined ? undefined : JSON.stringify(body),
          okStatuses,
        });
      } catch (err) {
        if (attempt === 0 && err instanceof IdpError && err.status === 401) {
          this.session.invalidate();
          continue;
        }
        throw err;
      }
    }
  }

  async checkHealth(): Promise<IdpHealth> {
    const { body: meta } = await idpFetch<{ issuer?: string }>('keycloak discovery', `${this.issuer}/.well-known/openid-configuration`);
    if (meta.issuer !== this.issuer) {
      return { discovery: false, admin: false, message: `discovery names issuer ${meta.issuer}, expected ${this.issuer}` };
    }
    const { body: scopes } = await this.admin<{ name: string }[]>('list client scopes', 'GET', '/client-scopes');
    return {
      discovery: true,
      admin: true,
      message: `realm ${this.realm} reachable with admin access (${scopes.length} client scopes)`,
      knownScopes: ['openid', ...scopes.map((s) => s.name)],
    };
  }

  project(spec: ClientSpec): ClientSpec {
    const grantTypes = spec.confidential ? spec.grantTypes : spec.grantTypes.filter((g) => g !== 'client_credentials');
    return { ...spec, grantTypes, defaultScopes: keycloakScopes(spec.defaultScopes), optionalScopes: keycloakScopes(spec.optionalScopes) };
  }

  private async find(clientId: string): Promise<ClientRep | undefined> {
    const { body } = await this.admin<ClientRep[]>(`find client ${clientId}`, 'GET', `/clients?clientId=${encodeURIComponent(clientId)}&search=false`);
    return body.find((c) => c.clientId === clientId);
  }

  private async require(clientId: string): Promise<ClientRep & { id: string }> {
    const rep = await this.find(clientId);
    if (!rep?.id) throw new IdpError(404, `keycloak client ${clientId}`, 'client not found in realm');
    return rep as ClientRep & { id: string };
  }

  async getClient(ref: ClientRef): Promise<ObservedClient | undefined> {
    const rep = await this.find(ref.clientId);
    if (!rep) return undefined;
    const { spec, owner, mappersPresent } = fromRepresentation(rep);
    return { ref: { clientId: rep.clientId }, spec, owner, clientSecret: rep.publicClient ? undefined : rep.secret, extraDrift: mappersPresent ? [] : ['protocolMappers'] };
  }

  async createClient(spec: ClientSpec): Promise<ClientWithSecret> {
    const want = toRepresentation(spec);
    const { headers } = await this.admin(`create client ${spec.clientId}`, 'POST', '/clients', want);
    // The Location header names the new client, so one read returns its
    // scopes and secret without another search by clientId.
    const id = headers.get('location')?.split('/').pop();
    const created = id
      ? (await this.admin<ClientRep & { id: string }>(`read client ${spec.clientId}`, 'GET', `/clients/${id}`)).body
      : await this.require(spec.clientId);
    await this.syncScopes(created, 'default', created.defaultClientScopes ?? [], want.defaultClientScopes ?? []);
    await this.syncScopes(created, 'optional', created.optionalClientScopes ?? [], want.optionalClientScopes ?? []);
    const clientSecret = spec.confidential ? (created.secret ?? (await this.readSecret({ clientId: spec.clientId }))) : undefined;
    return { ref: { clientId: spec.clientId }, clientSecret };
  }

  async updateClient(ref: ClientRef, spec: ClientSpec): Promise<ClientRef> {
    const current = await this.require(ref.clientId);
    const want = toRepresentation({ ...spec, clientId: ref.clientId });
    // PUT ignores scope and mapper lists, so those are converged separately.
    const { defaultClientScopes, optionalClientScopes, protocolMappers, ...plain } = want;
    await this.admin(`update client ${ref.clientId}`, 'PUT', `/clients/${current.id}`, { ...plain, id: current.id });
    await this.syncScopes(current, 'default', current.defaultClientScopes ?? [], defaultClientScopes ?? []);
    await this.syncScopes(current, 'optional', current.optionalClientScopes ?? [], optionalClientScopes ?? []);
    await this.syncMappers(current, current.protocolMappers ?? [], protocolMappers ?? []);
    return { clientId: ref.clientId };
  }

  private async syncScopes(client: ClientRep & { id: string }, which: 'default' | 'optional', have: string[], want: string[]) {
    const toAdd = want.filter((s) => !have.includes(s) && !KEYCLOAK_MANAGED_SCOPES.includes(s));
    const toRemove = have.filter((s) => !want.includes(s) && !KEYCLOAK_MANAGED_SCOPES.includes(s));
    if (!toAdd.length && !toRemove.length) return;
    const { body: all } = await this.admin<{ id: string; name: string }[]>('list client scopes', 'GET', '/client-scopes');
    const idOf = (name: string) => {
      const s = all.find((x) => x.name === name);
      if (!s) throw new IdpError(400, `keycloak client ${client.clientId}`, `realm ${this.realm} has no client scope "${name}"`);
      return s.id;
    };
    for (const s of toRemove) await this.admin(`unlink ${which} scope ${s}`, 'DELETE', `/clients/${client.id}/${which}-client-scopes/${idOf(s)}`, undefined, [404]);
    for (const s of toAdd) await this.admin(`link ${which} scope ${s}`, 'PUT', `/clients/${client.id}/${which}-client-scopes/${idOf(s)}`);
  }

  private async syncMappers(client: ClientRep & { id: string }, have: ProtocolMapperRep[], want: ProtocolMapperRep[]) {
    for (const m of want) {
      const existing = have.find((h) => h.name === m.name);
      if (!existing) {
        await this.admin(`add mapper ${m.name}`, 'POST', `/clients/${client.id}/protocol-mappers/models`, m);
      } else if (existing.protocolMapper !== m.protocolMapper || JSON.stringify(sortKeys(existing.config)) !== JSON.stringify(sortKeys({ ...existing.config, ...m.config }))) {
        await this.admin(`update mapper ${m.name}`, 'PUT', `/clients/${client.id}/protocol-mappers/models/${existing.id}`, { ...m, id: existing.id });
      }
    }
  }

  /**
   * The realm's user profile validates `email` against the family's domains.
   * Keycloak re-validates the profile at every login and stops accounts
   * that fail it at the "update profile" step, so no token is issued for them.
   */
  async enforceEmailDomains(domains: string[]): Promise<'changed' | 'unchanged'> {
    const { body: profile } = await this.admin<{ attributes: { name: string; validations?: Record<string, unknown> }[] }>('read user profile', 'GET', '/users/profile');
    const email = profile.attributes.find((a) => a.name === 'email');
    if (!email) throw new IdpError(500, 'keycloak user profile', 'realm user profile has no email attribute');
    const want = { pattern: emailDomainPattern(domains), 'error-message': EMAIL_DOMAIN_ERROR };
    if (JSON.stringify(email.validations?.pattern) === JSON.stringify(want)) return 'unchanged';
    email.validations = { ...(email.validations ?? {}), pattern: want };
    await this.admin('update user profile', 'PUT', '/users/profile', profile);
    return 'changed';
  }

  async deleteClient(ref: ClientRef): Promise<void> {
    const rep = await this.find(ref.clientId);
    if (!rep?.id) return;
    await this.admin(`delete client ${ref.clientId}`, 'DELETE', `/clients/${rep.id}`, undefined, [404]);
  }

  async readSecret(ref: ClientRef): Promise<string | undefined> {
    const rep = await this.require(ref.clientId);
    if (rep.publicClient) return undefined;
    const { body } = await this.admin<{ value?: string }>(`read secret of ${ref.clientId}`, 'GET', `/clients/${rep.id}/client-secret`);
    return body.value;
  }

  async rotateSecret(ref: ClientRef, _spec: ClientSpec): Promise<ClientWithSecret> {
    const rep = await this.require(ref.clientId);
    const { body } = await this.admin<{ value?: string }>(`rotate secret of ${ref.clientId}`, 'POST', `/clients/${rep.id}/client-secret`);
    return { ref: { clientId: ref.clientId }, clientSecret: body.value };
  }
}

export const EMAIL_DOMAIN_ERROR = 'familyhub-email-domain-not-allowed';

/** Anchored regex accepting addresses in exactly these domains (Java regex syntax). */
export function emailDomainPattern(domains: string[]): string {
  const alts = [...domains].sort().map((d) => d.replace(/[.\\^$|?*+()[\]{}-]/g, (c) => `\\${c}`));
  return `^[^@\\s]+@(${alts.join('|')})$`;
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

