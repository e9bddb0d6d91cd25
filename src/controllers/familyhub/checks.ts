// One condition per dependency a FamilyHub names. First the configuration
// (present, well-formed, its Secret has the keys — the message names the
// spec field), then, only for a well-formed dependency, a live probe:
// PostgreSQL login + query, Vault health + auth + database engine, IdP
// discovery + admin access + e-mail domain policy.
import type { ConditionInput, ReconcileContext } from '../../core/reconciler.js';
import { ReconcileError } from '../../core/reconciler.js';
import { SECRET } from '../../core/resources.js';
import { IdpError, IdpUnreachableError } from '../../idp/types.js';
import type { PlatformConnections } from '../../platform/connections.js';
import { DependencyError, postgresFailure, vaultFailure } from '../../platform/database.js';
import type { Hub } from '../../platform/hub.js';

export type DependencyCheck = (hub: Hub, ctx: ReconcileContext) => Promise<ConditionInput | undefined>;

/** A referenced Secret exists and carries the named keys (values are never read into status). */
async function secretHasKeys(ctx: ReconcileContext, namespace: string, name: string, keys: string[]): Promise<string | undefined> {
  const s = await ctx.cache.get(SECRET, namespace, name);
  if (!s) return `Secret ${namespace}/${name} not found`;
  const missing = keys.filter((k) => !(s.data ?? {})[k]);
  return missing.length ? `Secret ${namespace}/${name} has no key ${missing.map((k) => `"${k}"`).join(', ')}` : undefined;
}

const ok = (type: string, reason: string, message: string): ConditionInput => ({ type, status: 'True', reason, message });
const bad = (type: string, reason: string, message: string): ConditionInput => ({ type, status: 'False', reason, message });

const asCondition = (err: unknown, type: 'PostgresReady' | 'VaultReady'): ConditionInput =>
  err instanceof DependencyError
    ? bad(err.conditionType, err.reason, err.message)
    : bad(type, 'CheckFailed', err instanceof Error ? err.message : String(err));

/** Configuration checks: present and well-formed. */
export const staticChecks: Record<string, DependencyCheck> = {
  async PostgresReady(hub, ctx) {
    const pg = hub.spec.postgres;
    const ref = pg.adminCredentialsSecretRef;
    const problem = await secretHasKeys(ctx, hub.metadata.namespace!, ref.name, [ref.usernameKey, ref.passwordKey]);
    return problem ? bad('PostgresReady', 'SecretMissing', `spec.postgres.adminCredentialsSecretRef: ${problem}`) : ok('PostgresReady', 'Configured', `PostgreSQL ${pg.host}:${pg.port}/${pg.database} configured`);
  },
  async RedisReady(hub, ctx) {
    const r = hub.spec.redis;
    if (!r) return undefined;
    if (r.passwordSecretRef) {
      const problem = await secretHasKeys(ctx, hub.metadata.namespace!, r.passwordSecretRef.name, [r.passwordSecretRef.key]);
      if (problem) return bad('RedisReady', 'SecretMissing', `spec.redis.passwordSecretRef: ${problem}`);
    }
    return ok('RedisReady', 'Configured', `Redis ${r.host}:${r.port} configured`);
  },
  async VaultReady(hub, ctx) {
    const v = hub.spec.vault;
    if (!v) return undefined;
    if (v.authMethod === 'token') {
      if (!v.tokenSecretRef) return bad('VaultReady', 'NotConfigured', 'spec.vault.tokenSecretRef is required when authMethod is token');
      const problem = await secretHasKeys(ctx, hub.metadata.namespace!, v.tokenSecretRef.name, [v.tokenSecretRef.key]);
      if (problem) return bad('VaultReady', 'SecretMissing', `spec.vault.tokenSecretRef: ${problem}`);
    }
    return ok('VaultReady', 'Configured', `Vault ${v.address} configured (${v.authMethod} auth)`);
  },
  async IdentityReady(hub, ctx) {
    const id = hub.spec.identity;
    const ref = id.kind === 'keycloak' ? id.adminCredentialsSecretRef : id.initialAccessTokenSecretRef;
    if (ref) {
      const keys = 'usernameKey' in ref ? [ref.usernameKey, ref.passwordKey] : [ref.key];
      const problem = await secretHasKeys(ctx, hub.metadata.namespace!, ref.name, keys);
      if (problem) return bad('IdentityReady', 'SecretMissing', `spec.identity: ${problem}`);
    }
    return ok('IdentityReady', 'Configured', `${id.kind} issuer ${id.issuerUrl} configured`);
  },
};

/** Live probes by condition type, against the hub's real connections. */
export function liveChecks(platform: PlatformConnections): Record<string, DependencyCheck> {
  return {
    async PostgresReady(hub, ctx) {
      try {
        const pg = await platform.postgres(ctx, hub);
        const info = await pg.provisioner.ping().catch((err) => {
          throw postgresFailure(pg.target, err);
        });
        return ok('PostgresReady', 'Connected', `PostgreSQL ${pg.target.host}:${pg.target.port}/${pg.target.database} reachable (server ${info.serverVersion})`);
      } catch (err) {
        return asCondition(err, 'PostgresReady');
      }
    },

    async VaultReady(hub, ctx) {
      if (!hub.spec.vault) return undefined;
      try {
        const vault = (await platform.vault(ctx, hub))!;
        const h = await vault.health().catch((err) => {
          throw vaultFailure(vault.address, err);
        });
        if (h.sealed) return bad('VaultReady', 'VaultSealed', `Vault ${vault.address} is sealed`);
        await vault.checkAuth().catch((err) => {
          throw vaultFailure(vault.address, err);
        });
        let engine = '';
        try {
          const pg = await platform.postgres(ctx, hub);
          // The hub check is the periodic full verification: no shortcuts from memory.
          engine = `; database engine connection ${await platform.configureDatabaseEngine(hub, vault, pg, { fresh: true })} configured`;
        } catch (err) {
          // Without a reachable PostgreSQL Vault cannot verify the connection; that is PostgresReady's story.
          if (err instanceof DependencyError && err.conditionType === 'VaultReady') throw err;
          engine = '; database engine not configured yet (PostgreSQL not ready)';
        }
        return ok('VaultReady', 'Connected', `Vault ${vault.address} reachable (version ${h.version})${engine}`);
      } catch (err) {
        platform.vaultVerified.forget();
        return asCondition(err, 'VaultReady');
      }
    },

    async IdentityReady(hub, ctx) {
      try {
        const entry = await platform.idp(ctx, hub);
        // Nearly fresh: many hubs (or a burst of reconciles) sharing one IdP
        // probe it once per few seconds, and a failure is never cached.
        const health = await platform.healthOf(entry, { maxAgeMs: platform.identityCheckMaxAgeMs });
        if (!health.discovery) return bad('IdentityReady', 'DiscoveryFailed', health.message);
        if (!health.admin) return bad('IdentityReady', 'AdminAccessFailed', health.message);
        const domains = await platform.ensureEmailDomains(entry, hub, { fresh: true });
        const domainNote = domains === 'unsupported'
          ? 'e-mail domain restriction is enforced by the runtime services only (the IdP offers no policy for it)'
          : `the IdP refuses e-mail domains other than ${hub.spec.allowedEmailDomains.join(', ')}`;
        return ok('IdentityReady', 'Reachable', `${entry.adapter.kind} ${entry.adapter.issuer}: ${health.message}; ${domainNote}`);
      } catch (err) {
        if (err instanceof ReconcileError) return bad('IdentityReady', err.reason, err.message);
        if (err instanceof IdpUnreachableError) return bad('IdentityReady', 'IdPUnreachable', err.message);
        if (err instanceof IdpError) return bad('IdentityReady', err.status === 401 || err.status === 403 ? 'AdminAccessFailed' : 'IdPError', err.message);
        throw err;
      }
    },
  };
}

/** Runs a check; an unexpected failure is its condition, not the whole reconcile's. */
export async function runCheck(type: string, check: DependencyCheck, hub: Hub, ctx: ReconcileContext): Promise<ConditionInput | undefined> {
  try {
    const c = await check(hub, ctx);
    return c ? { ...c, type } : undefined;
  } catch (err) {
    return bad(type, 'CheckFailed', err instanceof Error ? err.message : String(err));
  }
}
