// Live connections to what a FamilyHub names: its PostgreSQL server (admin
// role from a Secret) and its Vault/OpenBao (token or kubernetes auth). Used by
// the DatabaseClaim reconciler, and exported as FamilyHub live checks
// (PostgresReady / VaultReady) that also configure the database secrets
// engine for that server, idempotently.
import { createHash } from 'node:crypto';
import type { KubeClient } from '../core/kube-client.js';
import type { KubeObject, ReconcileContext } from '../core/reconciler.js';
import { adminPool, type PgTarget, type SslMode } from '../postgres/admin-pool.js';
import { classifyPgError, describePgError } from '../postgres/errors.js';
import { SchemaProvisioner } from '../postgres/schema-provisioner.js';
import { serviceAccountJwt, VaultClient, type VaultAuth } from '../vault/client.js';
import { memoKey, vaultVerified } from './databaseclaim-memo.js';
import { connectionName, POSTGRES_PLUGIN, vaultConnectionUrl } from '../vault/database-engine.js';
import { VaultRequestError } from '../vault/errors.js';

type Hub = KubeObject & { spec: Record<string, any> };
type ConditionInput = { type: string; status: 'True' | 'False' | 'Unknown'; reason: string; message: string };

/** A dependency that is not usable right now; `reason` becomes the condition reason. */
export class DependencyError extends Error {
  constructor(
    readonly conditionType: 'PostgresReady' | 'VaultReady',
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'DependencyError';
  }
}

export interface HubPostgres {
  target: PgTarget;
  provisioner: SchemaProvisioner;
  /** sha256 prefix of the admin password: detects rotation without keeping the value around */
  passwordFingerprint: string;
}

export async function hubPostgres(hub: Hub, kube: KubeClient): Promise<HubPostgres> {
  const pg = hub.spec.postgres;
  if (!pg) throw new DependencyError('PostgresReady', 'NotConfigured', 'FamilyHub has no spec.postgres');
  const ref = pg.adminCredentialsSecretRef;
  const ns = hub.metadata.namespace!;
  const data = await kube.readSecret(ns, ref.name);
  const user = data?.[ref.usernameKey ?? 'username'];
  const password = data?.[ref.passwordKey ?? 'password'];
  if (!data) throw new DependencyError('PostgresReady', 'SecretMissing', `admin credentials Secret ${ns}/${ref.name} not found`);
  if (!user || !password) throw new DependencyError('PostgresReady', 'SecretMissing', `admin credentials Secret ${ns}/${ref.name} lacks "${ref.usernameKey ?? 'username'}" or "${ref.passwordKey ?? 'password'}"`);
  const target: PgTarget = { host: pg.host, port: pg.port ?? 5432, database: pg.database, sslMode: (pg.sslMode ?? 'require') as SslMode, user, password };
  return { target, provisioner: new SchemaProvisioner(adminPool(target)), passwordFingerprint: fingerprint(password) };
}

/** Maps a PostgreSQL failure to a readable dependency error (never with credentials in it). */
export function postgresFailure(target: Pick<PgTarget, 'host' | 'port' | 'database'>, err: unknown): Error {
  const kind = classifyPgError(err);
  const where = `PostgreSQL ${target.host}:${target.port}/${target.database}`;
  if (kind === 'unavailable') return new DependencyError('PostgresReady', 'PostgresUnavailable', `${where} is not reachable: ${describePgError(err)}`);
  if (kind === 'auth') return new DependencyError('PostgresReady', 'PostgresAuthFailed', `${where} rejected the admin credentials: ${describePgError(err)}`);
  return err instanceof Error ? err : new Error(String(err));
}

const vaultClients = new Map<string, VaultClient>();

export async function hubVault(hub: Hub, kube: KubeClient): Promise<VaultClient | undefined> {
  const v = hub.spec.vault;
  if (!v) return undefined;
  const ns = hub.metadata.namespace!;
  let auth: VaultAuth;
  if ((v.authMethod ?? 'token') === 'token') {
    const ref = v.tokenSecretRef;
    if (!ref) throw new DependencyError('VaultReady', 'NotConfigured', 'spec.vault.tokenSecretRef is required with token auth');
    const token = (await kube.readSecret(ns, ref.name))?.[ref.key ?? 'token'];
    if (!token) throw new DependencyError('VaultReady', 'SecretMissing', `Vault token Secret ${ns}/${ref.name} (key "${ref.key ?? 'token'}") not found`);
    auth = { method: 'token', token };
  } else {
    auth = { method: 'kubernetes', role: v.kubernetesRole, mountPath: v.kubernetesMountPath ?? 'kubernetes', jwt: serviceAccountJwt() };
  }
  let caPem: string | undefined;
  if (v.caSecretRef) {
    caPem = (await kube.readSecret(ns, v.caSecretRef.name))?.[v.caSecretRef.key ?? 'ca.crt'];
    if (!caPem) throw new DependencyError('VaultReady', 'SecretMissing', `Vault CA Secret ${ns}/${v.caSecretRef.name} not found`);
  }
  // One client per distinct connection: keeps the kubernetes-auth login token across reconciles.
  const key = fingerprint(JSON.stringify([v.address, auth.method, auth.method === 'token' ? auth.token : auth.role, caPem ?? '']));
  let client = vaultClients.get(key);
  if (!client) {
    client = new VaultClient({ address: v.address, auth, caPem, timeoutMs: Number(process.env.FAMILYHUB_VAULT_TIMEOUT_MS ?? 5_000) });
    vaultClients.set(key, client);
  }
  return client;
}

export function vaultFailure(address: string, err: unknown): Error {
  if (err instanceof DependencyError) return err;
  if (err instanceof VaultRequestError) {
    if (err.unavailable) return new DependencyError('VaultReady', 'VaultUnavailable', `Vault ${address} is not reachable: ${err.message}`);
    if (err.forbidden) return new DependencyError('VaultReady', 'VaultPermissionDenied', `Vault ${address} refused the operator: ${err.message}`);
    return new DependencyError('VaultReady', 'VaultRequestFailed', `Vault ${address}: ${err.message}`);
  }
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Mounts the database engine and points database/config/familyhub-<ns>-<name>
 * at the hub's PostgreSQL. Returns the connection name. Reads first, so a
 * steady state makes no writes; a Vault that lost its state (dev-mode
 * restart) is simply configured again.
 */
export async function configureDatabaseEngine(hub: Hub, vault: VaultClient, pg: HubPostgres, opts: { fresh?: boolean } = {}): Promise<string> {
  const mount = hub.spec.vault?.databaseMountPath ?? 'database';
  const name = connectionName(hub.metadata.namespace!, hub.metadata.name);
  const t = pg.target;
  const key = memoKey('engine', vault.address, mount, name, t.host, t.port, t.database, t.sslMode, t.user, pg.passwordFingerprint);
  if (!opts.fresh && vaultVerified.has(key)) return name;
  // A burst of new claims would otherwise all write the same config at once,
  // and concurrent writes of one storage entry fail in Vault/OpenBao.
  const running = engineWrites.get(key);
  if (running) return running;
  const write = configureEngineOnce(vault, mount, name, pg).then(() => {
    vaultVerified.mark(key);
    return name;
  }).finally(() => engineWrites.delete(key));
  engineWrites.set(key, write);
  return write;
}

const engineWrites = new Map<string, Promise<string>>();

async function configureEngineOnce(vault: VaultClient, mount: string, name: string, pg: HubPostgres): Promise<void> {
  const t = pg.target;
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
}

const asCondition = (err: unknown, type: 'PostgresReady' | 'VaultReady'): ConditionInput =>
  err instanceof DependencyError
    ? { type: err.conditionType, status: 'False', reason: err.reason, message: err.message }
    : { type, status: 'False', reason: 'CheckFailed', message: err instanceof Error ? err.message : String(err) };

/** FamilyHub live check: the admin role can log in and run a query. */
export async function checkPostgres(hub: Hub, ctx: Pick<ReconcileContext, 'kube'>): Promise<ConditionInput> {
  try {
    const pg = await hubPostgres(hub, ctx.kube);
    const info = await pg.provisioner.ping().catch((err) => {
      throw postgresFailure(pg.target, err);
    });
    return { type: 'PostgresReady', status: 'True', reason: 'Connected', message: `PostgreSQL ${pg.target.host}:${pg.target.port}/${pg.target.database} reachable (server ${info.serverVersion})` };
  } catch (err) {
    return asCondition(err, 'PostgresReady');
  }
}

/** FamilyHub live check: Vault is up, unsealed, accepts our credentials, and the database engine is configured. */
export async function checkVault(hub: Hub, ctx: Pick<ReconcileContext, 'kube'>): Promise<ConditionInput | undefined> {
  if (!hub.spec.vault) return undefined;
  try {
    const vault = (await hubVault(hub, ctx.kube))!;
    const h = await vault.health().catch((err) => {
      throw vaultFailure(vault.address, err);
    });
    if (h.sealed) return { type: 'VaultReady', status: 'False', reason: 'VaultSealed', message: `Vault ${vault.address} is sealed` };
    await vault.checkAuth().catch((err) => {
      throw vaultFailure(vault.address, err);
    });
    let engine = '';
    try {
      const pg = await hubPostgres(hub, ctx.kube);
      // The hub check is the periodic full verification: no shortcuts from memory.
      engine = `; database engine connection ${await configureDatabaseEngine(hub, vault, pg, { fresh: true })} configured`;
    } catch (err) {
      // Without a reachable PostgreSQL Vault cannot verify the connection; that is PostgresReady's story.
      if (err instanceof DependencyError && err.conditionType === 'VaultReady') throw err;
      engine = '; database engine not configured yet (PostgreSQL not ready)';
    }
    return { type: 'VaultReady', status: 'True', reason: 'Connected', message: `Vault ${vault.address} reachable (version ${h.version})${engine}` };
  } catch (err) {
    vaultVerified.forget();
    return asCondition(err, 'VaultReady');
  }
}

/** For FamilyHubReconcilerOptions.liveChecks. */
export const familyHubLiveChecks = {
  PostgresReady: checkPostgres,
  VaultReady: checkVault,
};

export function fingerprint(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}
