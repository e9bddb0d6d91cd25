// The three ways a claim gets credentials. Each observes the claim's Secret
// (with its state annotation), the database and Vault, converges, and writes
// the Secret only when its content changes. Order matters for zero downtime:
// new credentials are written before old ones are scheduled for revocation,
// and revocation waits for the grace period.
import { createHash, randomBytes } from 'node:crypto';
import { ensureOwned } from '../../core/children.js';
import { contentHash, encodeSecretData } from '../../core/kube-client.js';
import type { KubeObject, ReconcileContext } from '../../core/reconciler.js';
import { SECRET } from '../../core/resources.js';
import type { CredentialsMode } from '../../crds/databaseclaim.js';
import { postgresFailure, vaultFailure, type HubPostgres } from '../../platform/database.js';
import { memoKey, type RecentlyVerified } from '../../platform/memo.js';
import type { ClaimIdentifiers } from '../../postgres/identifiers.js';
import type { DatabaseRoleConfig, VaultClient } from '../../vault/client.js';
import { claimCredsPolicy, claimRoleStatements } from '../../vault/database-engine.js';
import { CREDENTIALS_HASH_ANNOTATION, readState, STATE_ANNOTATION, writeState, type CredentialsState, type LeaseState, type RetiredLogin } from './state.js';
import { expiryAfterLookup, nextWakeup, renewAt, revokeAt, rotateAt, type Durations } from './timing.js';

export interface ConnectionFacts {
  host: string;
  port: number;
  database: string;
  sslMode: string;
}

export interface CredentialsInput {
  claim: KubeObject;
  mode: CredentialsMode;
  ids: ClaimIdentifiers;
  secretName: string;
  durations: Durations;
  rotateGeneration: number;
  connection: ConnectionFacts;
  pg: HubPostgres;
  /** login roles in the claim's owner role, as observed with the schema this reconcile */
  loginMembers: string[];
  vault?: { client: VaultClient; databaseMount: string; connectionName: string; kubernetesMount: string; address: string };
  /** Vault state just verified or written (the platform's memory). */
  verified: RecentlyVerified;
  ctx: ReconcileContext;
  now?: () => number;
}

export interface CredentialsOutcome {
  /** changes whenever the login (user/password) changes: drives rollouts */
  credentialsHash: string;
  credentialsChanged: boolean;
  leaseExpiresAt?: string;
  lastRotatedAt?: string;
  requeueAfterMs: number;
  message: string;
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

const credentialsHash = (username: string, password: string) =>
  createHash('sha256').update(username).update('\0').update(password).digest('hex').slice(0, 16);

function connectionData(c: ConnectionFacts, schema: string): Record<string, string> {
  return { host: c.host, port: String(c.port), database: c.database, schema, sslmode: c.sslMode };
}

function loginData(c: ConnectionFacts, schema: string, username: string, password: string): Record<string, string> {
  const uri = `postgresql://${encodeURIComponent(username)}:${encodeURIComponent(password)}@${c.host}:${c.port}/${encodeURIComponent(c.database)}?sslmode=${c.sslMode}`;
  return { ...connectionData(c, schema), username, password, uri, DATABASE_URL: uri };
}

/** Label values stop at 63 characters; longer claim names are represented by a hash. */
function labelValue(name: string): string {
  return name.length <= 63 ? name : `h-${createHash('sha256').update(name).digest('hex').slice(0, 40)}`;
}

/** The claim's credentials as they stand: metadata (state annotation) from the cache, values read once per version. */
interface StoredSecret {
  meta: KubeObject;
  data: Record<string, string> | undefined;
}

async function writeSecret(input: CredentialsInput, data: Record<string, string>, state: CredentialsState, hash: string): Promise<void> {
  await ensureOwned(input.ctx, input.claim, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: input.secretName,
      namespace: input.claim.metadata.namespace,
      labels: { 'familyhub.dev/databaseclaim': labelValue(input.claim.metadata.name) },
      annotations: { 'familyhub.dev/content-hash': contentHash(data), [STATE_ANNOTATION]: writeState(state), [CREDENTIALS_HASH_ANNOTATION]: hash },
    },
    type: 'Opaque',
    data: encodeSecretData(data),
  }, { conditionType: 'CredentialsReady' });
}

/**
 * The claim's Secret (undefined: it does not exist). The cache has the
 * metadata; values come from the memo of what we last wrote or read, so a
 * steady state needs no apiserver read.
 */
async function readClaimSecret(input: CredentialsInput): Promise<StoredSecret | undefined> {
  const ns = input.claim.metadata.namespace!;
  const meta = await input.ctx.cache.get(SECRET, ns, input.secretName);
  if (!meta) return undefined;
  return { meta, data: await input.ctx.kube.readSecret(ns, input.secretName) };
}

const EDITED = 'Secret changed outside the operator';

/**
 * The stored login is not the one we wrote (a hand edit of the Secret): the
 * value cannot be trusted, and the password we set cannot be recovered, so
 * new credentials are issued (reported as Drifted).
 */
function editedByHand(secret: StoredSecret | undefined): boolean {
  const written = secret?.meta.metadata.annotations?.[CREDENTIALS_HASH_ANNOTATION];
  const d = secret?.data;
  return !!written && !!d?.password && credentialsHash(d.username ?? '', d.password) !== written;
}

function reportEdit(input: CredentialsInput, why: string | undefined): void {
  if (why === EDITED) input.ctx.events.warning(input.claim, 'Drifted', `Secret ${input.secretName} was changed outside the operator; new credentials issued`);
}

async function pgCall<T>(input: CredentialsInput, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw postgresFailure(input.pg.target, err);
  }
}

async function vaultCall<T>(input: CredentialsInput, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw vaultFailure(input.vault?.address ?? 'vault', err);
  }
}

/**
 * Ends superseded logins whose grace period is over: Vault revokes the lease
 * (running our revocation statements); if Vault no longer knows the lease
 * (expired, or lost in a restart) the role is dropped directly.
 */
async function processRetired(input: CredentialsInput, retired: RetiredLogin[], now: number): Promise<{ kept: RetiredLogin[]; revoked: number }> {
  const kept: RetiredLogin[] = [];
  let revoked = 0;
  for (const r of retired) {
    if (r.revokeAt > now) {
      kept.push(r);
      continue;
    }
    if (r.leaseId && input.vault) await vaultCall(input, () => input.vault!.client.revokeLease(r.leaseId!));
    await pgCall(input, () => input.pg.provisioner.dropLoginRole(r.username, input.ids.ownerRole));
    revoked++;
  }
  return { kept, revoked };
}

/** Logins in the owner role that no state accounts for (lost Secret, mode switch): retire them with grace. */
function adoptStrays(input: CredentialsInput, state: CredentialsState, keep: string[], now: number): RetiredLogin[] {
  const known = new Set([...keep, ...state.retired.map((r) => r.username)]);
  return input.loginMembers.filter((m) => !known.has(m)).map((username) => ({ username, revokeAt: now + input.durations.graceMs }));
}

/** The claim's database role in Vault: logins join the owner role, TTLs from the claim. */
function vaultRoleConfig(input: CredentialsInput): DatabaseRoleConfig {
  const d = input.durations;
  return {
    dbName: input.vault!.connectionName,
    ...claimRoleStatements(input.ids.schema, input.ids.ownerRole),
    defaultTtlSeconds: Math.max(1, Math.round(d.defaultTtlMs / 1000)),
    maxTtlSeconds: Math.max(1, Math.round(d.maxTtlMs / 1000)),
  };
}

function retireCurrent(state: CredentialsState | undefined, now: number, d: Durations): RetiredLogin[] {
  const cur = state?.current;
  return cur ? [{ leaseId: cur.leaseId, username: cur.username, revokeAt: revokeAt(cur, now, d) }] : [];
}

/** VaultDynamic: short-lived logins leased from Vault, renewed, rotated before max TTL. */
export async function ensureVaultDynamic(input: CredentialsInput): Promise<CredentialsOutcome> {
  const v = input.vault!;
  const now = (input.now ?? Date.now)();
  const d = input.durations;
  const role = input.ids.vaultName;
  const roleConfig = vaultRoleConfig(input);
  const secret = await readClaimSecret(input);
  const prev = readState(secret?.meta.metadata.annotations);
  const roleKey = memoKey('role', v.address, v.databaseMount, role, roleConfig);
  if (!input.verified.has(roleKey)) {
    await vaultCall(input, () => v.client.ensureDatabaseRole(v.databaseMount, role, roleConfig, { create: !prev }));
    input.verified.mark(roleKey);
  }

  const data = secret?.data;
  let state: CredentialsState = prev && prev.mode === 'VaultDynamic'
    ? { ...prev, retired: [...prev.retired] }
    : { mode: 'VaultDynamic', rotateGeneration: input.rotateGeneration, retired: [] };
  if (prev && prev.mode !== 'VaultDynamic') state.retired.push(...prev.retired, ...retireCurrent(prev, now, d));

  let cur = state.current;
  let why: string | undefined;
  if (!cur || !data?.password || data.username !== cur.username) why = 'no credentials yet';
  else if (editedByHand(secret)) why = EDITED;
  else if (state.rotateGeneration !== input.rotateGeneration) why = 'rotation requested';
  else if (now >= rotateAt(cur, d)) why = 'approaching max TTL';
  else if (cur.leaseId && !input.verified.has(memoKey('lease', v.address, cur.leaseId))) {
    // Vault is the authority on the lease: a dev-mode restart or an operator
    // revoking by hand shows up here.
    const seen = await vaultCall(input, () => v.client.lookupLease(cur!.leaseId!));
    if (!seen) why = 'lease no longer known to Vault';
    else {
      cur = { ...cur, expiresAt: expiryAfterLookup(cur.expiresAt, seen.expireTime) };
      input.verified.mark(memoKey('lease', v.address, cur.leaseId));
    }
  }

  reportEdit(input, why);
  let changed = false;
  let renewed = false;
  let password = data?.password ?? '';
  if (why) {
    const issued = await vaultCall(input, () => v.client.issueCredentials(v.databaseMount, role));
    const fresh: LeaseState = {
      leaseId: issued.leaseId,
      username: issued.username,
      issuedAt: now,
      expiresAt: now + issued.leaseDurationSeconds * 1000,
      maxExpiresAt: now + d.maxTtlMs,
      leaseDurationMs: issued.leaseDurationSeconds * 1000,
    };
    if (cur && why !== 'lease no longer known to Vault') {
      // Keep the superseded login valid through the grace period: extend it to its max first.
      const old = cur;
      await vaultCall(input, () => v.client.renewLease(old.leaseId!, Math.ceil((old.maxExpiresAt - now) / 1000))).catch(() => undefined);
    }
    state = {
      ...state,
      rotateGeneration: input.rotateGeneration,
      lastRotatedAt: now,
      current: fresh,
      retired: [...state.retired, ...(cur ? [{ leaseId: cur.leaseId, username: cur.username, revokeAt: revokeAt(cur, now, d) }] : [])],
    };
    password = issued.password;
    cur = fresh;
    input.verified.mark(memoKey('lease', v.address, fresh.leaseId));
    changed = true;
    input.ctx.log.info({ reason: why, leaseExpiresAt: iso(fresh.expiresAt), retiring: state.retired.length }, 'issued database credentials');
    // First issuance is announced by the Ready event; an Event per claim here would only cost an apiserver write.
    if (prev?.current) input.ctx.events.normal(input.claim, 'CredentialsRotated', `New credentials issued (${why}); expire ${iso(fresh.expiresAt)} unless renewed`);
  } else if (cur && now >= renewAt(cur) && cur.maxExpiresAt - cur.expiresAt > 2_000) {
    const c = cur;
    const r = await vaultCall(input, () => v.client.renewLease(c.leaseId!, Math.round(d.defaultTtlMs / 1000)));
    cur = { ...c, expiresAt: now + r.leaseDurationSeconds * 1000, leaseDurationMs: Math.max(1000, r.leaseDurationSeconds * 1000) };
    renewed = true;
    input.ctx.log.debug({ leaseExpiresAt: iso(cur.expiresAt) }, 'renewed database credentials lease');
    state = { ...state, current: cur };
  } else {
    state = { ...state, current: cur };
  }

  const hash = credentialsHash(cur!.username, password);
  const secretData = {
    ...loginData(input.connection, input.ids.schema, cur!.username, password),
    lease_duration: String(Math.round(cur!.leaseDurationMs / 1000)),
    lease_expires_at: iso(cur!.expiresAt)!,
    lease_max_expires_at: iso(cur!.maxExpiresAt)!,
    vault_role: role,
  };
  // Write the new credentials before anything old is touched.
  await writeSecret(input, secretData, state, hash);

  const strays = adoptStrays(input, state, [cur!.username], now);
  const { kept, revoked } = await processRetired(input, [...state.retired, ...strays], now);
  if (revoked || strays.length) {
    state = { ...state, retired: kept };
    await writeSecret(input, secretData, state, hash);
    if (revoked) input.ctx.events.normal(input.claim, 'CredentialsRevoked', `${revoked} superseded login(s) revoked after the grace period`);
  }
  const wake = nextWakeup(now, [
    renewAt(cur!) > now ? renewAt(cur!) : cur!.expiresAt,
    rotateAt(cur!, d),
    ...state.retired.map((r) => r.revokeAt),
  ]);
  return {
    credentialsHash: hash,
    credentialsChanged: changed,
    leaseExpiresAt: iso(cur!.expiresAt),
    lastRotatedAt: iso(state.lastRotatedAt),
    requeueAfterMs: wake,
    message: `${renewed ? 'Lease renewed; ' : ''}credentials valid until ${iso(cur!.expiresAt)} (rotation at ${iso(rotateAt(cur!, d))})`,
  };
}

/**
 * Static: operator-generated passwords on two login roles used in turn. A
 * rotation (rotateGeneration changed) sets a new password on the other login,
 * writes it to the Secret, and keeps the previous login working through the
 * grace period, like VaultDynamic; the previous login is then dropped.
 */
export async function ensureStatic(input: CredentialsInput): Promise<CredentialsOutcome> {
  const now = (input.now ?? Date.now)();
  const secret = await readClaimSecret(input);
  const prev = readState(secret?.meta.metadata.annotations);
  const data = secret?.data;
  const logins = [input.ids.staticLoginRole, input.ids.staticAltLoginRole];
  const schema = { schema: input.ids.schema, ownerRole: input.ids.ownerRole, extensions: [] };
  let state: CredentialsState = prev && prev.mode === 'Static'
    ? { ...prev, retired: [...prev.retired] }
    : { mode: 'Static', rotateGeneration: input.rotateGeneration, retired: [] };
  if (prev && prev.mode !== 'Static') state.retired.push(...prev.retired, ...retireCurrent(prev, now, input.durations));

  const current = prev?.mode === 'Static' && data?.password && logins.includes(data.username ?? '') ? data.username : undefined;
  const exists = current ? await pgCall(input, () => input.pg.provisioner.roleExists(current)) : false;
  const why = !current ? 'no credentials yet'
    : editedByHand(secret) ? EDITED
    : state.rotateGeneration !== input.rotateGeneration ? 'rotation requested'
    : !exists ? 'login role missing' : undefined;
  reportEdit(input, why);
  let username = current ?? logins[0]!;
  let password = data?.password ?? '';
  if (why) {
    const next = why === 'rotation requested' ? logins.find((l) => l !== current)! : username;
    if (state.retired.some((r) => r.username === next)) {
      // Rotated again before the previous grace period ended: that older login goes now.
      await pgCall(input, () => input.pg.provisioner.dropLoginRole(next, input.ids.ownerRole));
      state = { ...state, retired: state.retired.filter((r) => r.username !== next) };
      input.ctx.events.warning(input.claim, 'GracePeriodCutShort', `Rotated again within the grace period; login ${next} from the rotation before was dropped early`);
    }
    password = randomBytes(24).toString('base64url');
    await pgCall(input, () => input.pg.provisioner.ensureLoginRole(next, schema, password));
    const retiring = why === 'rotation requested' ? [{ username: current!, revokeAt: now + input.durations.graceMs }] : [];
    state = { ...state, rotateGeneration: input.rotateGeneration, lastRotatedAt: now, retired: [...state.retired, ...retiring] };
    username = next;
    input.ctx.log.info({ reason: why, login: next }, 'set static database password');
    input.ctx.events.normal(input.claim, prev ? 'CredentialsRotated' : 'CredentialsIssued', `Static credentials set on login ${next} (${why})`);
  } else {
    await pgCall(input, () => input.pg.provisioner.ensureLoginRole(username, schema));
  }
  const hash = credentialsHash(username, password);
  const secretData = loginData(input.connection, input.ids.schema, username, password);
  // Write the new credentials before anything old is touched.
  await writeSecret(input, secretData, state, hash);
  const strays = adoptStrays(input, state, [username], now);
  const { kept, revoked } = await processRetired(input, [...state.retired, ...strays], now);
  if (revoked || strays.length) {
    state = { ...state, retired: kept };
    await writeSecret(input, secretData, state, hash);
    if (revoked) input.ctx.events.normal(input.claim, 'CredentialsRevoked', `${revoked} superseded login(s) dropped after the grace period`);
  }
  return {
    credentialsHash: hash,
    credentialsChanged: !!why,
    lastRotatedAt: iso(state.lastRotatedAt),
    requeueAfterMs: nextWakeup(now, state.retired.map((r) => r.revokeAt)),
    message: `Static credentials for ${username} in place`,
  };
}

/** Annotation naming the ServiceAccount allowed to fetch credentials in VaultAgent mode (default: the claim's name). */
export const SERVICE_ACCOUNT_ANNOTATION = 'familyhub.dev/service-account';

/**
 * VaultAgent: the workload logs in to Vault with its ServiceAccount and reads
 * its own credentials; the operator provisions the Vault role, a policy that
 * allows exactly that path, and the kubernetes-auth role binding them.
 */
export async function ensureVaultAgent(input: CredentialsInput): Promise<CredentialsOutcome> {
  const v = input.vault!;
  const now = (input.now ?? Date.now)();
  const d = input.durations;
  const ns = input.claim.metadata.namespace!;
  const role = input.ids.vaultName;
  const sa = input.claim.metadata.annotations?.[SERVICE_ACCOUNT_ANNOTATION] ?? input.claim.metadata.name;
  const roleConfig = vaultRoleConfig(input);
  const authRole = { serviceAccountNames: [sa], namespaces: [ns], policies: [role], ttlSeconds: Math.max(60, Math.round(d.defaultTtlMs / 1000)) };
  const agentKey = memoKey('agent', v.address, v.databaseMount, v.kubernetesMount, role, roleConfig, authRole);
  if (!input.verified.has(agentKey)) {
    await vaultCall(input, async () => {
      await v.client.ensureDatabaseRole(v.databaseMount, role, roleConfig);
      await v.client.ensurePolicy(role, claimCredsPolicy(v.databaseMount, role));
      await v.client.ensureKubernetesAuthRole(v.kubernetesMount, role, authRole);
    });
    input.verified.mark(agentKey);
  }
  const secret = await readClaimSecret(input);
  const prev = readState(secret?.meta.metadata.annotations);
  let state: CredentialsState = prev && prev.mode === 'VaultAgent'
    ? { ...prev, retired: [...prev.retired] }
    : { mode: 'VaultAgent', rotateGeneration: input.rotateGeneration, retired: [], lastRotatedAt: now };
  if (prev && prev.mode !== 'VaultAgent') state.retired.push(...prev.retired, ...retireCurrent(prev, now, d));
  if (state.rotateGeneration !== input.rotateGeneration) {
    // The app holds its own leases; a forced rotation revokes them all so it must fetch new ones.
    await vaultCall(input, () => v.client.raw('PUT', `/sys/leases/revoke-prefix/${v.databaseMount}/creds/${role}`));
    state = { ...state, rotateGeneration: input.rotateGeneration, lastRotatedAt: now };
  }
  const secretData = {
    ...connectionData(input.connection, input.ids.schema),
    vault_addr: v.address,
    vault_auth_path: `auth/${v.kubernetesMount}/login`,
    vault_role: role,
    vault_creds_path: `${v.databaseMount}/creds/${role}`,
    service_account: sa,
  };
  const hash = createHash('sha256').update(role).update(String(state.lastRotatedAt ?? 0)).digest('hex').slice(0, 16);
  await writeSecret(input, secretData, state, hash);
  const { kept, revoked } = await processRetired(input, state.retired, now);
  if (revoked) {
    state = { ...state, retired: kept };
    await writeSecret(input, secretData, state, hash);
  }
  return {
    credentialsHash: hash,
    credentialsChanged: false,
    lastRotatedAt: iso(state.lastRotatedAt),
    requeueAfterMs: nextWakeup(now, state.retired.map((r) => r.revokeAt)),
    message: `Vault role ${role} for ServiceAccount ${ns}/${sa}`,
  };
}
