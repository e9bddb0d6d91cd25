// OIDCClient: keeps one client at the FamilyHub's IdP equal to the CR and
// its credentials in a Secret. Each reconcile reads the client back, so a
// hand edit at the IdP is restored (Drifted event) on the next resync.
import { createHash } from 'node:crypto';
import { API_VERSION } from '../core/constants.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, contentHash, ownerReference } from '../core/kube-client.js';
import { oidcClientSpecSchema, type OIDCClientSpec } from '../crds/oidcclient.js';
import { ReconcileError, type KubeObject, type ReconcileContext, type ReconcileResult, type Reconciler } from '../core/reconciler.js';
import { IdpError, IdpUnreachableError, specDiff, type ClientRef, type IdpAdapter } from '../idp/types.js';
import { parseDuration } from '../crds/duration.js';
import { ensureEmailDomains, forgetHealth, getFamilyHub, healthOf, idpFor, type HubObject } from './familyhub-identity.js';
import { clientIdOf, desiredClient, ownerTag, unknownScopes, validateAgainstHub } from './oidcclient-desired.js';
import { readRegistration, registrationSecretName, writeRegistration } from './oidcclient-registration.js';

export interface OIDCClientObject extends KubeObject {
  spec: Record<string, unknown>;
  status?: Record<string, any>;
}

export const OIDCCLIENT_FINALIZER = 'familyhub.dev/oidcclient';
const ROTATION_ANNOTATION = 'familyhub.dev/rotation-generation';
const ROTATED_AT_ANNOTATION = 'familyhub.dev/rotated-at';
const IDP_RETRY_MS = Number(process.env.FAMILYHUB_IDP_RETRY_MS ?? 15_000);
const RECENT_MS = Number(process.env.FAMILYHUB_OIDC_RECENT_MS ?? 3_000);

type Conditions = NonNullable<ReconcileResult['conditions']>;

/** Domain enforcement results already logged (each enforcement is a new object). */
const loggedDomainChanges = new WeakSet<object>();

function parseSpec(obj: OIDCClientObject): OIDCClientSpec {
  const parsed = oidcClientSpecSchema.safeParse(obj.spec);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join('.') || 'spec'}: ${i.message}`).join('; ');
    throw new ReconcileError('InvalidSpec', msg, { conditionType: 'ClientReady', retryAfterMs: 5 * 60_000 });
  }
  return parsed.data;
}

export function secretNameOf(obj: KubeObject, spec: OIDCClientSpec): string {
  return spec.secretName ?? `${obj.metadata.name}-oidc`;
}

function sameSecretData(current: Record<string, string>, want: Record<string, string>): boolean {
  const keys = Object.keys(want);
  return keys.length === Object.keys(current).length && keys.every((k) => current[k] === Buffer.from(want[k]!, 'utf8').toString('base64'));
}

/** Published instead of the secret so a change is visible without exposing it. */
function secretHash(secret: string | undefined): string | undefined {
  return secret ? createHash('sha256').update(secret).digest('hex').slice(0, 16) : undefined;
}

/**
 * The client's Secret from the owned-Secret informer. The core's cache reader
 * goes to the API instead while one of our writes to it has not come back
 * through the watch (the cache could miss e.g. the rotation annotation).
 * Saves one apiserver read per reconcile.
 */
function storedSecret(ctx: ReconcileContext, ns: string, name: string): Promise<KubeObject | undefined> {
  return ctx.cache.get('v1', 'Secret', ns, name, { managedOnly: true });
}

/**
 * The referenced FamilyHub from the informer cache (the controller watches
 * FamilyHubs, see oidcClientController); the API only before that cache synced.
 */
async function hubOf(ctx: ReconcileContext, obj: KubeObject, spec: OIDCClientSpec): Promise<HubObject> {
  const ns = spec.familyHubRef.namespace ?? obj.metadata.namespace!;
  const hub = await ctx.cache.get<HubObject>(API_VERSION, 'FamilyHub', ns, spec.familyHubRef.name);
  // Same errors as the API path, so a missing hub or identity reads the same in status.
  return hub ? getFamilyHubFrom(hub, ns, spec.familyHubRef.name) : getFamilyHub(ctx.kube, obj.metadata.namespace!, spec.familyHubRef);
}

function getFamilyHubFrom(hub: HubObject, ns: string, name: string): HubObject {
  if (!hub.spec.identity) throw new ReconcileError('IdentityNotConfigured', `FamilyHub ${ns}/${name} has no spec.identity`, { retryAfterMs: 30_000 });
  return hub;
}

/** IdP failures become conditions with context; unreachability is its own condition. */
function asReconcileError(err: unknown, entryForget?: () => void): unknown {
  if (err instanceof IdpUnreachableError) {
    entryForget?.();
    return new ReconcileError('IdPUnreachable', err.message, { conditionType: 'IdPReachable', retryAfterMs: IDP_RETRY_MS, cause: err });
  }
  if (err instanceof IdpError) {
    return new ReconcileError('IdPError', err.message, { conditionType: 'ClientReady', retryAfterMs: IDP_RETRY_MS, cause: err });
  }
  return err;
}

export class OIDCClientReconciler implements Reconciler<OIDCClientObject> {
  readonly name = 'oidcclient';
  readonly finalizer = OIDCCLIENT_FINALIZER;

  /**
   * Last successful convergence per object. Writing the Secret wakes this
   * controller again at once (it watches its Secrets); re-reading the IdP
   * client a few milliseconds after writing it tells nothing new, so such a
   * wake-up reuses the result while the generation and Secret still match.
   * Periodic resyncs come later than RECENT_MS and always read the IdP.
   */
  private readonly recent = new Map<string, { generation?: number; hubGeneration?: number; secretHash: string; issuedAt?: string; at: number; result: ReconcileResult }>();

  async reconcile(obj: OIDCClientObject, ctx: ReconcileContext): Promise<ReconcileResult> {
    const spec = parseSpec(obj);
    const hub = await hubOf(ctx, obj, spec);
    const problems = validateAgainstHub(spec, hub);
    if (problems.length) throw new ReconcileError('InvalidSpec', problems.join('; '), { conditionType: 'ClientReady', retryAfterMs: 5 * 60_000 });

    const memo = this.recent.get(obj.metadata.uid!);
    if (memo && Date.now() - memo.at < RECENT_MS && memo.generation === obj.metadata.generation && memo.hubGeneration === hub.metadata.generation) {
      const s = await storedSecret(ctx, obj.metadata.namespace!, secretNameOf(obj, spec));
      const a = s?.metadata.annotations;
      if (a?.['familyhub.dev/content-hash'] === memo.secretHash && a?.[ROTATED_AT_ANNOTATION] === memo.issuedAt) return memo.result;
    }
    this.recent.delete(obj.metadata.uid!);

    const entry = await idpFor(hub, ctx.kube);
    try {
      // Independent admin calls (both cached for the health TTL); the first
      // reconciles after a start would otherwise wait for them one after the other.
      const [health, domains] = await Promise.all([healthOf(entry), ensureEmailDomains(entry, hub)]);
      // The result is shared by every reconcile within the health TTL; log the change once.
      if (domains === 'changed' && entry.domains && !loggedDomainChanges.has(entry.domains)) {
        loggedDomainChanges.add(entry.domains);
        ctx.log.info({ issuer: entry.adapter.issuer, domains: hub.spec.allowedEmailDomains }, 'IdP e-mail domain restriction applied');
      }
      const { secretHash: written, issuedAt, ...result } = await this.converge(obj, spec, hub, entry.adapter, health, ctx);
      if (written) this.recent.set(obj.metadata.uid!, { generation: obj.metadata.generation, hubGeneration: hub.metadata.generation, secretHash: written, issuedAt, at: Date.now(), result });
      return result;
    } catch (err) {
      throw asReconcileError(err, () => forgetHealth(entry));
    }
  }

  private async converge(
    obj: OIDCClientObject,
    spec: OIDCClientSpec,
    hub: HubObject,
    idp: IdpAdapter,
    health: Awaited<ReturnType<typeof healthOf>>,
    ctx: ReconcileContext,
  ): Promise<ReconcileResult & { secretHash?: string; issuedAt?: string }> {
    const ns = obj.metadata.namespace!;
    const reachable: Conditions[number] = { type: 'IdPReachable', status: 'True', reason: 'Reachable', message: `${idp.kind} at ${idp.issuer} reachable` };
    const desired = desiredClient(obj, spec, hub);
    const unknown = unknownScopes(desired, health.knownScopes);
    if (unknown.length) {
      return {
        conditions: [reachable, { type: 'ClientReady', status: 'False', reason: 'UnknownScope', message: `scopes not offered by the IdP: ${unknown.join(', ')}` }],
      };
    }

    const secretName = secretNameOf(obj, spec);
    const storedMeta = await storedSecret(ctx, ns, secretName);
    const stored = storedMeta?.data !== undefined;
    let ref: ClientRef | undefined =
      idp.kind === 'oidc-dcr' ? await readRegistration(ctx.kube, ns, registrationSecretName(secretName)) : { clientId: desired.clientId };

    let observed = ref ? await idp.getClient(ref) : undefined;
    let clientSecret: string | undefined;
    let action: 'Created' | 'Updated' | 'Adopted' | 'InSync' | 'Restored' = 'InSync';
    let rotatedAt: string | undefined;

    if (observed && idp.kind === 'keycloak' && observed.owner !== ownerTag(obj)) {
      if (!spec.adoptExisting) {
        return {
          conditions: [reachable, {
            type: 'ClientReady', status: 'False', reason: 'ClientExists',
            message: `client "${desired.clientId}" already exists in the IdP and is not managed by this OIDCClient${observed.owner ? ` (owner ${observed.owner})` : ''}; set spec.adoptExisting: true to take it over`,
          }],
        };
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
      if (idp.kind === 'oidc-dcr') await writeRegistration(ctx.kube, ns, registrationSecretName(secretName), ref, obj);
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
    if (idp.kind === 'oidc-dcr' && ref) await writeRegistration(ctx.kube, ns, registrationSecretName(secretName), ref, obj);

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
      if (idp.kind === 'oidc-dcr') await writeRegistration(ctx.kube, ns, registrationSecretName(secretName), ref, obj);
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
    // The Secret was read above; skip applySecret (and its own read) when it already matches.
    const upToDate = storedMeta
      && storedMeta.metadata.annotations?.['familyhub.dev/content-hash'] === contentHash(data)
      && storedMeta.metadata.annotations?.[ROTATION_ANNOTATION] === rotationAnn
      && storedMeta.metadata.annotations?.[ROTATED_AT_ANNOTATION] === secretIssuedAt
      && storedMeta.metadata.ownerReferences?.some((r) => r.uid === obj.metadata.uid)
      && sameSecretData(storedMeta.data ?? {}, data);
    if (!upToDate) {
      // Applied directly: applySecret would read the Secret again to compare.
      await ctx.kube.apply({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: secretName,
          namespace: ns,
          labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, 'familyhub.dev/oidcclient': obj.metadata.name },
          annotations: { 'familyhub.dev/content-hash': contentHash(data), [ROTATION_ANNOTATION]: rotationAnn, [ROTATED_AT_ANNOTATION]: secretIssuedAt },
          ownerReferences: [ownerReference(obj)],
        },
        type: 'Opaque',
        data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')])),
      });
      if (action === 'InSync' && stored) ctx.log.info({ secret: secretName }, 'client Secret rewritten to match the IdP');
    }

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
    const parsed = oidcClientSpecSchema.safeParse(obj.spec);
    if (!parsed.success) return;
    const spec = parsed.data;
    if (spec.deletionPolicy === 'Retain') {
      ctx.events.normal(obj, 'Retained', `IdP client ${obj.status?.clientId ?? clientIdOf(obj, spec)} left in place (deletionPolicy Retain)`);
      return;
    }
    let hub;
    try {
      hub = await hubOf(ctx, obj, spec);
    } catch (err) {
      // Without its hub the client cannot be reached; holding the CR forever helps nobody.
      ctx.events.warning(obj, 'CleanupSkipped', `cannot delete IdP client: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const entry = await idpFor(hub, ctx.kube);
    const idp = entry.adapter;
    const secretName = secretNameOf(obj, spec);
    try {
      if (idp.kind === 'oidc-dcr') {
        const ref = await readRegistration(ctx.kube, obj.metadata.namespace!, registrationSecretName(secretName));
        if (ref) await idp.deleteClient(ref);
      } else {
        const clientId = clientIdOf(obj, spec);
        const observed = await idp.getClient({ clientId });
        // Never delete a client we were refused to manage (adoptExisting unset).
        if (observed && observed.owner === ownerTag(obj)) await idp.deleteClient({ clientId });
      }
    } catch (err) {
      throw asReconcileError(err, () => forgetHealth(entry));
    }
    ctx.events.normal(obj, 'Deleted', `IdP client deleted (deletionPolicy Delete)`);
    ctx.log.info({ issuer: idp.issuer }, 'IdP client deleted');
  }
}

/** Workers; each mostly waits on the IdP. More did not help on two cores (bench:oidcclient). */
export const OIDCCLIENT_CONCURRENCY = Number(process.env.FAMILYHUB_OIDCCLIENT_WORKERS ?? 4);

export const oidcClientController = () => ({
  apiVersion: API_VERSION,
  kind: 'OIDCClient',
  concurrency: OIDCCLIENT_CONCURRENCY,
  reconciler: new OIDCClientReconciler(),
  owns: [{ apiVersion: 'v1', kind: 'Secret' }],
  watches: [{
    // A hub's spec change (domain, default scopes, IdP connection) re-converges
    // its clients at once rather than at the next resync; the informer also
    // serves every reconcile's hub lookup without an apiserver read.
    apiVersion: API_VERSION,
    kind: 'FamilyHub',
    map: (hub: KubeObject, clients: () => KubeObject[]) => clients()
      .filter((c) => c.spec?.familyHubRef?.name === hub.metadata.name && (c.spec.familyHubRef.namespace ?? c.metadata.namespace) === hub.metadata.namespace)
      .map((c) => `${c.metadata.namespace}/${c.metadata.name}`),
  }],
});
