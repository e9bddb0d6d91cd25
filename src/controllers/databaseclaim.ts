// DatabaseClaim: an isolated schema on the FamilyHub's PostgreSQL plus
// working credentials in a Secret. Observe (hub, database, Vault, Secret),
// converge (schema, Vault role, credentials), report (conditions, status
// without secrets), and wake up again when a lease needs renewal, rotation
// or a superseded login its revocation.
import { API_VERSION } from '../core/constants.js';
import type { ControllerDefinition } from '../core/controller.js';
import { ReconcileError, type KubeObject, type ReconcileContext, type ReconcileResult, type Reconciler } from '../core/reconciler.js';
import { databaseClaimSpecSchema, type CredentialsMode, type DatabaseClaimSpec } from '../crds/databaseclaim.js';
import { parseDuration } from '../crds/duration.js';
import { claimIdentifiers, InvalidIdentifierError, type ClaimIdentifiers } from '../postgres/identifiers.js';
import { SchemaConflictError } from '../postgres/schema-provisioner.js';
import { VaultRequestError } from '../vault/errors.js';
import { ensureStatic, ensureVaultAgent, ensureVaultDynamic, type CredentialsInput, type CredentialsOutcome } from './databaseclaim-credentials.js';
import { rolloutConsumers } from './databaseclaim-rollout.js';
import { sharedReads, vaultVerified } from './databaseclaim-memo.js';
import { readState } from './databaseclaim-state.js';
import {
  configureDatabaseEngine, DependencyError, hubPostgres, hubVault, postgresFailure, vaultFailure, type HubPostgres,
} from './familyhub-dependencies.js';

export const DATABASECLAIM_FINALIZER = 'familyhub.dev/databaseclaim';

/** How soon to retry while PostgreSQL or Vault is away; they usually come back within seconds. */
const DEPENDENCY_RETRY_MS = Number(process.env.FAMILYHUB_DEPENDENCY_RETRY_MS ?? 5_000);

export interface DatabaseClaimObject extends KubeObject {
  spec: Record<string, unknown>;
}

type Hub = KubeObject & { spec: Record<string, any> };

interface Resolved {
  spec: DatabaseClaimSpec;
  hub: Hub;
  ids: ClaimIdentifiers;
  secretName: string;
  pg: HubPostgres;
  kube: ReconcileContext['kube'];
}

function asReconcileError(err: unknown): unknown {
  if (err instanceof VaultRequestError || (err instanceof DependencyError && err.conditionType === 'VaultReady')) vaultVerified.forget();
  if (err instanceof DependencyError) {
    return new ReconcileError(err.reason, err.message, { conditionType: err.conditionType, retryAfterMs: DEPENDENCY_RETRY_MS });
  }
  if (err instanceof SchemaConflictError) return new ReconcileError('SchemaConflict', err.message, { conditionType: 'SchemaReady', retryAfterMs: 60_000 });
  if (err instanceof InvalidIdentifierError) return new ReconcileError('InvalidName', err.message, { conditionType: 'SchemaReady', retryAfterMs: 5 * 60_000 });
  return err;
}

/** The hub's Secrets through the short shared cache; only readSecret is used by the dependency helpers. */
function sharedSecretReader(kube: ReconcileContext['kube']): ReconcileContext['kube'] {
  return new Proxy(kube, {
    get(target, prop, receiver) {
      if (prop === 'readSecret') return (ns: string, name: string) => sharedReads.get(`secret/${ns}/${name}`, () => target.readSecret(ns, name));
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

export class DatabaseClaimReconciler implements Reconciler<DatabaseClaimObject> {
  readonly name = 'databaseclaim';
  readonly finalizer = DATABASECLAIM_FINALIZER;

  private async resolve(claim: DatabaseClaimObject, ctx: ReconcileContext): Promise<Resolved> {
    const parsed = databaseClaimSpecSchema.safeParse(claim.spec);
    if (!parsed.success) {
      const msg = parsed.error.issues.map((i) => `spec.${i.path.join('.')}: ${i.message}`).join('; ');
      throw new ReconcileError('InvalidSpec', msg, { retryAfterMs: 5 * 60_000 });
    }
    const spec = parsed.data;
    const ns = claim.metadata.namespace!;
    const hubNs = spec.familyHubRef.namespace ?? ns;
    const hub = await sharedReads.get(`hub/${hubNs}/${spec.familyHubRef.name}`, () => ctx.kube.get<Hub>(API_VERSION, 'FamilyHub', hubNs, spec.familyHubRef.name));
    if (!hub) throw new ReconcileError('FamilyHubNotFound', `FamilyHub ${hubNs}/${spec.familyHubRef.name} not found`, { retryAfterMs: 30_000 });
    const ids = claimIdentifiers(ns, claim.metadata.name, spec.schemaName);
    const pg = await hubPostgres(hub, sharedSecretReader(ctx.kube));
    return { spec, hub, ids, pg, kube: ctx.kube, secretName: spec.secretName ?? `${claim.metadata.name}-db` };
  }

  /** VaultDynamic is the default only where Vault exists; without it the claim falls back to Static. */
  private effectiveMode(spec: DatabaseClaimSpec, hub: Hub): CredentialsMode {
    const mode = spec.credentials.mode;
    if (mode === 'VaultDynamic' && !hub.spec.vault) return 'Static';
    if (mode === 'VaultAgent' && !hub.spec.vault) throw new ReconcileError('VaultNotConfigured', 'credentials.mode VaultAgent needs spec.vault on the FamilyHub', { retryAfterMs: 60_000 });
    return mode;
  }

  private async vaultFor(r: Resolved): Promise<CredentialsInput['vault']> {
    const client = (await hubVault(r.hub, sharedSecretReader(r.kube)))!;
    const connectionName = await configureDatabaseEngine(r.hub, client, r.pg);
    return {
      client,
      connectionName,
      databaseMount: r.hub.spec.vault.databaseMountPath ?? 'database',
      kubernetesMount: r.hub.spec.vault.kubernetesMountPath ?? 'kubernetes',
      address: client.address,
    };
  }

  async reconcile(claim: DatabaseClaimObject, ctx: ReconcileContext): Promise<ReconcileResult> {
    try {
      return await this.converge(claim, ctx);
    } catch (err) {
      throw asReconcileError(err);
    }
  }

  private async converge(claim: DatabaseClaimObject, ctx: ReconcileContext): Promise<ReconcileResult> {
    const t0 = performance.now();
    const mark: Record<string, number> = {};
    const r = await this.resolve(claim, ctx);
    mark.resolve = performance.now() - t0;
    const allowed = new Set<string>(r.hub.spec.postgres?.allowedExtensions ?? []);
    const refused = r.spec.extensions.filter((e) => !allowed.has(e));
    if (refused.length) {
      throw new ReconcileError('ExtensionNotAllowed', `extension(s) ${refused.join(', ')} not in FamilyHub ${r.hub.metadata.name} spec.postgres.allowedExtensions`, { conditionType: 'SchemaReady', retryAfterMs: 60_000 });
    }
    const schema = await r.pg.provisioner.ensureClaimSchema({ schema: r.ids.schema, ownerRole: r.ids.ownerRole, extensions: r.spec.extensions }).catch((err) => {
      throw err instanceof SchemaConflictError ? err : postgresFailure(r.pg.target, err);
    });
    if (schema.changed) ctx.log.info({ schema: r.ids.schema, ownerRole: r.ids.ownerRole }, 'schema converged');

    mark.schema = performance.now() - t0;
    const mode = this.effectiveMode(r.spec, r.hub);
    const c = r.spec.credentials;
    const input: CredentialsInput = {
      claim,
      mode,
      ids: r.ids,
      secretName: r.secretName,
      durations: { defaultTtlMs: parseDuration(c.defaultTtl), maxTtlMs: parseDuration(c.maxTtl), graceMs: parseDuration(c.rotationGracePeriod) },
      rotateGeneration: c.rotateGeneration,
      connection: { host: r.pg.target.host, port: r.pg.target.port, database: r.pg.target.database, sslMode: r.pg.target.sslMode },
      pg: r.pg,
      loginMembers: schema.loginMembers,
      vault: mode === 'Static' ? undefined : await this.vaultFor(r),
      kube: ctx.kube,
      cache: ctx.cache,
      events: ctx.events,
      log: ctx.log,
    };
    mark.vault = performance.now() - t0;
    let out: CredentialsOutcome;
    try {
      out = mode === 'VaultDynamic' ? await ensureVaultDynamic(input) : mode === 'VaultAgent' ? await ensureVaultAgent(input) : await ensureStatic(input);
    } catch (err) {
      if (err instanceof VaultRequestError) throw vaultFailure(input.vault?.address ?? '', err);
      throw err;
    }
    if (out.credentialsChanged) {
      const rolled = await rolloutConsumers(ctx.kube, claim.metadata.namespace!, r.secretName, out.credentialsHash);
      if (rolled.length) ctx.events.normal(claim, 'RolloutTriggered', `Restarting ${rolled.join(', ')} to pick up new credentials`);
    }
    mark.credentials = performance.now() - t0;
    // Cumulative milliseconds per phase: where a slow reconcile spent its time.
    ctx.log.debug({ phasesMs: Object.fromEntries(Object.entries(mark).map(([k, v]) => [k, Math.round(v)])) }, 'databaseclaim reconcile timings');
    const usesVault = mode !== 'Static';
    return {
      conditions: [
        { type: 'PostgresReady', status: 'True', reason: 'Connected', message: `PostgreSQL ${r.pg.target.host}:${r.pg.target.port}/${r.pg.target.database} reachable` },
        ...(usesVault ? [{ type: 'VaultReady', status: 'True' as const, reason: 'Connected', message: `Vault ${input.vault!.address} reachable` }] : []),
        { type: 'SchemaReady', status: 'True', reason: 'Provisioned', message: `schema ${r.ids.schema} owned by ${r.ids.ownerRole}` },
        { type: 'CredentialsReady', status: 'True', reason: mode, message: out.message },
      ],
      status: {
        schema: r.ids.schema,
        database: r.pg.target.database,
        ownerRole: r.ids.ownerRole,
        secretName: r.secretName,
        credentialsMode: mode,
        ...(out.leaseExpiresAt ? { leaseExpiresAt: out.leaseExpiresAt } : {}),
        ...(out.lastRotatedAt ? { lastRotatedAt: out.lastRotatedAt } : {}),
        observedRotateGeneration: c.rotateGeneration,
        extensions: schema.extensions,
      },
      requeueAfterMs: out.requeueAfterMs,
    };
  }

  /**
   * Credentials always end with the claim. Data goes only with
   * deletionPolicy Delete; Retain (the default) keeps schema, owner role and
   * every table in place.
   */
  async finalize(claim: DatabaseClaimObject, ctx: ReconcileContext): Promise<void> {
    try {
      let r: Resolved;
      try {
        r = await this.resolve(claim, ctx);
      } catch (err) {
        if (err instanceof ReconcileError && (err.reason === 'FamilyHubNotFound' || err.reason === 'InvalidSpec')) {
          // Nothing left that says where the schema lives: holding the finalizer
          // forever would only block namespace deletion. Logins expire on their own.
          ctx.events.warning(claim, 'CleanupSkipped', `${err.message}; credentials were not revoked and expire on their own`);
          return;
        }
        throw err;
      }
      const ns = claim.metadata.namespace!;
      const secret = await ctx.kube.get('v1', 'Secret', ns, r.secretName);
      const state = readState(secret?.metadata.annotations);
      if (r.hub.spec.vault) {
        const vault = await this.vaultFor(r);
        const v = vault!;
        try {
          for (const l of [...(state?.current ? [state.current] : []), ...(state?.retired ?? [])]) {
            if (l.leaseId) await v.client.revokeLease(l.leaseId);
          }
          // App-held leases (VaultAgent) and any we lost track of.
          await v.client.raw('PUT', `/sys/leases/revoke-prefix/${v.databaseMount}/creds/${r.ids.vaultName}`);
          await v.client.deleteDatabaseRole(v.databaseMount, r.ids.vaultName);
          if (state?.mode === 'VaultAgent' || r.spec.credentials.mode === 'VaultAgent') {
            await v.client.deleteKubernetesAuthRole(v.kubernetesMount, r.ids.vaultName).catch((err) => {
              if (!(err instanceof VaultRequestError && err.statusCode === 404)) throw err;
            });
            await v.client.deletePolicy(r.ids.vaultName);
          }
        } catch (err) {
          throw vaultFailure(v.address, err);
        }
      }
      const prov = r.pg.provisioner;
      await (async () => {
        if (r.spec.deletionPolicy === 'Delete') {
          await prov.dropClaim({ schema: r.ids.schema, ownerRole: r.ids.ownerRole });
          ctx.log.info({ schema: r.ids.schema }, 'dropped schema and roles (deletionPolicy Delete)');
        } else {
          for (const m of await prov.loginMembers(r.ids.ownerRole)) await prov.dropLoginRole(m, r.ids.ownerRole);
          ctx.log.info({ schema: r.ids.schema }, 'revoked credentials; schema retained (deletionPolicy Retain)');
        }
      })().catch((err) => {
        throw err instanceof SchemaConflictError ? err : postgresFailure(r.pg.target, err);
      });
    } catch (err) {
      throw asReconcileError(err);
    }
  }
}

export const databaseClaimController = (): ControllerDefinition<DatabaseClaimObject> => ({
  apiVersion: API_VERSION,
  kind: 'DatabaseClaim',
  reconciler: new DatabaseClaimReconciler(),
  owns: [{ apiVersion: 'v1', kind: 'Secret' }],
  concurrency: Number(process.env.FAMILYHUB_DATABASECLAIM_CONCURRENCY ?? 8),
});
