// DatabaseClaim: an isolated schema on the FamilyHub's PostgreSQL plus
// working credentials in a Secret. Observe (hub, database, Vault, Secret),
// converge (schema, Vault role, credentials), report (conditions, status
// without secrets), and wake up again when a lease needs renewal, rotation
// or a superseded login its revocation.
import type { OperatorConfig } from '../../config.js';
import { checkWritable, isControlledBy } from '../../core/children.js';
import type { ControllerDefinition } from '../../core/controller.js';
import { ReconcileError, type KubeObject, type ReconcileContext, type ReconcileResult, type Reconciler, type Resource } from '../../core/reconciler.js';
import { SECRET } from '../../core/resources.js';
import { databaseClaimSpecSchema, type CredentialsMode, type DatabaseClaimSpec, type DatabaseClaimStatus } from '../../crds/databaseclaim.js';
import { parseDuration } from '../../crds/duration.js';
import { resourceTypes } from '../../crds/index.js';
import type { PlatformConnections } from '../../platform/connections.js';
import { DependencyError, postgresFailure, vaultFailure, type HubPostgres } from '../../platform/database.js';
import { assertNotHubInput, hubWatch, resolveHub, type Hub } from '../../platform/hub.js';
import { claimIdentifiers, InvalidIdentifierError, type ClaimIdentifiers } from '../../postgres/identifiers.js';
import { SchemaConflictError } from '../../postgres/schema-provisioner.js';
import { VaultRequestError } from '../../vault/errors.js';
import { ensureStatic, ensureVaultAgent, ensureVaultDynamic, type CredentialsInput, type CredentialsOutcome } from './credentials.js';
import { rolloutConsumers } from './rollout.js';
import { readState } from './state.js';

export const DATABASECLAIM_FINALIZER = 'familyhub.dev/databaseclaim';

export type DatabaseClaimObject = Resource<DatabaseClaimSpec, DatabaseClaimStatus>;

interface Resolved {
  hub: Hub;
  ids: ClaimIdentifiers;
  secretName: string;
  pg: HubPostgres;
}

export class DatabaseClaimReconciler implements Reconciler<DatabaseClaimSpec, DatabaseClaimStatus> {
  readonly name = 'databaseclaim';
  readonly finalizer = DATABASECLAIM_FINALIZER;

  constructor(private readonly platform: PlatformConnections, private readonly dependencyRetryMs: number) {}

  private asReconcileError(err: unknown): unknown {
    if (err instanceof VaultRequestError || (err instanceof DependencyError && err.conditionType === 'VaultReady')) this.platform.vaultVerified.forget();
    if (err instanceof DependencyError) {
      return new ReconcileError(err.reason, err.message, { conditionType: err.conditionType, retryAfterMs: this.dependencyRetryMs });
    }
    if (err instanceof SchemaConflictError) return new ReconcileError('SchemaConflict', err.message, { conditionType: 'SchemaReady', terminal: true, retryAfterMs: 60_000 });
    if (err instanceof InvalidIdentifierError) return new ReconcileError('InvalidName', err.message, { conditionType: 'SchemaReady', terminal: true });
    return err;
  }

  private async resolve(claim: DatabaseClaimObject, ctx: ReconcileContext): Promise<Resolved> {
    const spec = claim.spec;
    const hub = await resolveHub(ctx, claim, spec.familyHubRef);
    const ids = claimIdentifiers(claim.metadata.namespace!, claim.metadata.name, spec.schemaName);
    const pg = await this.platform.postgres(ctx, hub);
    return { hub, ids, pg, secretName: secretNameOf(claim) };
  }

  /** VaultDynamic is the default only where Vault exists; without it the claim falls back to Static. */
  private effectiveMode(spec: DatabaseClaimSpec, hub: Hub): CredentialsMode {
    const mode = spec.credentials.mode;
    if (mode === 'VaultDynamic' && !hub.spec.vault) return 'Static';
    if (mode === 'VaultAgent' && !hub.spec.vault) throw new ReconcileError('VaultNotConfigured', 'credentials.mode VaultAgent needs spec.vault on the FamilyHub', { terminal: true, retryAfterMs: 60_000 });
    return mode;
  }

  private async vaultFor(ctx: ReconcileContext, r: Resolved): Promise<NonNullable<CredentialsInput['vault']>> {
    const client = (await this.platform.vault(ctx, r.hub))!;
    const connectionName = await this.platform.configureDatabaseEngine(r.hub, client, r.pg);
    const v = r.hub.spec.vault!;
    return { client, connectionName, databaseMount: v.databaseMountPath, kubernetesMount: v.kubernetesMountPath, address: client.address };
  }

  async reconcile(claim: DatabaseClaimObject, ctx: ReconcileContext): Promise<ReconcileResult<DatabaseClaimStatus>> {
    try {
      return await this.converge(claim, ctx);
    } catch (err) {
      throw this.asReconcileError(err);
    }
  }

  private async converge(claim: DatabaseClaimObject, ctx: ReconcileContext): Promise<ReconcileResult<DatabaseClaimStatus>> {
    const t0 = performance.now();
    const mark: Record<string, number> = {};
    const spec = claim.spec;
    // Before anything is provisioned: the credentials must never land in someone else's Secret.
    await assertNotHubInput(ctx, claim.metadata.namespace!, secretNameOf(claim), 'CredentialsReady');
    await checkWritable(ctx, claim, SECRET, claim.metadata.namespace!, secretNameOf(claim), { conditionType: 'CredentialsReady' });
    const r = await this.resolve(claim, ctx);
    mark.resolve = performance.now() - t0;
    const allowed = new Set<string>(r.hub.spec.postgres.allowedExtensions);
    const refused = spec.extensions.filter((e) => !allowed.has(e));
    if (refused.length) {
      throw new ReconcileError('ExtensionNotAllowed', `extension(s) ${refused.join(', ')} not in FamilyHub ${r.hub.metadata.name} spec.postgres.allowedExtensions`, { conditionType: 'SchemaReady', terminal: true, retryAfterMs: 60_000 });
    }
    const schema = await r.pg.provisioner.ensureClaimSchema({ schema: r.ids.schema, ownerRole: r.ids.ownerRole, extensions: spec.extensions }).catch((err) => {
      throw err instanceof SchemaConflictError ? err : postgresFailure(r.pg.target, err);
    });
    if (schema.changed) ctx.log.info({ schema: r.ids.schema, ownerRole: r.ids.ownerRole }, 'schema converged');

    mark.schema = performance.now() - t0;
    const mode = this.effectiveMode(spec, r.hub);
    const c = spec.credentials;
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
      vault: mode === 'Static' ? undefined : await this.vaultFor(ctx, r),
      verified: this.platform.vaultVerified,
      ctx,
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
      // The whole status: a field not reported here (leaseExpiresAt after a switch to Static) is removed.
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
   * every table in place. A claim that could never have provisioned anything
   * (an invalid or reserved schema name, a schema owned by someone else)
   * finishes at once.
   */
  async finalize(claim: DatabaseClaimObject, ctx: ReconcileContext): Promise<void> {
    let r: Resolved;
    try {
      r = await this.resolve(claim, ctx);
    } catch (err) {
      if (err instanceof InvalidIdentifierError) {
        ctx.log.info({ reason: err.message }, 'schema name was never valid; nothing was provisioned');
        return;
      }
      if (await this.hubLeavingWithoutSecrets(claim, ctx, err)) return;
      if (err instanceof ReconcileError && (err.reason === 'FamilyHubNotFound' || err.reason === 'FamilyHubInvalid')) {
        // Nothing left that says where the schema lives: holding the finalizer
        // forever would only block namespace deletion. Logins expire on their own.
        ctx.events.warning(claim, 'CleanupSkipped', `${err.message}; credentials were not revoked and expire on their own`);
        return;
      }
      throw this.asReconcileError(err);
    }
    try {
      const ns = claim.metadata.namespace!;
      const secret = await ctx.cache.get(SECRET, ns, r.secretName);
      // Lease ids only from our own Secret: another object's would make us revoke its credentials.
      const state = isControlledBy(secret, claim) ? readState(secret!.metadata.annotations) : undefined;
      if (r.hub.spec.vault) {
        const v = await this.vaultFor(ctx, r);
        try {
          for (const l of [...(state?.current ? [state.current] : []), ...(state?.retired ?? [])]) {
            if (l.leaseId) await v.client.revokeLease(l.leaseId);
          }
          // App-held leases (VaultAgent) and any we lost track of.
          await v.client.raw('PUT', `/sys/leases/revoke-prefix/${v.databaseMount}/creds/${r.ids.vaultName}`);
          await v.client.deleteDatabaseRole(v.databaseMount, r.ids.vaultName);
          if (state?.mode === 'VaultAgent' || claim.spec.credentials.mode === 'VaultAgent') {
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
      try {
        if (claim.spec.deletionPolicy === 'Delete') {
          await prov.dropClaim({ schema: r.ids.schema, ownerRole: r.ids.ownerRole });
          ctx.log.info({ schema: r.ids.schema }, 'dropped schema and roles (deletionPolicy Delete)');
        } else {
          for (const m of await prov.loginMembers(r.ids.ownerRole)) await prov.dropLoginRole(m, r.ids.ownerRole);
          ctx.log.info({ schema: r.ids.schema }, 'revoked credentials; schema retained (deletionPolicy Retain)');
        }
      } catch (err) {
        if (err instanceof SchemaConflictError) {
          // The schema belongs to someone else: it was never ours to drop.
          ctx.events.warning(claim, 'CleanupSkipped', `${err.message}; left untouched`);
          return;
        }
        throw postgresFailure(r.pg.target, err);
      }
    } catch (err) {
      if (await this.hubLeavingWithoutSecrets(claim, ctx, err)) return;
      throw this.asReconcileError(err);
    }
  }

  /**
   * A namespace being deleted takes the hub's credential Secrets (no
   * finalizer) before the claims (finalizer) and the hub (which waits for
   * them): nothing can ever reach the schema again, so waiting would keep
   * the namespace Terminating forever.
   */
  private async hubLeavingWithoutSecrets(claim: DatabaseClaimObject, ctx: ReconcileContext, err: unknown): Promise<boolean> {
    if (!(err instanceof DependencyError && err.reason === 'SecretMissing')) return false;
    const hub = await resolveHub(ctx, claim, claim.spec.familyHubRef).catch(() => undefined);
    if (!hub?.metadata.deletionTimestamp) return false;
    ctx.events.warning(claim, 'CleanupSkipped', `${err.message} and FamilyHub ${hub.metadata.name} is being deleted; credentials were not revoked (they expire on their own), schema left in place`);
    return true;
  }
}

export function secretNameOf(claim: KubeObject & { spec: DatabaseClaimSpec }): string {
  return claim.spec.secretName ?? `${claim.metadata.name}-db`;
}

export const databaseClaimController = (config: OperatorConfig, platform: PlatformConnections): ControllerDefinition<DatabaseClaimSpec, DatabaseClaimStatus> => ({
  resource: resourceTypes.DatabaseClaim,
  specSchema: databaseClaimSpecSchema,
  reconciler: new DatabaseClaimReconciler(platform, config.databaseClaim.dependencyRetryMs),
  owns: [SECRET],
  watches: [hubWatch()],
  concurrency: config.databaseClaim.concurrency,
  // VaultDynamic only: Static and VaultAgent credentials have no lease the operator holds.
  credentialsExpiry: (o) => (o.status?.leaseExpiresAt ? Date.parse(o.status.leaseExpiresAt) : undefined),
});
