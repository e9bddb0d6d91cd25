// OIDCClient: keeps one client at the FamilyHub's IdP equal to the CR and
// its credentials in a Secret. Each reconcile reads the client back, so a
// hand edit at the IdP is restored (Drifted event) on the next resync.
import type { OperatorConfig } from '../../config.js';
import { checkWritable, ensureOwned } from '../../core/children.js';
import type { ControllerDefinition } from '../../core/controller.js';
import { contentHash, encodeSecretData } from '../../core/kube-client.js';
import { ReconcileError, type ConditionInput, type KubeObject, type ReconcileContext, type ReconcileResult, type Reconciler, type Resource } from '../../core/reconciler.js';
import { SECRET } from '../../core/resources.js';
import { parseDuration } from '../../crds/duration.js';
import { oidcClientSpecSchema, type OIDCClientSpec, type OIDCClientStatus } from '../../crds/oidcclient.js';
import { resourceTypes } from '../../crds/index.js';
import { IdpError, IdpUnreachableError, specDiff, type ClientRef, type IdpAdapter, type IdpHealth } from '../../idp/types.js';
import { fingerprint, type IdpEntry, type PlatformConnections } from '../../platform/connections.js';
import { hubWatch, resolveHub, type Hub } from '../../platform/hub.js';
import { clientIdOf, desiredClient, ownerTag, unknownScopes, validateAgainstHub } from './desired.js';
import { readRegistration, registrationSecretName, writeRegistration } from './registration.js';

export type OIDCClientObject = Resource<OIDCClientSpec, OIDCClientStatus>;

export const OIDCCLIENT_FINALIZER = 'familyhub.dev/oidcclient';
const ROTATION_ANNOTATION = 'familyhub.dev/rotation-generation';
const ROTATED_AT_ANNOTATION = 'familyhub.dev/rotated-at';
const CONTENT_HASH_ANNOTATION = 'familyhub.dev/content-hash';

/** Domain enforcement results already logged (each enforcement is a new object). */
const loggedDomainChanges = new WeakSet<object>();

export function secretNameOf(obj: KubeObject, spec: OIDCClientSpec): string {
  return spec.secretName ?? `${obj.metadata.name}-oidc`;
}

/** Published instead of the secret so a change is visible without exposing it. */
function secretHash(secret: string | undefined): string | undefined {
  return secret ? fingerprint(secret) : undefined;
}

export interface OIDCClientReconcilerOptions {
  idpRetryMs: number;
  recentMs: number;
}

export class OIDCClientReconciler implements Reconciler<OIDCClientSpec, OIDCClientStatus> {
  readonly name = 'oidcclient';
  readonly finalizer = OIDCCLIENT_FINALIZER;

  constructor(private readonly platform: PlatformConnections, private readonly opts: OIDCClientReconcilerOptions) {}

  /** IdP failures become conditions with context; unreachability is its own condition. */
  private asReconcileError(err: unknown, entry?: IdpEntry): unknown {
    if (err instanceof IdpUnreachableError) {
      if (entry) this.platform.forgetHealth(entry);
      return new ReconcileError('IdPUnreachable', err.message, { conditionType: 'IdPReachable', retryAfterMs: this.opts.idpRetryMs, cause: err });
    }
    if (err instanceof IdpError) {
      return new ReconcileError('IdPError', err.message, { conditionType: 'ClientReady', retryAfterMs: this.opts.idpRetryMs, cause: err });
    }
    return err;
  }

  /**
   * Last successful convergence per object. Writing the Secret wakes this
   * controller again at once (it watches its Secrets); re-reading the IdP
   * client a few milliseconds after writing it tells nothing new, so such a
   * wake-up reuses the result while the generation and Secret still match.
   * Periodic resyncs come later than opts.recentMs and always read the IdP.
   */
  private readonly recent = new Map<string, { generation?: number; hubGeneration?: number; secretHash: string; issuedAt?: string; at: number; result: ReconcileResult<OIDCClientStatus> }>();

  async reconcile(obj: OIDCClientObject, ctx: ReconcileContext): Promise<ReconcileResult<OIDCClientStatus>> {
    const spec = obj.spec;
    const hub = await resolveHub(ctx, obj, spec.familyHubRef);
    const problems = validateAgainstHub(spec, hub);
    if (problems.length) throw new ReconcileError('InvalidSpec', problems.join('; '), { conditionType: 'ClientReady', terminal: true });
    const ns = obj.metadata.namespace!;
    const secretName = secretNameOf(obj, spec);
    // Before any IdP call: the credentials must never land in someone else's Secret.
    const stored = await checkWritable(ctx, obj, SECRET, ns, secretName, { conditionType: 'ClientReady' });
    await checkWritable(ctx, obj, SECRET, ns, registrationSecretName(secretName), { conditionType: 'ClientReady' });

    const memo = this.recent.get(obj.metadata.uid!);
    if (memo && Date.now() - memo.at < this.opts.recentMs && memo.generation === obj.metadata.generation && memo.hubGeneration === hub.metadata.generation) {
      const a = stored?.metadata.annotations;
      if (a?.[CONTENT_HASH_ANNOTATION] === memo.secretHash && a?.[ROTATED_AT_ANNOTATION] === memo.issuedAt) return memo.result;
    }
    this.recent.delete(obj.metadata.uid!);

    const entry = await this.platform.idp(ctx, hub);
    try {
      // Independent admin calls (both cached for the health TTL); the first
      // reconciles after a start would otherwise wait for them one after the other.
      const [health, domains] = await Promise.all([this.platform.healthOf(entry), this.platform.ensureEmailDomains(entry, hub)]);
      // The result is shared by every reconcile within the health TTL; log the change once.
      if (domains === 'changed' && entry.domains && !loggedDomainChanges.has(entry.domains)) {
        loggedDomainChanges.add(entry.domains);
        ctx.log.info({ issuer: entry.adapter.issuer, domains: hub.spec.allowedEmailDomains }, 'IdP e-mail domain restriction applied');
      }
      const { secretHash: written, issuedAt, ...result } = await this.converge(obj, hub, entry.adapter, health, stored, ctx);
      if (written) this.recent.set(obj.metadata.uid!, { generation: obj.metadata.generation, hubGeneration: hub.metadata.generation, secretHash: written, issuedAt, at: Date.now(), result });
      return result;
    } catch (err) {
      throw this.asReconcileError(err, entry);
    }
  }

  private async converge(
    obj: OIDCClientObject,
    hub: Hub,
    idp: IdpAdapter,
    health: IdpHealth,
    storedMeta: KubeObject | undefined,
    ctx: ReconcileContext,
  ): Promise<ReconcileResult<OIDCClientStatus> & { secretHash?: string; issuedAt?: string }> {
    const spec = obj.spec;
    const ns = obj.metadata.namespace!;
    const reachable: ConditionInput = { type: 'IdPReachable', status: 'True', reason: 'Reachable', message: `${idp.kind} at ${idp.issuer} reachable` };
    const desired = desiredClient(obj, spec, hub);
    const unknown = unknownScopes(desired, health.knownScopes);
    if (unknown.length) {
      // Terminal: the spec (or the hub's default scopes, which are watched)
      // must change, or the IdP start offering the scope (the stalled retry
      // looks again). The last status stays, so a client registered before
      // the scope went away is still deleted with the object.
      throw new ReconcileError('UnknownScope', `scopes not offered by the IdP: ${unknown.join(', ')}`, { conditionType: 'ClientReady', terminal: true, conditions: [reachable] });
    }

    const secretName = secretNameOf(obj, spec);
    const stored = storedMeta !== undefined;
    let ref: ClientRef | undefined =
      idp.kind === 'oidc-dcr' ? await readRegistration(ctx, obj, ns, registrationSecretName(secretName)) : { clientId: desired.clientId };

    let observed = ref ? await idp.getClient(ref) : undefined;
    let clientSecret: string | undefined;
    let action: 'Created' | 'Updated' | 'Adopted' | 'InSync' | 'Restored' = 'InSync';
    let rotatedAt: string | undefined;

    if (observed && idp.kind === 'keycloak' && observed.owner !== ownerTag(obj)) {
      // adoptExisting is for clients made by hand or left behind (Retain), never
      // for one another OIDCClient still manages: that would move its redirect
      // URIs and secret to this object, and delete the client with it.
      const holder = observed.owner ? await managingClient(ctx, observed.owner) : undefined;
      if (!spec.adoptExisting || holder) {
        // Terminal: a new clientId or adoptExisting (spec), or the other
        // client going away at the IdP (the stalled retry looks again).
        throw new ReconcileError('ClientExists', holder
          ? `client "${desired.clientId}" already exists in the IdP and is managed by OIDCClient ${observed.owner}; adoptExisting takes over only clients no OIDCClient manages`
          : `client "${desired.clientId}" already exists in the IdP and is not managed by this OIDCClient${observed.owner ? ` (owner ${observed.owner})` : ''}; set spec.adoptExisting: true to take it over`,
        { conditionType: 'ClientReady', terminal: true, conditions: [reachable] });
      }
      ref = await idp.updateClient(observed.ref, desired);
      action = 'Adopted';
      ctx.events.normal(obj, 'Adopted', `took over existing IdP client ${desired.clientId}`);
      observed = await idp.getClient(ref);
    }

    if (!observed) {
      const created = await idp.createClient(desired);
      ref = created.ref;
      clientSecret = created.clientSecret;
      action = 'Created';
      rotatedAt = new Date().toISOString();
      if (idp.kind === 'oidc-dcr') await writeRegistration(ctx, obj, ns, registrationSecretName(secretName), ref);
      // No Event: ClientReady (reason Created) says it, and an Event per new
      // client would add an apiserver write to each (same rule as the core's
      // first-time Ready). Later changes (Updated, Drifted, SecretRotated) do get one.
      ctx.log.info({ clientId: ref.clientId, issuer: idp.issuer }, 'IdP client created');
    } else if (action !== 'Adopted') {
      ref = observed.ref;
      const diff = [...specDiff(idp.project(desired), observed.spec, idp.scopeSemantics), ...(observed.extraDrift ?? [])];
      if (diff.length) {
        // Same generation as last converged and it was in sync: someone changed it at the IdP.
        const drifted = obj.status?.observedGeneration === obj.metadata.generation && obj.status?.clientId === ref.clientId;
        ref = await idp.updateClient(ref, desired);
        action = drifted ? 'Restored' : 'Updated';
        if (drifted) ctx.events.warning(obj, 'Drifted', `IdP client ${ref.clientId} was changed outside the operator (${diff.join(', ')}); restored`);
        else ctx.events.normal(obj, 'Updated', `updated IdP client ${ref.clientId} (${diff.join(', ')})`);
        ctx.log.info({ clientId: ref.clientId, fields: diff, drifted }, 'IdP client converged');
      }
      clientSecret = observed.clientSecret;
    }
    if (idp.kind === 'oidc-dcr' && ref) await writeRegistration(ctx, obj, ns, registrationSecretName(secretName), ref);

    const wantRotation = spec.rotation.generation;
    const haveRotation = Number(storedMeta?.metadata.annotations?.[ROTATION_ANNOTATION] ?? 0);
    // When the current secret was issued: kept on the Secret (status can be
    // rebuilt from scratch); a Secret from before this annotation starts the clock now.
    const issuedAt = storedMeta?.metadata.annotations?.[ROTATED_AT_ANNOTATION] ?? obj.status?.lastRotatedAt ?? new Date().toISOString();
    const intervalMs = spec.rotation.interval ? parseDuration(spec.rotation.interval) : undefined;
    const due = wantRotation > haveRotation ? `rotation generation ${wantRotation}`
      : intervalMs !== undefined && Date.now() - Date.parse(issuedAt) >= intervalMs ? `older than rotation.interval ${spec.rotation.interval}`
      : undefined;
    if (action !== 'Created' && desired.confidential && stored && due) {
      const rotated = await idp.rotateSecret(ref!, desired);
      ref = rotated.ref;
      clientSecret = rotated.clientSecret;
      rotatedAt = new Date().toISOString();
      if (idp.kind === 'oidc-dcr') await writeRegistration(ctx, obj, ns, registrationSecretName(secretName), ref);
      ctx.events.normal(obj, 'SecretRotated', `client secret rotated (${due})`);
      ctx.log.info({ clientId: ref.clientId, rotationGeneration: wantRotation, reason: due }, 'client secret rotated');
    }
    const secretIssuedAt = rotatedAt ?? issuedAt;
    if (desired.confidential && !clientSecret) clientSecret = await idp.readSecret(ref!);

    const data: Record<string, string> = {
      'client-id': ref!.clientId,
      issuer: idp.issuer,
      'discovery-url': `${idp.issuer}/.well-known/openid-configuration`,
    };
    if (clientSecret) data['client-secret'] = clientSecret;
    const rotationAnn = String(Math.max(wantRotation, haveRotation));
    const written = await ensureOwned(ctx, obj, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: secretName,
        namespace: ns,
        labels: { 'familyhub.dev/oidcclient': obj.metadata.name },
        annotations: { [CONTENT_HASH_ANNOTATION]: contentHash(data), [ROTATION_ANNOTATION]: rotationAnn, [ROTATED_AT_ANNOTATION]: secretIssuedAt },
      },
      type: 'Opaque',
      data: encodeSecretData(data),
    }, { conditionType: 'ClientReady' });
    if (written.changed && !written.drifted && action === 'InSync' && stored) ctx.log.info({ secret: secretName }, 'client Secret rewritten to match the IdP');

    return {
      secretHash: contentHash(data),
      issuedAt: secretIssuedAt,
      conditions: [
        reachable,
        { type: 'ClientReady', status: 'True', reason: action, message: `client ${ref!.clientId} registered at ${idp.issuer}; credentials in Secret ${secretName}` },
      ],
      status: {
        clientId: ref!.clientId,
        secretName,
        secretHash: secretHash(clientSecret),
        issuerUrl: idp.issuer,
        observedRotationGeneration: Math.max(wantRotation, haveRotation),
        lastRotatedAt: secretIssuedAt,
      },
      // Wake up when the scheduled rotation is due (the resync is usually later).
      ...(intervalMs !== undefined && desired.confidential
        ? { requeueAfterMs: Math.max(1_000, Date.parse(secretIssuedAt) + intervalMs - Date.now()) }
        : {}),
    };
  }

  async finalize(obj: OIDCClientObject, ctx: ReconcileContext): Promise<void> {
    this.recent.delete(obj.metadata.uid!);
    const spec = obj.spec;
    if (!obj.status?.clientId) {
      // Never registered (refused, or the IdP was never reached): nothing to clean up.
      ctx.log.info('no client was ever registered; nothing to delete at the IdP');
      return;
    }
    if (spec.deletionPolicy === 'Retain') {
      ctx.events.normal(obj, 'Retained', `IdP client ${obj.status?.clientId ?? clientIdOf(obj, spec)} left in place (deletionPolicy Retain)`);
      return;
    }
    let hub: Hub;
    try {
      hub = await resolveHub(ctx, obj, spec.familyHubRef);
    } catch (err) {
      // Without its hub the client cannot be reached; holding the CR forever helps nobody.
      ctx.events.warning(obj, 'CleanupSkipped', `cannot delete IdP client: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    let entry: IdpEntry;
    try {
      entry = await this.platform.idp(ctx, hub);
    } catch (err) {
      // A namespace being deleted takes the hub's Secrets first; the hub (terminating) cannot come back.
      if (err instanceof ReconcileError && err.reason === 'SecretMissing' && hub.metadata.deletionTimestamp) {
        ctx.events.warning(obj, 'CleanupSkipped', `cannot delete IdP client: ${err.message} and FamilyHub ${hub.metadata.name} is being deleted`);
        return;
      }
      throw err;
    }
    const idp = entry.adapter;
    const secretName = secretNameOf(obj, spec);
    try {
      if (idp.kind === 'oidc-dcr') {
        // Only a registration this object wrote: another object's would delete its client.
        const ref = await readRegistration(ctx, obj, obj.metadata.namespace!, registrationSecretName(secretName));
        if (ref) await idp.deleteClient(ref);
      } else {
        const clientId = clientIdOf(obj, spec);
        const observed = await idp.getClient({ clientId });
        // Never delete a client we were refused to manage (adoptExisting unset).
        if (observed && observed.owner === ownerTag(obj)) await idp.deleteClient({ clientId });
      }
    } catch (err) {
      throw this.asReconcileError(err, entry);
    }
    ctx.events.normal(obj, 'Deleted', `IdP client deleted (deletionPolicy Delete)`);
    ctx.log.info({ issuer: idp.issuer }, 'IdP client deleted');
  }
}

/** The OIDCClient an IdP client's owner tag ("namespace/name") names, if it still exists. */
async function managingClient(ctx: ReconcileContext, owner: string): Promise<KubeObject | undefined> {
  const [ns, name] = owner.split('/');
  return ns && name ? ctx.cache.get(resourceTypes.OIDCClient, ns, name) : undefined;
}

export const oidcClientController = (config: OperatorConfig, platform: PlatformConnections): ControllerDefinition<OIDCClientSpec, OIDCClientStatus> => ({
  resource: resourceTypes.OIDCClient,
  specSchema: oidcClientSpecSchema,
  // Each worker mostly waits on the IdP; more did not help on two cores (bench:oidcclient).
  concurrency: config.oidcClient.concurrency,
  reconciler: new OIDCClientReconciler(platform, { idpRetryMs: config.oidcClient.idpRetryMs, recentMs: config.oidcClient.recentMs }),
  owns: [SECRET],
  // A hub's spec change (domain, default scopes, IdP connection) re-converges its clients at once.
  watches: [hubWatch()],
  // A client secret does not expire at the IdP; what can be missed is its scheduled rotation.
  credentialsExpiry: (o) => (o.spec.clientType === 'confidential' && o.spec.rotation.interval && o.status?.lastRotatedAt
    ? Date.parse(o.status.lastRotatedAt) + parseDuration(o.spec.rotation.interval)
    : undefined),
});
