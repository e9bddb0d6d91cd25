// FamilyHub: one platform. Observes every dependency the platform names
// (PostgreSQL, Redis, Vault/OpenBao, the IdP, the gateway) and reports one
// condition per dependency; Ready is True when all of them are. The checks
// are pluggable so the database and identity modules add live probes without
// this file knowing their clients.
import { API_VERSION } from '../core/constants.js';
import { familyHubSpecSchema } from '../crds/familyhub.js';
import { canonical, type ControllerDefinition } from '../core/controller.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, ownerReference } from '../core/kube-client.js';
import { ReconcileError, type KubeObject, type ReconcileContext, type ReconcileResult, type Reconciler } from '../core/reconciler.js';

export interface FamilyHubObject extends KubeObject {
  spec: Record<string, any>;
}

export type ConditionInput = NonNullable<ReconcileResult['conditions']>[number];

/** One dependency probe: returns its condition, or undefined when not configured. */
export type DependencyCheck = (hub: FamilyHubObject, ctx: ReconcileContext) => Promise<ConditionInput | undefined>;

/** How soon to look again while something is not ready (missing Secret, IdP down). */
const NOT_READY_RECHECK_MS = Number(process.env.FAMILYHUB_RECHECK_MS ?? 30_000);

export interface FamilyHubReconcilerOptions {
  /** Live probes by condition type; each runs only when that dependency's configuration check passed. */
  liveChecks?: Record<string, DependencyCheck>;
  /** Validates the spec (zod); throws with a message naming the field. */
  validate?: (spec: unknown) => void;
}

export const FAMILYHUB_FINALIZER = 'familyhub.dev/in-use-protection';

/** Kinds that point at a FamilyHub with spec.familyHubRef; deleting the hub under them would strand their cleanup. */
const DEPENDENT_KINDS = ['DatabaseClaim', 'OIDCClient', 'Service', 'Route'] as const;

export class FamilyHubReconciler implements Reconciler<FamilyHubObject> {
  readonly name = 'familyhub';
  readonly finalizer = FAMILYHUB_FINALIZER;

  constructor(private readonly opts: FamilyHubReconcilerOptions = {}) {}

  async reconcile(hub: FamilyHubObject, ctx: ReconcileContext): Promise<ReconcileResult> {
    try {
      this.opts.validate?.(hub.spec);
    } catch (err) {
      throw new ReconcileError('InvalidSpec', err instanceof Error ? err.message : String(err), { retryAfterMs: 5 * 60_000 });
    }
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
    const notReady = conditions.some((c) => c.status !== 'True');
    await this.applyPlatformConfigMap(hub, ctx);
    return {
      conditions,
      status: {
        domain: hub.spec.domain,
        services: Object.entries(hub.spec.runtime?.services ?? {})
          .filter(([, v]) => (v as { enabled?: boolean })?.enabled)
          .map(([k]) => k)
          .sort(),
      },
      requeueAfterMs: notReady ? NOT_READY_RECHECK_MS : undefined,
    };
  }

  /**
   * Like PVC protection: a FamilyHub stays while claims, clients, services or
   * routes still reference it, because their own finalizers need its
   * connection settings to clean up (drop schemas, delete IdP clients).
   */
  async finalize(hub: FamilyHubObject, ctx: ReconcileContext): Promise<void> {
    const users: string[] = [];
    for (const kind of DEPENDENT_KINDS) {
      let items: KubeObject[] = [];
      try {
        items = (await ctx.kube.list(API_VERSION, kind)).items;
      } catch (err) {
        ctx.log.debug({ kind, err: String(err) }, 'cannot list dependents (CRD not installed?)');
        continue;
      }
      for (const o of items) {
        const ref = o.spec?.familyHubRef;
        if (ref?.name === hub.metadata.name && (ref.namespace ?? o.metadata.namespace) === hub.metadata.namespace) {
          users.push(`${kind} ${o.metadata.namespace}/${o.metadata.name}`);
        }
      }
    }
    if (users.length) {
      const msg = `FamilyHub is still used by ${users.length} object(s): ${users.slice(0, 5).join(', ')}${users.length > 5 ? ', …' : ''}; delete them first`;
      ctx.events.warning(hub, 'InUse', msg);
      throw new ReconcileError('InUse', msg, { retryAfterMs: Number(process.env.FAMILYHUB_RECHECK_MS ?? 30_000) });
    }
  }

  /**
   * Non-secret platform facts (domain, issuer, allowed domains, enabled
   * services) for the runtime services and developers' apps to mount. Owned
   * by the FamilyHub, so the garbage collector removes it with the hub.
   */
  private async applyPlatformConfigMap(hub: FamilyHubObject, ctx: ReconcileContext): Promise<void> {
    const name = `${hub.metadata.name}-platform`;
    const ns = hub.metadata.namespace!;
    const data: Record<string, string> = {
      domain: String(hub.spec.domain ?? ''),
      allowedEmailDomains: (hub.spec.allowedEmailDomains ?? []).join(','),
      issuerUrl: String(hub.spec.identity?.issuerUrl ?? ''),
      identityKind: String(hub.spec.identity?.kind ?? ''),
    };
    const current = await ctx.cache.get('v1', 'ConfigMap', ns, name, { managedOnly: true });
    const owned = current?.metadata.ownerReferences?.some((r) => r.uid === hub.metadata.uid);
    if (current && owned && canonical(current.data ?? {}) === canonical(data)) return;
    await ctx.kube.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: ns, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, 'familyhub.dev/familyhub': hub.metadata.name }, ownerReferences: [ownerReference(hub)] },
      data,
    });
  }
}

async function runCheck(type: string, check: DependencyCheck, hub: FamilyHubObject, ctx: ReconcileContext): Promise<ConditionInput | undefined> {
  try {
    const c = await check(hub, ctx);
    return c ? { ...c, type } : undefined;
  } catch (err) {
    return { type, status: 'False', reason: 'CheckFailed', message: err instanceof Error ? err.message : String(err) };
  }
}

/** A referenced Secret exists and carries the named keys (values are never read into status). */
async function secretHasKeys(ctx: ReconcileContext, namespace: string, name: string, keys: string[]): Promise<string | undefined> {
  const s = await ctx.cache.get('v1', 'Secret', namespace, name, { keysOnly: true });
  if (!s) return `Secret ${namespace}/${name} not found`;
  const missing = keys.filter((k) => !(s.data ?? {})[k]);
  return missing.length ? `Secret ${namespace}/${name} has no key ${missing.map((k) => `"${k}"`).join(', ')}` : undefined;
}

const ok = (reason: string, message: string): ConditionInput => ({ type: '', status: 'True', reason, message });
const bad = (reason: string, message: string): ConditionInput => ({ type: '', status: 'False', reason, message });

/** Configuration checks: present and well-formed. Live probes replace them by type. */
export const staticChecks: Record<string, DependencyCheck> = {
  async PostgresReady(hub, ctx) {
    const pg = hub.spec.postgres;
    if (!pg) return bad('NotConfigured', 'spec.postgres is required');
    const ref = pg.adminCredentialsSecretRef;
    const problem = await secretHasKeys(ctx, hub.metadata.namespace!, ref.name, [ref.usernameKey ?? 'username', ref.passwordKey ?? 'password']);
    return problem ? bad('SecretMissing', `spec.postgres.adminCredentialsSecretRef: ${problem}`) : ok('Configured', `PostgreSQL ${pg.host}:${pg.port ?? 5432}/${pg.database} configured`);
  },
  async RedisReady(hub, ctx) {
    const r = hub.spec.redis;
    if (!r) return undefined;
    if (r.passwordSecretRef) {
      const problem = await secretHasKeys(ctx, hub.metadata.namespace!, r.passwordSecretRef.name, [r.passwordSecretRef.key ?? 'password']);
      if (problem) return bad('SecretMissing', `spec.redis.passwordSecretRef: ${problem}`);
    }
    return ok('Configured', `Redis ${r.host}:${r.port ?? 6379} configured`);
  },
  async VaultReady(hub, ctx) {
    const v = hub.spec.vault;
    if (!v) return undefined;
    if ((v.authMethod ?? 'token') === 'token') {
      if (!v.tokenSecretRef) return bad('NotConfigured', 'spec.vault.tokenSecretRef is required when authMethod is token');
      const problem = await secretHasKeys(ctx, hub.metadata.namespace!, v.tokenSecretRef.name, [v.tokenSecretRef.key ?? 'token']);
      if (problem) return bad('SecretMissing', `spec.vault.tokenSecretRef: ${problem}`);
    }
    return ok('Configured', `Vault ${v.address} configured (${v.authMethod ?? 'token'} auth)`);
  },
  async IdentityReady(hub, ctx) {
    const id = hub.spec.identity;
    if (!id) return bad('NotConfigured', 'spec.identity is required');
    const ref = id.kind === 'keycloak' ? id.adminCredentialsSecretRef : id.initialAccessTokenSecretRef;
    if (ref) {
      const keys = id.kind === 'keycloak' ? [ref.usernameKey ?? 'username', ref.passwordKey ?? 'password'] : [ref.key ?? 'token'];
      const problem = await secretHasKeys(ctx, hub.metadata.namespace!, ref.name, keys);
      if (problem) return bad('SecretMissing', `spec.identity: ${problem}`);
    }
    return ok('Configured', `${id.kind} issuer ${id.issuerUrl} configured`);
  },
};

/**
 * Runtime validation with the same zod schema the CRD was generated from:
 * the apiserver already enforces it, but an object stored under an older
 * CRD version must still fail with a message naming the field.
 */
export function validateFamilyHubSpec(spec: unknown): void {
  const r = familyHubSpecSchema.safeParse(spec);
  if (!r.success) throw new Error(r.error.issues.map((i) => `spec.${i.path.join('.')}: ${i.message}`).join('; '));
}

/** Names of the Secrets a hub references (same namespace). */
function referencedSecrets(hub: KubeObject): string[] {
  const s = hub.spec ?? {};
  return [
    s.postgres?.adminCredentialsSecretRef?.name,
    s.redis?.passwordSecretRef?.name,
    s.vault?.tokenSecretRef?.name,
    s.vault?.caSecretRef?.name,
    s.identity?.adminCredentialsSecretRef?.name,
    s.identity?.initialAccessTokenSecretRef?.name,
  ].filter((n): n is string => typeof n === 'string');
}

export function familyHubController(opts: FamilyHubReconcilerOptions = {}): ControllerDefinition<FamilyHubObject> {
  const def: ControllerDefinition<FamilyHubObject> = {
    apiVersion: API_VERSION,
    kind: 'FamilyHub',
    reconciler: new FamilyHubReconciler({ validate: validateFamilyHubSpec, ...opts }),
    owns: [{ apiVersion: 'v1', kind: 'ConfigMap' }],
    watches: [{
      // A referenced Secret appearing or changing re-checks its hubs at once
      // (keys only: the cache never holds secret values).
      apiVersion: 'v1',
      kind: 'Secret',
      keysOnly: true,
      map: (secret, hubs) => hubs()
        .filter((h) => h.metadata.namespace === secret.metadata.namespace && referencedSecrets(h).includes(secret.metadata.name))
        .map((h) => `${h.metadata.namespace}/${h.metadata.name}`),
    }],
  };
  return def;
}
