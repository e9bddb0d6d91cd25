// FamilyHub: one platform. Observes every dependency the platform names
// (PostgreSQL, Redis, Vault/OpenBao, the IdP) and reports one condition per
// dependency; Ready is True when all of them are. Publishes the platform's
// non-secret facts in an owned ConfigMap, runs the bundled runtime as owned
// Service objects (runtime.ts) and reports their roll-up as RuntimeReady,
// and protects itself from deletion while other objects still use it.
import type { OperatorConfig } from '../../config.js';
import { ensureOwned, isControlledBy } from '../../core/children.js';
import type { ControllerDefinition } from '../../core/controller.js';
import { objectKey } from '../../core/informer.js';
import { ReconcileError, type ConditionInput, type KubeObject, type ReconcileContext, type ReconcileResult, type Reconciler } from '../../core/reconciler.js';
import { CONFIGMAP, SECRET } from '../../core/resources.js';
import { familyHubSpecSchema, type FamilyHubSpec, type FamilyHubStatus } from '../../crds/familyhub.js';
import { resourceTypes } from '../../crds/index.js';
import type { PlatformConnections } from '../../platform/connections.js';
import { FAMILYHUB, refersTo, type Hub } from '../../platform/hub.js';
import { ensureAuditSchema, forgetAuditSchema } from './audit-schema.js';
import { liveChecks, runCheck, staticChecks, type DependencyCheck } from './checks.js';
import { RUNTIME_SERVICE_NAMES, enabledRuntimeServices, runtimeServiceName, type RuntimeServiceName } from '../../platform/runtime.js';
import { runtimeBlocker, runtimeCondition, runtimeEndpoints, runtimeServiceOf } from './runtime.js';

const SERVICE = resourceTypes.Service;
const DATABASECLAIM = resourceTypes.DatabaseClaim;

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export const FAMILYHUB_FINALIZER = 'familyhub.dev/in-use-protection';

/** Kinds that point at a FamilyHub with spec.familyHubRef; deleting the hub under them would strand their cleanup. */
const DEPENDENT_KINDS = [resourceTypes.DatabaseClaim, resourceTypes.OIDCClient, resourceTypes.Service, resourceTypes.Route];

export interface FamilyHubReconcilerOptions {
  recheckMs: number;
  /** Live probes by condition type; each runs only when that dependency's configuration check passed. */
  liveChecks?: Record<string, DependencyCheck>;
  platform?: PlatformConnections;
}

export class FamilyHubReconciler implements Reconciler<FamilyHubSpec, FamilyHubStatus> {
  readonly name = 'familyhub';
  readonly finalizer = FAMILYHUB_FINALIZER;

  constructor(private readonly opts: FamilyHubReconcilerOptions) {}

  async reconcile(hub: Hub, ctx: ReconcileContext): Promise<ReconcileResult<FamilyHubStatus>> {
    // Configuration first (names the spec field that is wrong); only a
    // well-formed dependency gets the live probe.
    const conditions: ConditionInput[] = [];
    for (const [type, check] of Object.entries(staticChecks)) {
      const c = await runCheck(type, check, hub, ctx);
      const live = this.opts.liveChecks?.[type];
      if (c && c.status === 'True' && live) {
        const l = await runCheck(type, live, hub, ctx);
        if (l) conditions.push(l);
      } else if (c) {
        conditions.push(c);
      }
    }
    await this.ensurePlatformConfigMap(hub, ctx);
    const services = enabledRuntimeServices(hub);
    const runtime = await this.reconcileRuntime(hub, ctx, conditions);
    if (runtime.condition) conditions.push(runtime.condition);
    return {
      conditions,
      status: { domain: hub.spec.domain, services: [...services].sort(), ...(runtime.endpoints ? { endpoints: runtime.endpoints } : {}) },
      // The Services report back through the owns-watch; only the dependency probes need a timer.
      requeueAfterMs: conditions.some((c) => c.status !== 'True' && c.type !== 'RuntimeReady') || runtime.recheck ? this.opts.recheckMs : undefined,
    };
  }

  /**
   * One owned Service per enabled runtime service; a disabled one's Service
   * is deleted (when it is ours). RuntimeReady and the endpoints come from
   * what those Services report.
   */
  private async reconcileRuntime(hub: Hub, ctx: ReconcileContext, deps: ConditionInput[]): Promise<{ condition?: ConditionInput; endpoints?: Record<string, string>; recheck?: boolean }> {
    const enabled = enabledRuntimeServices(hub);
    for (const svc of RUNTIME_SERVICE_NAMES) {
      if (enabled.includes(svc)) continue;
      const name = runtimeServiceName(hub, svc);
      const current = await ctx.cache.get(SERVICE, hub.metadata.namespace, name);
      if (current && isControlledBy(current, hub) && !current.metadata.deletionTimestamp) {
        await ctx.kube.delete(SERVICE.apiVersion, SERVICE.kind, hub.metadata.namespace, name);
        ctx.events.normal(hub, 'RuntimeServiceRemoved', `deleted Service ${name}: ${svc} is no longer enabled`);
      }
    }
    if (!enabled.length) return {};
    const blocker = runtimeBlocker(hub);
    if (blocker) return { condition: { type: 'RuntimeReady', status: 'False', ...blocker } };

    const observed = new Map<RuntimeServiceName, KubeObject | undefined>();
    for (const svc of enabled) {
      const r = await ensureOwned(ctx, hub, runtimeServiceOf(hub, svc), { conditionType: 'RuntimeReady' });
      observed.set(svc, r.object);
    }
    const endpoints = runtimeEndpoints(hub, enabled, observed);
    if (enabled.includes('audit')) {
      const pending = await this.auditSchema(hub, ctx, deps);
      if (pending) return { condition: { type: 'RuntimeReady', status: 'False', ...pending }, endpoints, recheck: pending.reason !== 'WaitingForDatabase' };
    }
    return { condition: runtimeCondition(enabled, observed), endpoints };
  }

  /** The audit tables, created as the admin for the writer role of the audit Service's claim (audit-schema.ts). */
  private async auditSchema(hub: Hub, ctx: ReconcileContext, deps: ConditionInput[]): Promise<{ reason: string; message: string } | undefined> {
    const claim = await ctx.cache.get(DATABASECLAIM, hub.metadata.namespace, runtimeServiceName(hub, 'audit'));
    const writer = claim?.status?.ownerRole as string | undefined;
    // The claim creates the writer role with its schema; granting to a role that does not exist yet would fail.
    const schemaReady = (claim?.status?.conditions as Array<{ type: string; status: string }> | undefined)?.some((c) => c.type === 'SchemaReady' && c.status === 'True');
    if (!writer || !schemaReady) return { reason: 'WaitingForDatabase', message: 'audit: waiting for its DatabaseClaim\'s schema and role' };
    if (!this.opts.platform) return undefined;
    if (deps.find((c) => c.type === 'PostgresReady')?.status !== 'True') return { reason: 'WaitingForDatabase', message: 'audit: PostgreSQL is not ready' };
    try {
      const pg = await this.opts.platform.postgres(ctx, hub);
      await ensureAuditSchema(hub.metadata.uid!, pg.target, writer, ctx.log);
    } catch (err) {
      return { reason: 'AuditSchemaFailed', message: (err as Error).message };
    }
    return undefined;
  }

  /**
   * Like PVC protection: a FamilyHub stays while claims, clients, services or
   * routes still reference it, because their own finalizers need its
   * connection settings to clean up (drop schemas, delete IdP clients).
   */
  async finalize(hub: Hub, ctx: ReconcileContext): Promise<void> {
    // Our own runtime Services are users too, and the garbage collector would
    // only remove them after the hub is gone: delete them now, so their
    // claims and clients are cleaned up while the hub still exists.
    for (const svc of RUNTIME_SERVICE_NAMES) {
      const name = runtimeServiceName(hub, svc);
      const current = await ctx.cache.get(SERVICE, hub.metadata.namespace, name).catch(() => undefined);
      if (current && isControlledBy(current, hub) && !current.metadata.deletionTimestamp) {
        await ctx.kube.delete(SERVICE.apiVersion, SERVICE.kind, hub.metadata.namespace, name);
      }
    }
    const users: string[] = [];
    for (const type of DEPENDENT_KINDS) {
      let items: KubeObject[] = [];
      try {
        items = await ctx.cache.list(type);
      } catch (err) {
        ctx.log.debug({ kind: type.kind, err: String(err) }, 'cannot list dependents (CRD not installed?)');
        continue;
      }
      for (const o of items) {
        if (refersTo(o.spec?.familyHubRef, o.metadata.namespace, hub)) users.push(`${type.kind} ${o.metadata.namespace}/${o.metadata.name}`);
      }
    }
    if (users.length) {
      const msg = `FamilyHub is still used by ${users.length} object(s): ${users.slice(0, 5).join(', ')}${users.length > 5 ? ', …' : ''}; delete them first`;
      ctx.events.warning(hub, 'InUse', msg);
      throw new ReconcileError('InUse', msg, { retryAfterMs: this.opts.recheckMs });
    }
    this.opts.platform?.forgetHub(hub.metadata.uid!);
    forgetAuditSchema(hub.metadata.uid!);
  }

  /**
   * Non-secret platform facts (domain, issuer, allowed domains) for the
   * runtime services and developers' apps to mount. Owned by the FamilyHub,
   * so the garbage collector removes it with the hub.
   */
  private async ensurePlatformConfigMap(hub: Hub, ctx: ReconcileContext): Promise<void> {
    await ensureOwned(ctx, hub, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `${hub.metadata.name}-platform`, namespace: hub.metadata.namespace, labels: { 'familyhub.dev/familyhub': hub.metadata.name } },
      data: {
        domain: hub.spec.domain,
        allowedEmailDomains: hub.spec.allowedEmailDomains.join(','),
        issuerUrl: hub.spec.identity.issuerUrl,
        identityKind: hub.spec.identity.kind,
      },
    });
  }
}

/** Names of the Secrets a hub references (same namespace); tolerant of an unparsed spec. */
export function referencedSecrets(spec: DeepPartial<FamilyHubSpec> | undefined): string[] {
  return [
    spec?.postgres?.adminCredentialsSecretRef?.name,
    spec?.redis?.passwordSecretRef?.name,
    spec?.vault?.tokenSecretRef?.name,
    spec?.vault?.caSecretRef?.name,
    spec?.identity?.adminCredentialsSecretRef?.name,
    spec?.identity?.initialAccessTokenSecretRef?.name,
  ].filter((n): n is string => typeof n === 'string');
}

export function familyHubController(config: OperatorConfig, platform?: PlatformConnections): ControllerDefinition<FamilyHubSpec, FamilyHubStatus> {
  return {
    resource: FAMILYHUB,
    specSchema: familyHubSpecSchema,
    reconciler: new FamilyHubReconciler({ recheckMs: config.familyHub.recheckMs, platform, liveChecks: platform ? liveChecks(platform) : undefined }),
    owns: [CONFIGMAP, SERVICE],
    watches: [{
      // The audit Service's claim publishes the writer role the audit tables are granted to.
      resource: DATABASECLAIM,
      map: (claim, hubs) => hubs()
        .filter((h) => h.metadata.namespace === claim.metadata.namespace && claim.metadata.name === runtimeServiceName(h, 'audit'))
        .map(objectKey),
    }, {
      // A referenced Secret appearing or changing re-checks its hubs at once
      // (the Secret cache holds digests, never values).
      resource: SECRET,
      map: (secret, hubs) => hubs()
        // Raw cached specs (a zod parse of every hub per Secret event would cost more than the event).
        .filter((h) => h.metadata.namespace === secret.metadata.namespace && referencedSecrets(h.spec).includes(secret.metadata.name))
        .map(objectKey),
    }],
  };
}
