// A FamilyHub's live connections, for every controller that uses the hub:
// the PostgreSQL admin pool, the Vault/OpenBao client and the IdP adapter.
// Each is built from the hub's spec and the credentials in its Secrets and
// kept in a CredentialCache keyed by what it was built from — including the
// Secret's resourceVersion — so a rotated password opens a new connection,
// the old one is closed, and the number kept is bounded.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { OperatorConfig } from '../config.js';
import { canonical } from '../core/canonical.js';
import { ReconcileError, type ReconcileContext } from '../core/reconciler.js';
import { SECRET } from '../core/resources.js';
import { createIdpAdapter, type IdpConnection } from '../idp/factory.js';
import type { IdpAdapter, IdpHealth } from '../idp/types.js';
import { createAdminPool, type PgTarget } from '../postgres/admin-pool.js';
import { SchemaProvisioner } from '../postgres/schema-provisioner.js';
import { serviceAccountJwt, VaultClient, type VaultAuth } from '../vault/client.js';
import { connectionName, POSTGRES_PLUGIN, vaultConnectionUrl } from '../vault/database-engine.js';
import { CredentialCache } from './credential-cache.js';
import { DependencyError, vaultFailure, type HubPostgres } from './database.js';
import type { Hub } from './hub.js';
import { memoKey, RecentlyVerified } from './memo.js';

type Ctx = Pick<ReconcileContext, 'kube' | 'cache'>;
type DomainResult = 'changed' | 'unchanged' | 'unsupported';

export interface IdpEntry {
  adapter: IdpAdapter;
  health?: { at: number; value: IdpHealth };
  domains?: { at: number; key: string; result: DomainResult };
  /** Probes in flight, shared so concurrent workers do not repeat them. */
  healthInFlight?: Promise<IdpHealth>;
  domainsInFlight?: Promise<DomainResult>;
}

export function fingerprint(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

export class PlatformConnections {
  private readonly pools: CredentialCache<HubPostgres>;
  private readonly vaults: CredentialCache<VaultClient>;
  private readonly idps: CredentialCache<IdpEntry>;
  /** Vault state just verified or written; any Vault error forgets it. */
  readonly vaultVerified: RecentlyVerified;
  private readonly engineWrites = new Map<string, Promise<string>>();

  constructor(private readonly settings: OperatorConfig['platform'], private readonly log?: Logger) {
    const max = settings.connectionCacheMax;
    this.pools = new CredentialCache(max, (p) => p.provisioner.close());
    this.vaults = new CredentialCache(max, () => undefined);
    this.idps = new CredentialCache(max, () => undefined);
    this.vaultVerified = new RecentlyVerified(settings.vaultVerifyTtlMs);
  }

  /** Decoded keys of a hub Secret plus its resourceVersion (the cache key of what is built from it). */
  private async secretOf(ctx: Ctx, hub: Hub, name: string): Promise<{ rv: string; data: Record<string, string> } | undefined> {
    const ns = hub.metadata.namespace!;
    const meta = await ctx.cache.get(SECRET, ns, name);
    if (!meta) return undefined;
    const data = await ctx.kube.readSecret(ns, name);
    return data ? { rv: meta.metadata.resourceVersion ?? '', data } : undefined;
  }

  async postgres(ctx: Ctx, hub: Hub): Promise<HubPostgres> {
    const pg = hub.spec.postgres;
    const ref = pg.adminCredentialsSecretRef;
    const ns = hub.metadata.namespace!;
    const s = await this.secretOf(ctx, hub, ref.name);
    if (!s) throw new DependencyError('PostgresReady', 'SecretMissing', `admin credentials Secret ${ns}/${ref.name} not found`);
    const user = s.data[ref.usernameKey];
    const password = s.data[ref.passwordKey];
    if (!user || !password) throw new DependencyError('PostgresReady', 'SecretMissing', `admin credentials Secret ${ns}/${ref.name} lacks "${ref.usernameKey}" or "${ref.passwordKey}"`);
    const target: PgTarget = { host: pg.host, port: pg.port, database: pg.database, sslMode: pg.sslMode, user, password };
    const passwordFingerprint = fingerprint(password);
    // Shared by every hub on the same server and role; rotated credentials are a new key.
    const key = fingerprint(canonical([target.host, target.port, target.database, target.sslMode, user, passwordFingerprint]));
    return this.pools.get(`${hub.metadata.uid}/postgres`, key, () => ({
      target,
      passwordFingerprint,
      provisioner: new SchemaProvisioner(createAdminPool(target, { max: this.settings.pgPoolMax })),
    }));
  }

  async vault(ctx: Ctx, hub: Hub): Promise<VaultClient | undefined> {
    const v = hub.spec.vault;
    if (!v) return undefined;
    const ns = hub.metadata.namespace!;
    let auth: VaultAuth;
    let credential: string;
    if (v.authMethod === 'token') {
      const ref = v.tokenSecretRef;
      if (!ref) throw new DependencyError('VaultReady', 'NotConfigured', 'spec.vault.tokenSecretRef is required with token auth');
      const token = (await this.secretOf(ctx, hub, ref.name))?.data[ref.key];
      if (!token) throw new DependencyError('VaultReady', 'SecretMissing', `Vault token Secret ${ns}/${ref.name} (key "${ref.key}") not found`);
      auth = { method: 'token', token };
      credential = fingerprint(token);
    } else {
      auth = { method: 'kubernetes', role: v.kubernetesRole!, mountPath: v.kubernetesMountPath, jwt: serviceAccountJwt(this.settings.serviceAccountTokenPath) };
      credential = `kubernetes:${v.kubernetesRole}`;
    }
    let caPem: string | undefined;
    if (v.caSecretRef) {
      caPem = (await this.secretOf(ctx, hub, v.caSecretRef.name))?.data[v.caSecretRef.key];
      if (!caPem) throw new DependencyError('VaultReady', 'SecretMissing', `Vault CA Secret ${ns}/${v.caSecretRef.name} not found`);
    }
    // One client per distinct connection: keeps the kubernetes-auth login token across reconciles.
    const key = fingerprint(canonical([v.address, auth.method, credential, caPem ?? '']));
    return this.vaults.get(`${hub.metadata.uid}/vault`, key, () => new VaultClient({ address: v.address, auth, caPem, timeoutMs: this.settings.vaultTimeoutMs }));
  }

  /** The hub's IdP adapter; the Keycloak admin session and health probe are shared by all its clients. */
  async idp(ctx: Ctx, hub: Hub): Promise<IdpEntry> {
    const conn = await this.idpConnection(ctx, hub);
    const key = fingerprint(canonical(conn));
    return this.idps.get(`${hub.metadata.uid}/idp`, key, () => ({ adapter: createIdpAdapter(conn) }));
  }

  private async idpConnection(ctx: Ctx, hub: Hub): Promise<IdpConnection> {
    const id = hub.spec.identity;
    const ns = hub.metadata.namespace!;
    const where = `FamilyHub ${ns}/${hub.metadata.name} spec.identity`;
    if (id.kind === 'keycloak') {
      const ref = id.adminCredentialsSecretRef;
      if (!ref) throw new ReconcileError('IdentityNotConfigured', `${where}.adminCredentialsSecretRef is required for keycloak`, { retryAfterMs: 30_000 });
      const data = (await this.secretOf(ctx, hub, ref.name))?.data;
      const username = data?.[ref.usernameKey];
      const password = data?.[ref.passwordKey];
      if (!username || !password) {
        throw new ReconcileError('SecretMissing', `${where}.adminCredentialsSecretRef: Secret ${ns}/${ref.name} is missing or lacks the username/password keys`, { retryAfterMs: 15_000 });
      }
      const issuerUrl = id.realm && !/\/realms\/[^/]+\/?$/.test(id.issuerUrl) ? `${id.issuerUrl.replace(/\/$/, '')}/realms/${id.realm}` : id.issuerUrl;
      return { kind: 'keycloak', issuerUrl, credentials: { kind: 'password', username, password } };
    }
    const ref = id.initialAccessTokenSecretRef;
    let initialAccessToken: string | undefined;
    if (ref) {
      initialAccessToken = (await this.secretOf(ctx, hub, ref.name))?.data[ref.key];
      if (!initialAccessToken) throw new ReconcileError('SecretMissing', `${where}.initialAccessTokenSecretRef: Secret ${ns}/${ref.name} is missing or lacks key "${ref.key}"`, { retryAfterMs: 15_000 });
    }
    return { kind: 'oidc-dcr', issuerUrl: id.issuerUrl, initialAccessToken };
  }

  /** Health from cache while fresh; a failed probe is never cached so recovery shows at once. */
  healthOf(entry: IdpEntry, opts: { fresh?: boolean; maxAgeMs?: number } = {}): Promise<IdpHealth> {
    const maxAge = opts.maxAgeMs ?? this.settings.idpHealthTtlMs;
    if (!opts.fresh && entry.health && Date.now() - entry.health.at < maxAge) return Promise.resolve(entry.health.value);
    entry.healthInFlight ??= entry.adapter
      .checkHealth()
      .then((value) => {
        entry.health = value.discovery && value.admin ? { at: Date.now(), value } : undefined;
        return value;
      }, (err: unknown) => {
        entry.health = undefined;
        throw err;
      })
      .finally(() => {
        entry.healthInFlight = undefined;
      });
    return entry.healthInFlight;
  }

  forgetHealth(entry: IdpEntry): void {
    entry.health = undefined;
    entry.domains = undefined;
  }

  /** FamilyHub IdentityReady accepts a probe at most this old. */
  get identityCheckMaxAgeMs(): number {
    return this.settings.identityCheckMaxAgeMs;
  }

  /**
   * Makes the IdP refuse accounts outside the hub's allowed e-mail domains
   * (where the IdP supports it), re-asserted at most once per health TTL so a
   * hand edit at the IdP is undone without an admin call per reconcile.
   */
  ensureEmailDomains(entry: IdpEntry, hub: Hub, opts: { fresh?: boolean } = {}): Promise<DomainResult> {
    const domains = [...hub.spec.allowedEmailDomains].sort();
    if (!domains.length) return Promise.resolve('unsupported');
    const key = domains.join(',');
    if (!opts.fresh && entry.domains && entry.domains.key === key && Date.now() - entry.domains.at < this.settings.idpHealthTtlMs) return Promise.resolve(entry.domains.result);
    entry.domainsInFlight ??= entry.adapter
      .enforceEmailDomains(domains)
      .then((result) => {
        entry.domains = { at: Date.now(), key, result };
        return result;
      })
      .finally(() => {
        entry.domainsInFlight = undefined;
      });
    return entry.domainsInFlight;
  }

  /**
   * Mounts the database engine and points database/config/familyhub-<ns>-<name>
   * at the hub's PostgreSQL. Returns the connection name. Reads first, so a
   * steady state makes no writes; a Vault that lost its state (dev-mode
   * restart) is simply configured again.
   */
  configureDatabaseEngine(hub: Hub, vault: VaultClient, pg: HubPostgres, opts: { fresh?: boolean } = {}): Promise<string> {
    const mount = hub.spec.vault?.databaseMountPath ?? 'database';
    const name = connectionName(hub.metadata.namespace!, hub.metadata.name);
    const t = pg.target;
    const key = memoKey('engine', vault.address, mount, name, t.host, t.port, t.database, t.sslMode, t.user, pg.passwordFingerprint);
    if (!opts.fresh && this.vaultVerified.has(key)) return Promise.resolve(name);
    // A burst of new claims would otherwise all write the same config at once,
    // and concurrent writes of one storage entry fail in Vault/OpenBao.
    const running = this.engineWrites.get(key);
    if (running) return running;
    const write = (async () => {
      try {
        await vault.ensureSecretsEngine(mount, 'database');
        await vault.ensureDatabaseConnection(mount, name, {
          pluginName: POSTGRES_PLUGIN,
          connectionUrl: vaultConnectionUrl(t.host, t.port, t.database, t.sslMode),
          username: t.user,
          password: t.password,
          allowedRoles: ['*'],
        }, pg.passwordFingerprint);
      } catch (err) {
        throw vaultFailure(vault.address, err);
      }
      this.vaultVerified.mark(key);
      return name;
    })().finally(() => this.engineWrites.delete(key));
    this.engineWrites.set(key, write);
    return write;
  }

  /** A deleted hub's connections are closed (unless another hub shares them). */
  forgetHub(uid: string): void {
    for (const c of [this.pools, this.vaults, this.idps]) for (const what of ['postgres', 'vault', 'idp']) c.drop(`${uid}/${what}`);
  }

  async close(): Promise<void> {
    await Promise.all([this.pools.closeAll(), this.vaults.closeAll(), this.idps.closeAll()]);
    this.log?.debug('platform connections closed');
  }
}
