// Route: one HTTPRoute (plus the gateway implementation's policy objects)
// per Route, owned by it, on the hub's Gateway. Ready comes only from what
// the gateway itself writes into the HTTPRoute's parent status (Accepted and
// ResolvedRefs for our Gateway at the current generation), never from our
// own write. Children are owned through the shared informers: the gateway's
// status write or a hand edit wakes the Route at once. Their CRDs need not be
// installed (an unserved kind is an empty, synced cache), so no timer polls
// them; the core's periodic resync is the only safety net.
import type { OperatorConfig } from '../../config.js';
import { ChildConflictError, checkWritable, describeOwner, ensureOwned, isControlledBy } from '../../core/children.js';
import type { ControllerDefinition } from '../../core/controller.js';
import { addFinalizer } from '../../core/finalizers.js';
import { objectKey } from '../../core/informer.js';
import { KubeApiError, MANAGED_BY_LABEL, MANAGED_BY_VALUE, isConflict, isMissingResourceType, isNotFound } from '../../core/kube-client.js';
import { ReconcileError, type ConditionInput, type KubeObject, type ReconcileContext, type ReconcileResult, type Reconciler, type Resource } from '../../core/reconciler.js';
import { registerResource, resourceFor, type ResourceType } from '../../core/resources.js';
import { resourceTypes } from '../../crds/index.js';
import { routeSpecSchema, type RouteSpec, type RouteStatus } from '../../crds/route.js';
import {
  GRANT_FROM_LABEL, REFERENCE_GRANT_API_VERSION, gateway as gatewayObject, grantPermits, httpsRedirect, referenceGrant, routeAcceptance,
} from '../../gateway/gateway-api/objects.js';
import {
  providerByName, providerNameForController, GATEWAY_API_VERSION, type CrossNamespaceRef, type GatewayProvider, type GatewayTarget, type RouteIntent,
} from '../../gateway/index.js';
import { ENVOY_GATEWAY_API_VERSION } from '../../gateway/envoy-gateway/provider.js';
import { TRAEFIK_API_VERSION } from '../../gateway/traefik/provider.js';
import type { PlatformConnections } from '../../platform/connections.js';
import { FAMILYHUB, hubWatch, resolveHub, typedHub, type Hub } from '../../platform/hub.js';
import { effectiveAuthService, runtimeServiceName, runtimeServiceOnHost } from '../../platform/runtime.js';
import { conflictingWinner, hostnameProblem, sameClaim } from './hostnames.js';

export type RouteObject = Resource<RouteSpec, RouteStatus>;

export const GATEWAY = registerResource({ apiVersion: GATEWAY_API_VERSION, kind: 'Gateway', plural: 'gateways', namespaced: true });
export const GATEWAY_CLASS = registerResource({ apiVersion: GATEWAY_API_VERSION, kind: 'GatewayClass', plural: 'gatewayclasses', namespaced: false });
export const HTTPROUTE = registerResource({ apiVersion: GATEWAY_API_VERSION, kind: 'HTTPRoute', plural: 'httproutes', namespaced: true });
export const MIDDLEWARE = registerResource({ apiVersion: TRAEFIK_API_VERSION, kind: 'Middleware', plural: 'middlewares', namespaced: true });
export const SECURITY_POLICY = registerResource({ apiVersion: ENVOY_GATEWAY_API_VERSION, kind: 'SecurityPolicy', plural: 'securitypolicies', namespaced: true });
export const BACKEND_TRAFFIC_POLICY = registerResource({ apiVersion: ENVOY_GATEWAY_API_VERSION, kind: 'BackendTrafficPolicy', plural: 'backendtrafficpolicies', namespaced: true });
export const REFERENCE_GRANT = registerResource({ apiVersion: REFERENCE_GRANT_API_VERSION, kind: 'ReferenceGrant', plural: 'referencegrants', namespaced: true });

/**
 * Retry of a gateway's rejection. A rejection is the gateway's word, and its
 * next status write wakes the Route through the HTTPRoute informer; this is
 * only a slow safety net, like the core's resync.
 */
const REJECTED_RETRY_MS = 5 * 60_000;
/** A ReferenceGrant the operator may not write: RBAC changes are not watched, so look again now and then. */
const REF_NOT_PERMITTED_RETRY_MS = 30_000;

/**
 * On a Route that relies on a ReferenceGrant: the grant lives in another
 * namespace, so no owner reference can collect it, and once the last such
 * Route is gone no reconcile would sweep it.
 */
export const ROUTE_GRANT_FINALIZER = 'familyhub.dev/route-reference-grants';

const jwksMemo = new Map<string, Promise<string>>();

async function jwksUriOf(hub: Hub): Promise<string> {
  const issuer = hub.spec.identity.issuerUrl.replace(/\/$/, '');
  if (hub.spec.identity.kind === 'keycloak') return `${issuer}/protocol/openid-connect/certs`;
  let p = jwksMemo.get(issuer);
  if (!p) {
    p = fetch(`${issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000) }).then(async (r) => {
      if (!r.ok) throw new Error(`discovery answered ${r.status}`);
      const uri = ((await r.json()) as { jwks_uri?: string }).jwks_uri;
      if (!uri) throw new Error('discovery has no jwks_uri');
      return uri;
    });
    jwksMemo.set(issuer, p);
    p.catch(() => jwksMemo.delete(issuer));
  }
  try {
    return await p;
  } catch (err) {
    throw new ReconcileError('IdPUnreachable', `cannot read the JWKS location of ${issuer}: ${(err as Error).message}`, { conditionType: 'GatewayAccepted', retryAfterMs: 15_000 });
  }
}

export function intentOf(obj: RouteObject): RouteIntent {
  const s = obj.spec;
  return {
    name: obj.metadata.name,
    namespace: obj.metadata.namespace!,
    hostname: s.hostname,
    pathPrefix: s.pathPrefix,
    backend: { name: s.backendRef.name, port: s.backendRef.port },
    auth: { required: s.auth.required, audiences: s.auth.audiences, requiredGroups: s.auth.requiredGroups },
    rateLimit: s.rateLimit,
  };
}

/** Every child name a Route could have with this provider (to remove the ones no longer wanted). */
function possibleChildren(provider: GatewayProvider, intent: RouteIntent, target: GatewayTarget): KubeObject[] {
  const most: RouteIntent = { ...intent, auth: { ...intent.auth, required: true }, rateLimit: intent.rateLimit ?? { requests: 1, unit: 'Second' } };
  try {
    return provider.desired(most, target);
  } catch {
    return provider.desired({ ...most, auth: { ...most.auth, audiences: [] } }, target);
  }
}

export class RouteReconciler implements Reconciler<RouteSpec, RouteStatus> {
  readonly name = 'route';
  readonly finalizer = ROUTE_GRANT_FINALIZER;
  // Most Routes (Traefik, or the auth service in their own namespace) leave
  // nothing behind; only those with a cross-namespace reference get it.
  readonly finalizerOnDemand = true;

  async reconcile(obj: RouteObject, ctx: ReconcileContext): Promise<ReconcileResult<RouteStatus>> {
    const spec = obj.spec;
    const hub = await resolveHub(ctx, obj, spec.familyHubRef);
    const gw = hub.spec.gateway;
    if (!gw) throw new ReconcileError('GatewayNotConfigured', `FamilyHub ${hub.metadata.name} has no spec.gateway`, { conditionType: 'GatewayAccepted', terminal: true });

    const status: RouteStatus = { hostname: spec.hostname };
    const platform = await isPlatformRoute(ctx, obj, hub);
    const problem = hostnameProblem(spec.hostname, hub, platform);
    if (problem) {
      await this.removeChildren(ctx, obj);
      throw new ReconcileError(problem.reason, problem.message, { conditionType: 'HostnameAccepted', terminal: true });
    }
    // On a platform hostname every other Route is refused (reserved), so none of them can hold it, however old.
    const winner = platform ? undefined : conflictingWinner(obj, await ctx.cache.list(resourceTypes.Route));
    if (winner) {
      // Never serve a claim another Route holds, even with children from before.
      await this.removeChildren(ctx, obj);
      throw new ReconcileError('Conflict', `hostname ${spec.hostname} path ${spec.pathPrefix} is already claimed by the older Route ${winner.metadata.namespace}/${winner.metadata.name}`, {
        conditionType: 'HostnameAccepted', retryAfterMs: 60_000,
      });
    }

    const gateway = await this.ensureGateway(ctx, obj, hub);
    const provider = await this.providerFor(ctx, hub, gateway);
    const target = await this.targetFor(hub, provider, spec.hostname);
    const intent = intentOf(obj);
    let desired: KubeObject[];
    try {
      desired = provider.desired(intent, target);
    } catch (err) {
      throw new ReconcileError('InvalidSpec', (err as Error).message, { conditionType: 'GatewayAccepted', terminal: true });
    }
    // Every child's ownership first: an HTTPRoute written before a conflict on
    // its Middleware would be served through someone else's filter.
    for (const d of desired) {
      const type = resourceFor(d.apiVersion!, d.kind!);
      const ns = d.metadata.namespace ?? obj.metadata.namespace;
      const cached = await checkWritable(ctx, obj, type, ns, d.metadata.name, { conditionType: 'GatewayAccepted' });
      if (!cached) {
        // Absent from the cache is not proof: an object someone made a moment
        // ago may not have come through the watch yet, and the apply that
        // follows would take it over. Ask the apiserver before creating.
        const live = await ctx.kube.get(type.apiVersion, type.kind, ns, d.metadata.name);
        if (live && !isControlledBy(live, obj)) throw new ChildConflictError({ apiVersion: type.apiVersion, kind: type.kind, ...live }, describeOwner(live), 'GatewayAccepted');
      }
    }
    const refs = provider.crossNamespaceRefs(intent, target);
    if (refs.length) await this.ensureFinalizer(ctx, obj);
    await this.ensureGrants(ctx, obj, refs);
    let httpRoute: KubeObject | undefined;
    for (const d of desired) {
      const r = await ensureOwned(ctx, obj, d, { conditionType: 'GatewayAccepted' });
      if (d.kind === 'HTTPRoute') httpRoute = r.object;
    }
    await this.removeStale(ctx, obj, possibleChildren(provider, intent, target), desired);
    await this.sweepGrants(ctx);

    const httpsPort = gw.listeners.httpsPort;
    status.url = `https://${spec.hostname}${httpsPort === 443 ? '' : `:${httpsPort}`}${spec.pathPrefix}`;
    const accepted: ConditionInput = { type: 'HostnameAccepted', status: 'True', reason: 'Accepted', message: `${spec.hostname}${spec.pathPrefix} belongs to this Route` };
    const a = routeAcceptance(httpRoute, target);
    if (a.state === 'Rejected') {
      throw new ReconcileError(a.reason, a.message, { conditionType: 'GatewayAccepted', retryAfterMs: REJECTED_RETRY_MS });
    }
    return {
      status,
      conditions: [
        accepted,
        a.state === 'Accepted'
          ? { type: 'GatewayAccepted', status: 'True', reason: 'Accepted', message: a.message }
          : { type: 'GatewayAccepted', status: 'False', reason: a.reason, message: a.message },
      ],
      // No re-check on a timer: the gateway's status write wakes the Route
      // (also one that lands during this reconcile: the key is then dirty and
      // runs again). The Route once seen stuck not Ready in CI fits the core
      // skipping a status write against a cache that lagged its own previous
      // one (fixed in src/core/controller.ts writeStatus), not a lost event.
    };
  }

  /** Sweeps the grants only this Route needed; a failed removal keeps the Route (and says why) until it succeeds. */
  async finalize(obj: RouteObject, ctx: ReconcileContext): Promise<void> {
    await this.sweepGrants(ctx, obj);
  }

  /** Before the first grant it may cause: a Route deleted right after must not leave one behind. */
  private async ensureFinalizer(ctx: ReconcileContext, route: RouteObject): Promise<void> {
    if (route.metadata.finalizers?.includes(ROUTE_GRANT_FINALIZER)) return;
    // The reconcile may have started from a version before our own patch
    // came through the watch; the cache then reads the apiserver.
    const current = await ctx.cache.get(resourceTypes.Route, route.metadata.namespace, route.metadata.name) ?? route;
    await addFinalizer(ctx.kube, { ...current, apiVersion: route.apiVersion, kind: route.kind }, ROUTE_GRANT_FINALIZER);
  }

  /** The hub's Gateway; created (not owned: it serves every Route of the hub) when missing and a GatewayClass is named. */
  private async ensureGateway(ctx: ReconcileContext, route: RouteObject, hub: Hub): Promise<KubeObject | undefined> {
    const gw = hub.spec.gateway!;
    const existing = await ctx.cache.get(GATEWAY, gw.gatewayNamespace, gw.gatewayName);
    if (existing || !gw.gatewayClassName) return existing;
    const spec = {
      name: gw.gatewayName,
      namespace: gw.gatewayNamespace,
      className: gw.gatewayClassName,
      httpPort: gw.listeners.httpPort,
      httpsPort: gw.listeners.httpsPort,
      certificateSecretName: gw.listeners.certificateSecretName ?? `${gw.gatewayName}-tls`,
    };
    const label = (o: KubeObject): KubeObject => ({ ...o, metadata: { ...o.metadata, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } } });
    let created: KubeObject;
    try {
      created = await ctx.kube.create(label(gatewayObject(spec)));
      await ctx.kube.create(label(httpsRedirect(spec))).catch((e) => {
        if (!isConflict(e)) throw e;
      });
    } catch (err) {
      if (isConflict(err)) return ctx.kube.get(GATEWAY_API_VERSION, 'Gateway', gw.gatewayNamespace, gw.gatewayName);
      throw err;
    }
    ctx.events.normal(route, 'GatewayCreated', `created Gateway ${gw.gatewayNamespace}/${gw.gatewayName} (class ${gw.gatewayClassName}) for FamilyHub ${hub.metadata.name}`);
    return created;
  }

  private async providerFor(ctx: ReconcileContext, hub: Hub, gateway: KubeObject | undefined): Promise<GatewayProvider> {
    const gw = hub.spec.gateway!;
    const opts = { envoyAuthMode: gw.envoyGateway.authMode };
    if (gw.provider) return providerByName(gw.provider, opts);
    const className = gateway?.spec?.gatewayClassName ?? gw.gatewayClassName;
    if (!className) {
      throw new ReconcileError('GatewayNotFound', `Gateway ${gw.gatewayNamespace}/${gw.gatewayName} does not exist and FamilyHub ${hub.metadata.name} names no gatewayClassName or provider`, {
        conditionType: 'GatewayAccepted', retryAfterMs: 15_000,
      });
    }
    const cls = await ctx.cache.get(GATEWAY_CLASS, undefined, className);
    const name = providerNameForController(cls?.spec?.controllerName);
    if (!name) {
      throw new ReconcileError('UnsupportedGateway', cls
        ? `GatewayClass ${className} is handled by ${cls.spec?.controllerName}, for which no provider exists; set spec.gateway.provider on the FamilyHub`
        : `GatewayClass ${className} not found`, { conditionType: 'GatewayAccepted', retryAfterMs: 30_000 });
    }
    return providerByName(name, opts);
  }

  private async targetFor(hub: Hub, provider: GatewayProvider, hostname: string): Promise<GatewayTarget> {
    const gw = hub.spec.gateway!;
    const auth = effectiveAuthService(hub);
    const svc = auth?.serviceRef;
    const url = auth?.url ?? (svc ? `http://${svc.name}.${svc.namespace}.svc:${svc.port}` : undefined);
    const needsJwks = provider.name === 'envoy-gateway' && gw.envoyGateway.authMode === 'jwt';
    return {
      // A Gateway the operator created has one HTTPS listener for Routes; another Gateway: every listener.
      gateway: { name: gw.gatewayName, namespace: gw.gatewayNamespace, ...(gw.gatewayClassName ? { sectionName: 'https' } : {}) },
      identity: {
        issuer: hub.spec.identity.issuerUrl,
        jwksUri: needsJwks ? await jwksUriOf(hub) : '',
        audience: gw.audience,
        groupsClaim: 'groups',
      },
      authService: {
        url: url ?? missingAuthService(hub, hostname),
        ...(svc ? { service: svc } : {}),
      },
    };
  }

  /**
   * A ReferenceGrant in the target namespace for every cross-namespace
   * reference of the children (Envoy Gateway extAuth to an auth Service in
   * another namespace). A grant someone else wrote that already permits it is
   * enough; otherwise the operator writes its own, shared by every Route of
   * the source namespace. It cannot be owned by a Route (owner references do
   * not cross namespaces); sweepGrants removes it once no Route needs it, on
   * any Route's reconcile and, through the finalizer, when a Route that
   * relied on it is deleted.
   */
  private async ensureGrants(ctx: ReconcileContext, route: RouteObject, refs: CrossNamespaceRef[]): Promise<void> {
    for (const ref of refs) {
      const what = `the ${ref.from.kind} in ${ref.from.namespace} referring to ${ref.to.kind} ${ref.to.namespace}/${ref.to.name}`;
      const desired = referenceGrant(ref);
      const name = `ReferenceGrant ${ref.to.namespace}/${desired.metadata.name}`;
      let grants: KubeObject[];
      try {
        grants = await ctx.cache.list(REFERENCE_GRANT, ref.to.namespace);
      } catch (err) {
        throw refNotPermitted(what, err, 'cannot read ReferenceGrants there');
      }
      if (grants.some((g) => grantPermits(g, ref))) continue;
      // About to write: the apiserver's word on the name, not the cache's (a grant made a moment ago must not be overwritten).
      let existing: KubeObject | undefined;
      try {
        existing = await ctx.kube.get(REFERENCE_GRANT.apiVersion, REFERENCE_GRANT.kind, ref.to.namespace, desired.metadata.name);
      } catch (err) {
        throw refNotPermitted(what, err, `cannot read ${name}`);
      }
      if (existing && grantPermits(existing, ref)) continue;
      if (existing && existing.metadata.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE) {
        throw new ReconcileError('RefNotPermitted', `${what} needs a ReferenceGrant; ${name} exists, is not the operator's and does not permit it`, {
          conditionType: 'GatewayAccepted', retryAfterMs: REF_NOT_PERMITTED_RETRY_MS,
        });
      }
      try {
        await ctx.kube.apply({ ...desired, metadata: { ...desired.metadata, labels: { ...desired.metadata.labels, [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } } });
      } catch (err) {
        throw refNotPermitted(what, err, `cannot write ${name}`);
      }
      if (existing) {
        ctx.events.warning(route, 'Drifted', `${name} was changed outside the operator; restored`);
      } else {
        ctx.events.normal(route, 'ReferenceGrantCreated', `created ${name} permitting ${what}`);
      }
    }
  }

  /**
   * Removes the operator's ReferenceGrants that no Route needs any more. A
   * Route whose needs cannot be told (its hub or GatewayClass not cached)
   * keeps them: removing a grant a Route still uses would take its auth
   * check away until that Route's next reconcile. `deleting`: the Route
   * being finalized, which needs nothing any more; a failure is thrown then
   * (the finalizer waits), while a reconcile only logs it.
   */
  private async sweepGrants(ctx: ReconcileContext, deleting?: RouteObject): Promise<void> {
    let grants: KubeObject[];
    const ours = (g: KubeObject) => g.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE && !!g.metadata.labels?.[GRANT_FROM_LABEL];
    try {
      grants = deleting
        // The apiserver's list, not the cache's: a grant written a moment before the delete may not have come through the watch.
        ? (await ctx.kube.list(REFERENCE_GRANT.apiVersion, REFERENCE_GRANT.kind, undefined, {
          labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${GRANT_FROM_LABEL}=${deleting.metadata.namespace}`,
        })).items.filter(ours)
        : (await ctx.cache.list(REFERENCE_GRANT)).filter(ours);
    } catch (err) {
      // No ReferenceGrant kind served: none can exist.
      if (deleting && !isMissingResourceType(err)) throw err;
      return;
    }
    for (const g of grants) {
      const fromNs = g.metadata.labels![GRANT_FROM_LABEL]!;
      let needed = false;
      for (const r of await ctx.cache.list(resourceTypes.Route, fromNs)) {
        if (r.metadata.deletionTimestamp || r.metadata.uid === deleting?.metadata.uid) continue;
        const refs = await this.refsOf(ctx, r);
        if (refs === undefined || refs.some((ref) => grantPermits(g, ref))) {
          needed = true;
          break;
        }
      }
      if (needed) continue;
      try {
        // Only the version judged ours and unused: one relabelled or rewritten since is a 409, not a deletion.
        await ctx.kube.delete(REFERENCE_GRANT.apiVersion, REFERENCE_GRANT.kind, g.metadata.namespace, g.metadata.name, 'Background', {
          uid: g.metadata.uid, resourceVersion: g.metadata.resourceVersion,
        });
        ctx.log.info({ grant: `${g.metadata.namespace}/${g.metadata.name}` }, 'removed a ReferenceGrant no Route needs');
      } catch (err) {
        if (isNotFound(err)) continue;
        if (deleting) throw err;
        ctx.log.warn({ grant: `${g.metadata.namespace}/${g.metadata.name}`, err: String(err) }, 'cannot remove an unused ReferenceGrant');
      }
    }
  }

  /** The cross-namespace references a cached Route's children have; undefined when that cannot be told from the caches. */
  private async refsOf(ctx: ReconcileContext, raw: KubeObject): Promise<CrossNamespaceRef[] | undefined> {
    const parsed = routeSpecSchema.safeParse(raw.spec);
    if (!parsed.success) return [];
    const route = { ...raw, spec: parsed.data } as RouteObject;
    try {
      const ref = parsed.data.familyHubRef;
      const hubRaw = await ctx.cache.get(FAMILYHUB, ref.namespace ?? raw.metadata.namespace, ref.name);
      if (!hubRaw) return undefined;
      const hub = typedHub({ apiVersion: FAMILYHUB.apiVersion, kind: FAMILYHUB.kind, ...hubRaw });
      const gw = hub.spec.gateway;
      if (!gw) return [];
      const gateway = await ctx.cache.get(GATEWAY, gw.gatewayNamespace, gw.gatewayName);
      const provider = await this.providerFor(ctx, hub, gateway);
      const auth = effectiveAuthService(hub);
      const svc = auth?.serviceRef;
      const target: GatewayTarget = {
        gateway: { name: gw.gatewayName, namespace: gw.gatewayNamespace },
        identity: { issuer: hub.spec.identity.issuerUrl, jwksUri: '', audience: gw.audience, groupsClaim: 'groups' },
        authService: { url: auth?.url ?? '', ...(svc ? { service: svc } : {}) },
      };
      return provider.crossNamespaceRefs(intentOf(route), target);
    } catch {
      return undefined;
    }
  }

  /** Deletes children of ours that the current spec no longer wants (e.g. a rate limit removed). */
  private async removeStale(ctx: ReconcileContext, owner: RouteObject, possible: KubeObject[], desired: KubeObject[]): Promise<void> {
    const wanted = new Set(desired.map((d) => `${d.kind}/${d.metadata.name}`));
    for (const p of possible) {
      if (wanted.has(`${p.kind}/${p.metadata.name}`)) continue;
      await this.deleteIfOurs(ctx, owner, resourceFor(p.apiVersion!, p.kind!), p.metadata.name);
    }
  }

  /** Stops serving a Route whose claim is not (or no longer) valid. */
  private async removeChildren(ctx: ReconcileContext, owner: RouteObject): Promise<void> {
    const intent = intentOf(owner);
    const target: GatewayTarget = { gateway: { name: '-', namespace: '-' }, identity: { issuer: '', jwksUri: '', audience: '', groupsClaim: '' }, authService: { url: 'http://auth', service: { name: 'auth', namespace: 'auth', port: 1 } } };
    const seen = new Set<string>();
    for (const provider of [providerByName('traefik'), providerByName('envoy-gateway', { envoyAuthMode: 'extAuth' })]) {
      for (const c of possibleChildren(provider, intent, target)) {
        const key = `${c.kind}/${c.metadata.name}`;
        if (seen.has(key)) continue;
        seen.add(key);
        await this.deleteIfOurs(ctx, owner, resourceFor(c.apiVersion!, c.kind!), c.metadata.name);
      }
    }
  }

  private async deleteIfOurs(ctx: ReconcileContext, owner: RouteObject, type: ResourceType, name: string): Promise<void> {
    let current: KubeObject | undefined;
    try {
      current = await ctx.cache.get(type, owner.metadata.namespace, name);
    } catch (err) {
      // The kind's CRD is not installed: nothing of it can exist.
      if ((err as { statusCode?: number }).statusCode === 404) return;
      throw err;
    }
    if (!isControlledBy(current, owner)) return;
    await ctx.kube.delete(type.apiVersion, type.kind, owner.metadata.namespace, name);
    ctx.log.info({ child: `${type.kind} ${name}` }, 'removed a child the Route no longer needs');
  }
}

const controllerOf = (o: KubeObject) => o.metadata.ownerReferences?.find((r) => r.controller);

/**
 * Whether `route` is the one the hub's own runtime Service publishes on its
 * hostname: the Route is controlled (ownerReference uid) by the Service
 * `<hub>-<service>` of the runtime service served on that hostname, that
 * Service is controlled by this very FamilyHub (uid, not name: a hub deleted
 * and re-created under the same name is another hub) and asks for this host.
 * Names alone prove nothing — anyone may write an ownerReference naming the
 * hub — so every link is checked by uid, and the Service's name and host are
 * the ones the hub gives it, so a Service of a user that copies the hub's
 * ownerReference still cannot claim a platform hostname.
 */
async function isPlatformRoute(ctx: ReconcileContext, route: RouteObject, hub: Hub): Promise<boolean> {
  const svc = runtimeServiceOnHost(hub, route.spec.hostname);
  if (!svc) return false;
  const name = runtimeServiceName(hub, svc);
  if (route.metadata.namespace !== hub.metadata.namespace || route.metadata.name !== name) return false;
  const ref = controllerOf(route);
  if (!ref || ref.apiVersion !== resourceTypes.Service.apiVersion || ref.kind !== 'Service' || ref.name !== name) return false;
  const service = await ctx.cache.get(resourceTypes.Service, route.metadata.namespace, name);
  if (!service || service.metadata.uid !== ref.uid || service.spec?.host !== route.spec.hostname) return false;
  const hubRef = controllerOf(service);
  return !!hubRef && hubRef.apiVersion === FAMILYHUB.apiVersion && hubRef.kind === FAMILYHUB.kind && hubRef.uid === hub.metadata.uid;
}

/** RBAC refusing the grant (or no ReferenceGrant kind served) as the Route's condition; other errors unchanged. */
function refNotPermitted(what: string, err: unknown, doing: string): Error {
  if (err instanceof KubeApiError && (err.statusCode === 403 || isMissingResourceType(err))) {
    const why = err.statusCode === 403 ? `the operator is not allowed to: ${doing}` : `the apiserver does not serve ReferenceGrant (Gateway API CRDs), so the operator ${doing}`;
    return new ReconcileError('RefNotPermitted', `${what} needs a Gateway API ReferenceGrant in the Service's namespace, and ${why}; create one that permits it`, {
      conditionType: 'GatewayAccepted', retryAfterMs: REF_NOT_PERMITTED_RETRY_MS,
    });
  }
  return err as Error;
}

function missingAuthService(hub: Hub, hostname: string): never {
  throw new ReconcileError('AuthServiceNotConfigured', `Route on ${hostname} requires login, but FamilyHub ${hub.metadata.name} has no spec.gateway.authService and does not run its own (spec.runtime.services.auth)`, {
    conditionType: 'GatewayAccepted', terminal: true,
  });
}

/** Routes sharing a hostname with a changed Route: a conflict may have appeared or gone away. */
const sameHostnameWatch = () => ({
  resource: resourceTypes.Route,
  map: (changed: KubeObject, routes: () => KubeObject[]) => routes().filter((r) => r.metadata.uid !== changed.metadata.uid && sameClaim(r, changed)).map(objectKey),
});

/** A Service whose Route it controls: its ownership decides whether that Route may hold a platform hostname (isPlatformRoute). */
const controllingServiceWatch = () => ({
  resource: resourceTypes.Service,
  map: (svc: KubeObject, routes: () => KubeObject[]) => routes().filter((r) => controllerOf(r)?.uid === svc.metadata.uid).map(objectKey),
});

/** A change of the Gateway or GatewayClass (spec, not the gateway's status) may change every Route's provider or target. */
const everyRoute = (resource: ResourceType) => ({ resource, map: (_: KubeObject, routes: () => KubeObject[]) => routes().map(objectKey) });

/** A ReferenceGrant written, changed or removed: the Routes of the namespaces it admits references from. */
const referenceGrantWatch = () => ({
  resource: REFERENCE_GRANT,
  map: (grant: KubeObject, routes: () => KubeObject[]) => {
    const from = new Set(((grant.spec?.from ?? []) as Array<{ namespace?: string }>).map((f) => f.namespace));
    return routes().filter((r) => from.has(r.metadata.namespace)).map(objectKey);
  },
});

export const routeController = (_config: OperatorConfig, _platform: PlatformConnections): ControllerDefinition<RouteSpec, RouteStatus> => ({
  resource: resourceTypes.Route,
  specSchema: routeSpecSchema,
  reconciler: new RouteReconciler(),
  // The gateway's status write and hand edits of children wake their Route.
  owns: [HTTPROUTE, MIDDLEWARE, SECURITY_POLICY, BACKEND_TRAFFIC_POLICY],
  // A hub change (domain, gateway, auth service) re-converges its Routes at once.
  watches: [hubWatch(), sameHostnameWatch(), everyRoute(GATEWAY), everyRoute(GATEWAY_CLASS), referenceGrantWatch(), controllingServiceWatch()],
});
