// The operator's only way to talk to Vault/OpenBao. Paths and payloads are the
// documented HTTP API shared by HashiCorp Vault and OpenBao (sys/mounts,
// database/*, sys/leases/*, sys/policies/acl, auth/kubernetes/*), carried by
// node-vault. Writes happen only after a read shows a difference.
import { readFileSync } from 'node:fs';
import nodeVault from 'node-vault';
import { toVaultError, VaultRequestError } from './errors.js';

export type VaultAuth =
  | { method: 'token'; token: string }
  | { method: 'kubernetes'; role: string; mountPath: string; /** ServiceAccount JWT; re-read on every login (projected tokens rotate) */ jwt: () => string };

export interface VaultClientOptions {
  address: string;
  auth: VaultAuth;
  caPem?: string;
  timeoutMs?: number;
}

export interface DatabaseConnectionConfig {
  pluginName: string;
  connectionUrl: string;
  username: string;
  password: string;
  allowedRoles: string[];
}

export interface DatabaseRoleConfig {
  dbName: string;
  creationStatements: string[];
  revocationStatements: string[];
  renewStatements?: string[];
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
}

export interface IssuedCredentials {
  username: string;
  password: string;
  leaseId: string;
  leaseDurationSeconds: number;
  renewable: boolean;
}

export interface KubernetesAuthRoleConfig {
  serviceAccountNames: string[];
  namespaces: string[];
  policies: string[];
  ttlSeconds: number;
}

type Json = Record<string, any>;

const trimSlashes = (p: string) => p.replace(/^\/+|\/+$/g, '');

export class VaultClient {
  private readonly client: nodeVault.client;
  private loginExpiresAt = 0;

  constructor(private readonly opts: VaultClientOptions) {
    this.client = nodeVault({
      apiVersion: 'v1',
      endpoint: opts.address,
      token: opts.auth.method === 'token' ? opts.auth.token : undefined,
      requestOptions: opts.caPem ? { ca: opts.caPem } : undefined,
      rpDefaults: { timeout: opts.timeoutMs ?? 5_000 },
    } as nodeVault.VaultOptions);
  }

  get address(): string {
    return this.opts.address;
  }

  private async ensureLogin(force = false): Promise<void> {
    const auth = this.opts.auth;
    if (auth.method !== 'kubernetes') return;
    if (!force && this.client.token && Date.now() < this.loginExpiresAt) return;
    let res: Json;
    try {
      res = await this.client.request({
        path: `/auth/${trimSlashes(auth.mountPath)}/login`,
        method: 'POST',
        json: { role: auth.role, jwt: auth.jwt() },
        timeout: this.opts.timeoutMs ?? 5_000,
      } as nodeVault.RequestOption);
    } catch (err) {
      throw toVaultError('kubernetes login', err);
    }
    this.client.token = res.auth.client_token;
    // Log in again well before the token runs out.
    this.loginExpiresAt = Date.now() + Math.max(5, (res.auth.lease_duration ?? 60) * 0.7) * 1000;
  }

  private async call<T = Json>(operation: string, method: string, path: string, body?: Json): Promise<T> {
    await this.ensureLogin();
    const send = () =>
      this.client.request({ path, method, json: body ?? true, timeout: this.opts.timeoutMs ?? 5_000 } as nodeVault.RequestOption) as Promise<T>;
    try {
      return await send();
    } catch (err) {
      const e = toVaultError(operation, err);
      if (e.forbidden && this.opts.auth.method === 'kubernetes') {
        await this.ensureLogin(true);
        try {
          return await send();
        } catch (err2) {
          throw toVaultError(operation, err2);
        }
      }
      throw e;
    }
  }

  /** Read that maps "not there" to undefined. */
  private async readOptional<T = Json>(operation: string, path: string): Promise<T | undefined> {
    try {
      return await this.call<T>(operation, 'GET', path);
    } catch (err) {
      if (err instanceof VaultRequestError && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  /** Unauthenticated health: throws when unreachable; reports sealed/uninitialized. */
  async health(): Promise<{ initialized: boolean; sealed: boolean; version: string }> {
    try {
      const h = (await this.client.request({ path: '/sys/health?standbyok=true&perfstandbyok=true', method: 'GET', json: true, timeout: this.opts.timeoutMs ?? 5_000 } as nodeVault.RequestOption)) as Json;
      return { initialized: !!h.initialized, sealed: !!h.sealed, version: String(h.version ?? '') };
    } catch (err) {
      throw toVaultError('health', err);
    }
  }

  /** Proves our credentials work (token lookup-self works for any valid token). */
  async checkAuth(): Promise<void> {
    await this.call('token lookup-self', 'GET', '/auth/token/lookup-self');
  }

  async ensureSecretsEngine(mountPath: string, type: string): Promise<boolean> {
    const mounts = await this.call<Json>('list mounts', 'GET', '/sys/mounts');
    const table = (mounts.data ?? mounts) as Json;
    const current = table[`${trimSlashes(mountPath)}/`];
    if (current) {
      if (current.type !== type) throw new VaultRequestError('mount', 400, `mount ${mountPath} exists with type ${current.type}, expected ${type}`);
      return false;
    }
    await this.call('enable secrets engine', 'POST', `/sys/mounts/${trimSlashes(mountPath)}`, { type });
    return true;
  }

  async ensureAuthMethod(mountPath: string, type: string): Promise<boolean> {
    const auths = await this.call<Json>('list auth methods', 'GET', '/sys/auth');
    const table = (auths.data ?? auths) as Json;
    if (table[`${trimSlashes(mountPath)}/`]) return false;
    await this.call('enable auth method', 'POST', `/sys/auth/${trimSlashes(mountPath)}`, { type });
    return true;
  }

  /**
   * Writes database/config/<name> when the stored one differs. Vault never
   * returns the password, so the caller passes a fingerprint of it and we
   * compare that against what we wrote last time in this process.
   */
  async ensureDatabaseConnection(mountPath: string, name: string, cfg: DatabaseConnectionConfig, passwordFingerprint: string): Promise<boolean> {
    const path = `/${trimSlashes(mountPath)}/config/${name}`;
    const current = await this.readOptional<Json>('read database config', path);
    const d = current?.data;
    const same =
      d &&
      d.plugin_name === cfg.pluginName &&
      d.connection_details?.connection_url === cfg.connectionUrl &&
      d.connection_details?.username === cfg.username &&
      sameSet(d.allowed_roles ?? [], cfg.allowedRoles) &&
      this.writtenPasswords.get(path) === passwordFingerprint;
    if (same) return false;
    await this.call('write database config', 'POST', path, {
      plugin_name: cfg.pluginName,
      connection_url: cfg.connectionUrl,
      username: cfg.username,
      password: cfg.password,
      allowed_roles: cfg.allowedRoles,
      verify_connection: true,
    });
    this.writtenPasswords.set(path, passwordFingerprint);
    return true;
  }
  private readonly writtenPasswords = new Map<string, string>();

  /**
   * Writes the role when it differs. `opts.create`: the caller knows it is
   * provisioning from scratch, so the comparison read would only cost a round
   * trip (the write is idempotent either way).
   */
  async ensureDatabaseRole(mountPath: string, role: string, cfg: DatabaseRoleConfig, opts: { create?: boolean } = {}): Promise<boolean> {
    const path = `/${trimSlashes(mountPath)}/roles/${role}`;
    const d = opts.create ? undefined : (await this.readOptional<Json>('read database role', path))?.data;
    const same =
      d &&
      d.db_name === cfg.dbName &&
      sameList(d.creation_statements, cfg.creationStatements) &&
      sameList(d.revocation_statements, cfg.revocationStatements) &&
      sameList(d.renew_statements ?? [], cfg.renewStatements ?? []) &&
      Number(d.default_ttl) === cfg.defaultTtlSeconds &&
      Number(d.max_ttl) === cfg.maxTtlSeconds;
    if (same) return false;
    await this.call('write database role', 'POST', path, {
      db_name: cfg.dbName,
      creation_statements: cfg.creationStatements,
      revocation_statements: cfg.revocationStatements,
      renew_statements: cfg.renewStatements ?? [],
      default_ttl: cfg.defaultTtlSeconds,
      max_ttl: cfg.maxTtlSeconds,
    });
    return true;
  }

  async deleteDatabaseRole(mountPath: string, role: string): Promise<void> {
    await this.call('delete database role', 'DELETE', `/${trimSlashes(mountPath)}/roles/${role}`);
  }

  async issueCredentials(mountPath: string, role: string): Promise<IssuedCredentials> {
    const r = await this.call<Json>('issue credentials', 'GET', `/${trimSlashes(mountPath)}/creds/${role}`);
    return {
      username: r.data.username,
      password: r.data.password,
      leaseId: r.lease_id,
      leaseDurationSeconds: r.lease_duration,
      renewable: !!r.renewable,
    };
  }

  async renewLease(leaseId: string, incrementSeconds: number): Promise<{ leaseDurationSeconds: number }> {
    const r = await this.call<Json>('renew lease', 'PUT', '/sys/leases/renew', { lease_id: leaseId, increment: incrementSeconds });
    return { leaseDurationSeconds: r.lease_duration };
  }

  /** Revokes; a lease Vault no longer knows (expired, lost in a restart) counts as revoked. */
  async revokeLease(leaseId: string): Promise<void> {
    try {
      await this.call('revoke lease', 'PUT', '/sys/leases/revoke', { lease_id: leaseId });
    } catch (err) {
      if (err instanceof VaultRequestError && err.notFound) return;
      throw err;
    }
  }

  async lookupLease(leaseId: string): Promise<{ expireTime: string; ttlSeconds: number } | undefined> {
    try {
      const r = await this.call<Json>('lookup lease', 'PUT', '/sys/leases/lookup', { lease_id: leaseId });
      return { expireTime: r.data.expire_time, ttlSeconds: r.data.ttl };
    } catch (err) {
      if (err instanceof VaultRequestError && err.notFound) return undefined;
      throw err;
    }
  }

  async ensurePolicy(name: string, hcl: string): Promise<boolean> {
    const cur = (await this.readOptional<Json>('read policy', `/sys/policies/acl/${name}`))?.data;
    if (cur?.policy === hcl) return false;
    await this.call('write policy', 'PUT', `/sys/policies/acl/${name}`, { policy: hcl });
    return true;
  }

  async deletePolicy(name: string): Promise<void> {
    await this.call('delete policy', 'DELETE', `/sys/policies/acl/${name}`);
  }

  async ensureKubernetesAuthRole(mountPath: string, name: string, cfg: KubernetesAuthRoleConfig): Promise<boolean> {
    const path = `/auth/${trimSlashes(mountPath)}/role/${name}`;
    const d = (await this.readOptional<Json>('read kubernetes auth role', path))?.data;
    const same =
      d &&
      sameSet(d.bound_service_account_names ?? [], cfg.serviceAccountNames) &&
      sameSet(d.bound_service_account_namespaces ?? [], cfg.namespaces) &&
      sameSet(d.token_policies ?? [], cfg.policies) &&
      Number(d.token_ttl) === cfg.ttlSeconds;
    if (same) return false;
    await this.call('write kubernetes auth role', 'POST', path, {
      bound_service_account_names: cfg.serviceAccountNames,
      bound_service_account_namespaces: cfg.namespaces,
      token_policies: cfg.policies,
      token_ttl: cfg.ttlSeconds,
    });
    return true;
  }

  async deleteKubernetesAuthRole(mountPath: string, name: string): Promise<void> {
    await this.call('delete kubernetes auth role', 'DELETE', `/auth/${trimSlashes(mountPath)}/role/${name}`);
  }

  /** Raw access for tests and the benchmark baseline (same transport, same auth). */
  async raw<T = Json>(method: string, path: string, body?: Json): Promise<T> {
    return this.call<T>(`${method} ${path}`, method, path, body);
  }
}

function sameList(a: unknown, b: string[]): boolean {
  return Array.isArray(a) && a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);
}

/** The operator's ServiceAccount token, for kubernetes auth. */
export function serviceAccountJwt(path = process.env.FAMILYHUB_SA_TOKEN_PATH ?? '/var/run/secrets/kubernetes.io/serviceaccount/token'): () => string {
  return () => readFileSync(path, 'utf8').trim();
}
