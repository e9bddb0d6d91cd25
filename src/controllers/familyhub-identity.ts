// Turns a FamilyHub's `spec.identity` into a ready IdP adapter, and probes it
// for the hub's IdentityReady condition. Adapters are cached per connection
// (issuer + credentials fingerprint) so the Keycloak admin token and the
// health probe are shared by every OIDCClient of the same hub.
import { createHash } from 'node:crypto';
import { API_VERSION } from '../core/constants.js';
import type { KubeClient } from '../core/kube-client.js';
import { ReconcileError, type KubeObject, type ReconcileContext, type ReconcileResult } from '../core/reconciler.js';
import { createIdpAdapter, type IdpConnection } from '../idp/factory.js';
import { IdpError, IdpUnreachableError, type IdpAdapter, type IdpHealth } from '../idp/types.js';

type ConditionInput = NonNullable<ReconcileResult['conditions']>[number];

export interface HubObject extends KubeObject {
  spec: {
    domain?: string;
    allowedEmailDomains?: string[];
    identity?: {
      kind: 'keycloak' | 'oidc-dcr';
      issuerUrl: string;
      realm?: string;
      adminCredentialsSecretRef?: { name: string; usernameKey?: string; passwordKey?: string };
      initialAccessTokenSecretRef?: { name: string; key?: string };
      defaultScopes?: string[];
    };
  };
}

const HEALTH_TTL_MS = Number(process.env.FAMILYHUB_IDP_HEALTH_TTL_MS ?? 30_000);
/** FamilyHub's IdentityReady accepts a successful probe at most this old. */
const IDENTITY_CHECK_MAX_AGE_MS = Number(process.env.FAMILYHUB_IDENTITY_CHECK_MAX_AGE_MS ?? 5_000);

interface CachedIdp {
  adapter: IdpAdapter;
  health?: { at: number; value: IdpHealth };
  domains?: { at: number; key: string; result: 'changed' | 'unchanged' | 'unsupported' };
  /** Probes in flight, shared so concurrent workers do not repeat them. */
  healthInFlight?: Promise<IdpHealth>;
  domainsInFlight?: Promise<'changed' | 'unchanged' | 'unsupported'>;
}

const cache = new Map<string, CachedIdp>();

/** Hubs change rarely and every OIDCClient reads one; a burst of reconciles shares one read. */
const HUB_TTL_MS = Number(process.env.FAMILYHUB_HUB_CACHE_MS ?? 2_000);
const hubs = new Map<string, { at: number; hub: HubObject | undefined }>();

export async function getFamilyHub(kube: KubeClient, namespace: string, ref: { name: string; namespace?: string }): Promise<HubObject> {
  const ns = ref.namespace ?? namespace;
  const key = `${ns}/${ref.name}`;
  let cached = hubs.get(key);
  if (!cached || Date.now() - cached.at > HUB_TTL_MS) {
    cached = { at: Date.now(), hub: await kube.get<HubObject>(API_VERSION, 'FamilyHub', ns, ref.name) };
    hubs.set(key, cached);
  }
  const hub = cached.hub;
  if (!hub) throw new ReconcileError('FamilyHubNotFound', `FamilyHub ${ns}/${ref.name} not found`, { retryAfterMs: 15_000 });
  if (!hub.spec.identity) throw new ReconcileError('IdentityNotConfigured', `FamilyHub ${ns}/${ref.name} has no spec.identity`, { retryAfterMs: 30_000 });
  return hub;
}

/**
 * How long a resolved connection (credentials read from Secrets) is reused
 * for the same identity settings. Short: a rotated admin password is picked up
 * within seconds, but a burst of reconciles reads the Secret once.
 */
const CONNECTION_TTL_MS = Number(process.env.FAMILYHUB_IDP_CONNECTION_TTL_MS ?? 5_000);
const connections = new Map<string, { at: number; conn: IdpConnection }>();

/** Reads the hub's credential Secrets and returns the (cached) adapter. */
export async function idpFor(hub: HubObject, kube: KubeClient): Promise<CachedIdp> {
  const hubKey = `${hub.metadata.uid}/${JSON.stringify(hub.spec.identity)}`;
  let resolved = connections.get(hubKey);
  if (!resolved || Date.now() - resolved.at > CONNECTION_TTL_MS) {
    resolved = { at: Date.now(), conn: await connectionOf(hub, kube) };
    connections.set(hubKey, resolved);
  }
  const conn = resolved.conn;
  const key = createHash('sha256').update(JSON.stringify(conn)).digest('hex');
  let entry = cache.get(key);
  if (!entry) {
    entry = { adapter: createIdpAdapter(conn) };
    cache.set(key, entry);
  }
  return entry;
}

async function connectionOf(hub: HubObject, kube: KubeClient): Promise<IdpConnection> {
  const id = hub.spec.identity!;
  const ns = hub.metadata.namespace!;
  const where = `FamilyHub ${ns}/${hub.metadata.name} spec.identity`;
  if (id.kind === 'keycloak') {
    const ref = id.adminCredentialsSecretRef;
    if (!ref) throw new ReconcileError('IdentityNotConfigured', `${where}.adminCredentialsSecretRef is required for keycloak`, { retryAfterMs: 30_000 });
    const data = await kube.readSecret(ns, ref.name);
    const username = data?.[ref.usernameKey ?? 'username'];
    const password = data?.[ref.passwordKey ?? 'password'];
    if (!username || !password) {
      throw new ReconcileError('SecretMissing', `${where}.adminCredentialsSecretRef: Secret ${ns}/${ref.name} is missing or lacks the username/password keys`, { retryAfterMs: 15_000 });
    }
    const issuerUrl = id.realm && !/\/realms\/[^/]+\/?$/.test(id.issuerUrl) ? `${id.issuerUrl.replace(/\/$/, '')}/realms/${id.realm}` : id.issuerUrl;
    return { kind: 'keycloak', issuerUrl, credentials: { kind: 'password', username, password } };
  }
  if (id.kind === 'oidc-dcr') {
    const ref = id.initialAccessTokenSecretRef;
    let initialAccessToken: string | undefined;
    if (ref) {
      initialAccessToken = (await kube.readSecret(ns, ref.name))?.[ref.key ?? 'token'];
      if (!initialAccessToken) throw new ReconcileError('SecretMissing', `${where}.initialAccessTokenSecretRef: Secret ${ns}/${ref.name} is missing or lacks key "${ref.key ?? 'token'}"`, { retryAfterMs: 15_000 });
    }
    return { kind: 'oidc-dcr', issuerUrl: id.issuerUrl, initialAccessToken };
  }
  throw new ReconcileError('UnsupportedIdentityKind', `${where}.kind "${String((id as { kind: unknown }).kind)}" is not supported`, { retryAfterMs: 5 * 60_000 });
}

/** Health from cache while fresh; a failed probe is never cached so recovery shows at once. */
export async function healthOf(entry: CachedIdp, opts: { fresh?: boolean; maxAgeMs?: number } = {}): Promise<IdpHealth> {
  const maxAge = opts.maxAgeMs ?? HEALTH_TTL_MS;
  if (!opts.fresh && entry.health && Date.now() - entry.health.at < maxAge) return entry.health.value;
  entry.healthInFlight ??= entry.adapter
    .checkHealth()
    .then((value) => {
      entry.health = value.discovery && value.admin ? { at: Date.now(), value } : undefined;
      return value;
    }, (err: unknown) => {
      entry.health = undefined;
      throw err;
    })
    .finally(() => {
      entry.healthInFlight = undefined;
    });
  return entry.healthInFlight;
}

export function forgetHealth(entry: CachedIdp): void {
  entry.health = undefined;
  entry.domains = undefined;
}

/**
 * Makes the IdP refuse accounts outside the hub's allowed e-mail domains
 * (where the IdP supports it), re-asserted at most once per health TTL so a
 * hand edit at the IdP is undone without an admin call per reconcile.
 */
export async function ensureEmailDomains(entry: CachedIdp, hub: HubObject, opts: { fresh?: boolean } = {}): Promise<'changed' | 'unchanged' | 'unsupported'> {
  const domains = [...(hub.spec.allowedEmailDomains ?? [])].sort();
  if (!domains.length) return 'unsupported';
  const key = domains.join(',');
  if (!opts.fresh && entry.domains && entry.domains.key === key && Date.now() - entry.domains.at < HEALTH_TTL_MS) return entry.domains.result;
  entry.domainsInFlight ??= entry.adapter
    .enforceEmailDomains(domains)
    .then((result) => {
      entry.domains = { at: Date.now(), key, result };
      return result;
    })
    .finally(() => {
      entry.domainsInFlight = undefined;
    });
  return entry.domainsInFlight;
}

/** FamilyHub IdentityReady: live discovery + admin check of the configured IdP. */
export async function checkIdentity(hub: KubeObject, ctx: ReconcileContext): Promise<ConditionInput | undefined> {
  const h = hub as HubObject;
  if (!h.spec?.identity) return { type: 'IdentityReady', status: 'False', reason: 'NotConfigured', message: 'spec.identity is required' };
  try {
    const entry = await idpFor(h, ctx.kube);
    // Nearly fresh: many hubs (or a burst of reconciles) sharing one IdP
    // probe it once per few seconds, and a failure is never cached.
    const health = await healthOf(entry, { maxAgeMs: IDENTITY_CHECK_MAX_AGE_MS });
    if (!health.discovery) return { type: 'IdentityReady', status: 'False', reason: 'DiscoveryFailed', message: health.message };
    if (!health.admin) return { type: 'IdentityReady', status: 'False', reason: 'AdminAccessFailed', message: health.message };
    const domains = await ensureEmailDomains(entry, h, { fresh: true });
    const domainNote = domains === 'unsupported'
      ? 'e-mail domain restriction is enforced by the runtime services only (the IdP offers no policy for it)'
      : `the IdP refuses e-mail domains other than ${(h.spec.allowedEmailDomains ?? []).join(', ')}`;
    return { type: 'IdentityReady', status: 'True', reason: 'Reachable', message: `${entry.adapter.kind} ${entry.adapter.issuer}: ${health.message}; ${domainNote}` };
  } catch (err) {
    if (err instanceof ReconcileError) return { type: 'IdentityReady', status: 'False', reason: err.reason, message: err.message };
    if (err instanceof IdpUnreachableError) return { type: 'IdentityReady', status: 'False', reason: 'IdPUnreachable', message: err.message };
    if (err instanceof IdpError) return { type: 'IdentityReady', status: 'False', reason: err.status === 401 || err.status === 403 ? 'AdminAccessFailed' : 'IdPError', message: err.message };
    throw err;
  }
}
