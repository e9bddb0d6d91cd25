// Service: a developer's app from one object. Observe (cache reads only) →
// desired children (pure, deterministic: desired.ts) → apply in order, or,
// in plan mode, dry-run every child and report what would change.
//
// Order: DatabaseClaim and OIDCClient first; the Deployment (and its core
// Service) only once their credential Secrets exist, so no pod crash-loops
// on a missing volume; the Route only once the Deployment has an available
// replica, so the first request through the gateway never meets a 503.
// Credentials are mounted as files; their hash in the pod template rolls
// the pods when a Secret rotates (we own the Deployment, so that is ours to
// change).
import type { OperatorConfig } from '../../config.js';
import { ensureOwned, isControlledBy } from '../../core/children.js';
import type { ControllerDefinition, WatchSpec } from '../../core/controller.js';
import { objectKey } from '../../core/informer.js';
import type { ConditionInput, KubeObject, ReconcileContext, ReconcileResult, Reconciler, Resource } from '../../core/reconciler.js';
import { CORE_SERVICE, DEPLOYMENT, SECRET, type ResourceType } from '../../core/resources.js';
import { resourceTypes } from '../../crds/index.js';
import { serviceSpecSchema, type ServiceSpec, type ServiceStatus } from '../../crds/service.js';
import type { PlatformConnections } from '../../platform/connections.js';
import { hubWatch, resolveHub, type Hub } from '../../platform/hub.js';
import { POD_LABELS_FROM_SERVICE, REDIS_RUNTIME_SERVICES, RUNTIME_SERVICE_LABEL, hubRuntimeService } from '../../platform/runtime.js';
import { deploymentUpToDate } from './compare.js';
import {
  CREDENTIALS_HASH_ANNOTATION, SERVICE_LABEL, coreServiceOf, credentialsHash, databaseClaimOf, deploymentOf, oidcClientOf, publicOrigin, routeOf,
  type CredentialFacts, type ServiceInput,
} from './desired.js';
import { planChildren, type PlannedChild } from './plan.js';
import { availabilityOf, childCondition } from './readiness.js';

export type ServiceObject = Resource<ServiceSpec, ServiceStatus>;

export const PLAN_ANNOTATION = 'familyhub.dev/plan';
const DATABASECLAIM = resourceTypes.DatabaseClaim;
const OIDCCLIENT = resourceTypes.OIDCClient;
const ROUTE = resourceTypes.Route;

/** Pod states reach us through no watch: how soon a rollout in progress is looked at again. */
export const PROGRESS_RECHECK_MS = 3000;

export interface Observed {
  input: ServiceInput;
  hub: Hub;
  claim?: KubeObject;
  oidc?: KubeObject;
  deployment?: KubeObject;
  route?: KubeObject;
  facts: CredentialFacts;
  /** Secrets the Deployment would mount that do not exist yet. */
  missingSecrets: string[];
  /**
   * Facts a child has not published in its status yet although its Secret
   * exists (a child writes the Secret, then its status): the Deployment
   * waits for them too, or it would roll once more as they arrive.
   */
  missingFacts: string[];
}

/** What the Deployment still waits for, for a condition or a plan: empty when nothing. */
export function waitingFor(o: Observed): string {
  const secrets = o.missingSecrets.length ? [`Secret${o.missingSecrets.length > 1 ? 's' : ''} ${o.missingSecrets.join(', ')}`] : [];
  return [...secrets, ...o.missingFacts].join(' and ');
}

/** The credential Secret a child published, if it exists and that child controls it. */
async function secretOf(ctx: ReconcileContext, child: KubeObject | undefined, fallbackName: string): Promise<{ name: string; secret?: KubeObject }> {
  const name: string = child?.status?.secretName ?? fallbackName;
  if (!child) return { name };
  const secret = await ctx.cache.get(SECRET, child.metadata.namespace, name);
  return { name, secret: secret && isControlledBy(secret, child) ? secret : undefined };
}

/**
 * The hub's Redis password Secret as far as the Deployment needs it: the one
 * key, by its digest (the cache holds digests, never values), so the
 * credentials hash follows the password and nothing else in that Secret. A
 * Secret without the key counts as missing: its volume would never mount.
 */
async function redisPasswordSecret(ctx: ReconcileContext, hub: Hub, ref: { name: string; key: string }): Promise<{ secret?: KubeObject; missing?: string }> {
  const secret = await ctx.cache.get(SECRET, hub.metadata.namespace, ref.name);
  const digest = secret?.data?.[ref.key] as string | undefined;
  if (digest === undefined) return { missing: secret ? `${ref.name} (no key ${ref.key})` : ref.name };
  return { secret: { metadata: { name: ref.name }, data: { [ref.key]: digest } } };
}

/** Our own child of that kind and name, if it exists (someone else's is reported by ensureOwned). */
async function cachedChild(ctx: ReconcileContext, type: ResourceType, owner: KubeObject): Promise<KubeObject | undefined> {
  const c = await ctx.cache.get(type, owner.metadata.namespace, owner.metadata.name);
  return c && isControlledBy(c, owner) ? c : undefined;
}

/** Everything a reconcile reads (cache only); exported for the unit tests of what reaches the Deployment. */
export async function observe(obj: ServiceObject, ctx: ReconcileContext): Promise<Observed> {
  const spec = obj.spec;
  const hub = await resolveHub(ctx, obj, spec.familyHubRef);
  const podLabels = Object.fromEntries(POD_LABELS_FROM_SERVICE.flatMap((k) => (obj.metadata.labels?.[k] ? [[k, obj.metadata.labels[k]]] : [])));
  const input: ServiceInput = { name: obj.metadata.name, namespace: obj.metadata.namespace!, spec, ...(Object.keys(podLabels).length ? { podLabels } : {}) };
  const o: Observed = { input, hub, facts: {}, missingSecrets: [], missingFacts: [] };
  const mounted: Array<KubeObject | undefined> = [];
  if (spec.needs.database?.enabled) {
    o.claim = await cachedChild(ctx, DATABASECLAIM, obj);
    const s = await secretOf(ctx, o.claim, `${input.name}-db`);
    o.facts.database = { secretName: s.name, schema: o.claim?.status?.schema, database: o.claim?.status?.database };
    if (!s.secret) o.missingSecrets.push(s.name);
    else if (!o.facts.database.schema || !o.facts.database.database) o.missingFacts.push(`the schema of DatabaseClaim ${o.claim!.metadata.name}`);
    mounted.push(s.secret);
  }
  if (spec.needs.oidc?.enabled) {
    o.oidc = await cachedChild(ctx, OIDCCLIENT, obj);
    const s = await secretOf(ctx, o.oidc, `${input.name}-oidc`);
    o.facts.oidc = { secretName: s.name, clientId: o.oidc?.status?.clientId, issuer: o.oidc?.status?.issuerUrl };
    if (!s.secret) o.missingSecrets.push(s.name);
    else if (!o.facts.oidc.clientId || !o.facts.oidc.issuer) o.missingFacts.push(`the client id of OIDCClient ${o.oidc!.metadata.name}`);
    mounted.push(s.secret);
  }
  const redisPassword = hub.spec.redis?.passwordSecretRef;
  const runtime = redisPassword ? hubRuntimeService(hub, obj) : undefined;
  if (redisPassword && runtime && REDIS_RUNTIME_SERVICES.includes(runtime)) {
    const r = await redisPasswordSecret(ctx, hub, redisPassword);
    o.facts.redis = { secretName: redisPassword.name, key: redisPassword.key };
    if (!r.secret) o.missingSecrets.push(r.missing!);
    mounted.push(r.secret);
  }
  o.facts.hash = credentialsHash(mounted);
  o.deployment = await cachedChild(ctx, DEPLOYMENT, obj);
  if (spec.needs.route) o.route = await cachedChild(ctx, ROUTE, obj);
  return o;
}

async function podsOf(ctx: ReconcileContext, obj: KubeObject): Promise<KubeObject[]> {
  const list = await ctx.kube.list('v1', 'Pod', obj.metadata.namespace, { labelSelector: `${SERVICE_LABEL}=${obj.metadata.name}` });
  return list.items;
}

export class ServiceReconciler implements Reconciler<ServiceSpec, ServiceStatus> {
  readonly name = 'service';

  async reconcile(obj: ServiceObject, ctx: ReconcileContext): Promise<ReconcileResult<ServiceStatus>> {
    const o = await observe(obj, ctx);
    const planMode = obj.spec.suspend || obj.metadata.annotations?.[PLAN_ANNOTATION] === 'true';
    return planMode ? this.plan(obj, o, ctx) : this.apply(obj, o, ctx);
  }

  private async apply(obj: ServiceObject, o: Observed, ctx: ReconcileContext): Promise<ReconcileResult<ServiceStatus>> {
    const spec = obj.spec;
    const { input, hub } = o;
    const conditions: ConditionInput[] = [];
    const status: ServiceStatus = {};

    if (spec.needs.database?.enabled) {
      const r = await ensureOwned(ctx, obj, databaseClaimOf(input), { conditionType: 'DatabaseReady' });
      conditions.push(childCondition('DatabaseReady', 'DatabaseClaim', r.object));
      status.databaseClaimName = input.name;
    } else {
      await removeIfOurs(ctx, obj, DATABASECLAIM);
    }
    if (spec.needs.oidc?.enabled) {
      const r = await ensureOwned(ctx, obj, oidcClientOf(input, hub), { conditionType: 'IdentityReady' });
      conditions.push(childCondition('IdentityReady', 'OIDCClient', r.object));
      status.oidcClientName = input.name;
    } else {
      await removeIfOurs(ctx, obj, OIDCCLIENT);
    }

    let deployment = o.deployment;
    const waiting = waitingFor(o);
    if (!waiting) {
      deployment = (await ensureOwned(ctx, obj, deploymentOf(input, hub, o.facts), { conditionType: 'Available', upToDate: deploymentUpToDate })).object;
      await ensureOwned(ctx, obj, coreServiceOf(input), { conditionType: 'Available' });
      status.credentialsHash = o.facts.hash;
    } else if (deployment) {
      // Running pods keep what they have; a Secret (or fact) that went away is the claim's (or client's) to bring back.
      status.credentialsHash = deployment.spec?.template?.metadata?.annotations?.[CREDENTIALS_HASH_ANNOTATION];
    }
    let availability = availabilityOf(deployment, undefined);
    if (deployment && availability.condition.status !== 'True') availability = availabilityOf(deployment, await podsOf(ctx, obj));
    if (!deployment && waiting) {
      conditions.push({ type: 'Available', status: 'False', reason: 'WaitingForCredentials', message: `Deployment waits for ${waiting}` });
    } else {
      conditions.push(availability.condition);
    }
    if (deployment) {
      status.deploymentName = input.name;
      status.serviceName = input.name;
      status.readyReplicas = availability.readyReplicas;
    }

    if (spec.needs.route) {
      let route = o.route;
      // Once published, a Route stays (taking it away on a crash would turn a blip into an outage).
      if (route || availability.available >= 1) {
        route = (await ensureOwned(ctx, obj, routeOf(input), { conditionType: 'RouteReady' })).object;
        conditions.push(childCondition('RouteReady', 'Route', route));
        status.routeName = input.name;
      } else {
        conditions.push({ type: 'RouteReady', status: 'False', reason: 'WaitingForAvailableReplica', message: 'Route is created once the Deployment has an available replica' });
      }
      status.url = route?.status?.url ?? `${publicOrigin(spec, hub)}/`;
    } else {
      await removeIfOurs(ctx, obj, ROUTE);
    }

    return { conditions, status, ...(availability.progressing ? { requeueAfterMs: PROGRESS_RECHECK_MS } : {}) };
  }

  private async plan(obj: ServiceObject, o: Observed, ctx: ReconcileContext): Promise<ReconcileResult<ServiceStatus>> {
    const spec = obj.spec;
    const { input, hub } = o;
    const children: PlannedChild[] = [];
    const unwanted: ResourceType[] = [];
    if (spec.needs.database?.enabled) children.push({ desired: databaseClaimOf(input) });
    else unwanted.push(DATABASECLAIM);
    if (spec.needs.oidc?.enabled) children.push({ desired: oidcClientOf(input, hub) });
    else unwanted.push(OIDCCLIENT);
    const waiting = waitingFor(o);
    const waitSecrets = waiting && !o.deployment ? `after ${waiting}` : undefined;
    children.push({ desired: deploymentOf(input, hub, o.facts), upToDate: deploymentUpToDate, waitingFor: waitSecrets });
    children.push({ desired: coreServiceOf(input), waitingFor: waitSecrets });
    if (spec.needs.route) {
      const available = availabilityOf(o.deployment, undefined).available;
      children.push({ desired: routeOf(input), waitingFor: o.route || available >= 1 ? undefined : 'after the Deployment has an available replica' });
    } else {
      unwanted.push(ROUTE);
    }
    const plan = await planChildren(ctx, obj, children, unwanted);
    const status: ServiceStatus = {
      plan,
      ...(o.claim ? { databaseClaimName: input.name } : {}),
      ...(o.oidc ? { oidcClientName: input.name } : {}),
      ...(o.deployment ? { deploymentName: input.name, serviceName: input.name, readyReplicas: o.deployment.status?.readyReplicas ?? 0 } : {}),
      ...(o.route ? { routeName: input.name } : {}),
    };
    const why = spec.suspend ? 'Suspended' : 'PlanMode';
    const how = spec.suspend ? 'spec.suspend is true' : `annotation ${PLAN_ANNOTATION} is "true"`;
    const message = `${how}: nothing is written; would apply: ${plan.summary}`;
    return {
      conditions: [{ type: 'Applied', status: 'False', reason: why, message }],
      status,
      // Nothing is on its way: Argo CD shows it Suspended (kstatus InProgress: Ready=False, docs/argocd.md).
      suspended: { reason: why, message },
    };
  }
}

/** A child the spec no longer asks for: deleted if it is ours (a DatabaseClaim's deletionPolicy then decides about the data). */
async function removeIfOurs(ctx: ReconcileContext, owner: KubeObject, type: ResourceType): Promise<void> {
  const c = await cachedChild(ctx, type, owner);
  if (!c || c.metadata.deletionTimestamp) return;
  await ctx.kube.delete(type.apiVersion, type.kind, owner.metadata.namespace, owner.metadata.name, 'Background', { uid: c.metadata.uid });
  ctx.events.normal(owner, 'ChildRemoved', `${type.kind} ${owner.metadata.name} is no longer needed; deleted`);
}

/** A rotated credential Secret (owned by our claim or client, not by us) re-checks the Service at once. */
function credentialSecretWatch(): WatchSpec {
  return {
    resource: SECRET,
    map: (secret, primaries) => {
      const ref = secret.metadata.ownerReferences?.find((r) => r.controller);
      if (!ref || (ref.kind !== 'DatabaseClaim' && ref.kind !== 'OIDCClient') || ref.apiVersion !== DATABASECLAIM.apiVersion) return [];
      return primaries().filter((p) => p.metadata.namespace === secret.metadata.namespace && p.metadata.name === ref.name).map(objectKey);
    },
  };
}

/**
 * The hub's Redis password Secret appearing or changing re-checks the hub's
 * Redis-using runtime Services at once. Which Secret that is lives in the
 * hub's spec, out of reach here, so every Secret of their namespace not
 * already mapped above counts (the reconcile of an unchanged Service writes
 * nothing); hubRuntimeService then decides.
 */
function redisPasswordSecretWatch(): WatchSpec {
  const users = new Set<string>(REDIS_RUNTIME_SERVICES);
  return {
    resource: SECRET,
    map: (secret, primaries) => {
      const ref = secret.metadata.ownerReferences?.find((r) => r.controller);
      if (ref && (ref.kind === 'DatabaseClaim' || ref.kind === 'OIDCClient') && ref.apiVersion === DATABASECLAIM.apiVersion) return [];
      return primaries()
        .filter((p) => p.metadata.namespace === secret.metadata.namespace && users.has(p.metadata.labels?.[RUNTIME_SERVICE_LABEL] ?? ''))
        .map(objectKey);
    },
  };
}

export const serviceController = (_config: OperatorConfig, _platform: PlatformConnections): ControllerDefinition<ServiceSpec, ServiceStatus> => ({
  resource: resourceTypes.Service,
  specSchema: serviceSpecSchema,
  reconciler: new ServiceReconciler(),
  owns: [DEPLOYMENT, CORE_SERVICE, DATABASECLAIM, OIDCCLIENT, ROUTE],
  watches: [hubWatch(), credentialSecretWatch(), redisPasswordSecretWatch()],
});
