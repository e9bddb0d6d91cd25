// What the README promises about DatabaseClaims and OIDCClients, through the
// running operator (a child process under config/rbac) with independent
// witnesses: the apiserver's audit log for its Kubernetes writes, the
// IdP's own HTTP server (diagnostics channel) for its IdP traffic, and
// PostgreSQL for roles, schemas and extensions.
//   - an unchanged DatabaseClaim (VaultDynamic and Static) and OIDCClient
//     cause zero writes over several resyncs, while the resyncs really run
//     (the IdP sees the read-backs: GETs, nothing else);
//   - Static: a second rotation within the grace period drops the older
//     login at once (GracePeriodCutShort);
//   - an extension outside allowedExtensions is refused before any DDL;
//   - an extension already installed in another claim's schema is a
//     SchemaConflict;
//   - an OIDCClient's scheduled rotation fires from its own timer, with
//     nothing editing anything and a resync far away.
import dc from 'node:diagnostics_channel';
import type http from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditEvents, startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { startOpenBao, type LocalOpenBao } from '../../hack/local/openbao.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { KubeClient } from '../../src/core/kube-client.js';
import { claimIdentifiers } from '../../src/postgres/identifiers.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { API, condition, isReady, namespace, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { connectWith } from './databaseclaim-harness.js';

const NS = 'family';
const OPERATOR_USER = 'system:serviceaccount:familyhub-system:familyhub-operator';
const RESYNC_MS = 2000;

let cp: ControlPlane;
let kube: KubeClient;
let db: LocalPostgres;
let bao: LocalOpenBao;
let idp: DevIdp;
let op: RunningOperator;
let admin: pg.Pool;
let saKubeconfig: string;
/** Every secret value the suite created or read: none may appear in the operator's log. */
const secrets = new Set<string>();

/** HTTP requests the IdP's own server received, in order. */
const idpRequests: { method: string; path: string }[] = [];
const onRequest = (m: unknown) => {
  const { request, server } = m as { request: http.IncomingMessage; server: http.Server };
  const addr = server.address();
  if (idp && typeof addr === 'object' && addr?.port === idp.port) idpRequests.push({ method: request.method!, path: new URL(request.url!, 'http://x').pathname });
};

const claim = (name: string, spec: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: API, kind: 'DatabaseClaim', metadata: { name, namespace: NS }, spec: { familyHubRef: { name: 'home' }, ...spec },
});
const client = (name: string, spec: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: API, kind: 'OIDCClient', metadata: { name, namespace: NS },
  spec: { familyHubRef: { name: 'home' }, redirectUris: [`https://${name}.example.org/cb`], defaultScopes: ['openid', 'email'], ...spec },
});
const ref = (kind: string, name: string) => ({ kind, namespace: NS, name });
/** The PostgreSQL names the operator derives for a claim (hyphens fold with a hash suffix). */
const ids = (name: string) => claimIdentifiers(NS, name);
const ready = (o: KubeObject) => isReady(o) && o.status?.observedGeneration === o.metadata.generation;
const SECRET_KEYS = ['password', 'uri', 'DATABASE_URL', 'client-secret', 'registration-access-token'];
const readSecret = async (name: string) => {
  const d = (await kube.readSecret(NS, name)) ?? {};
  for (const k of SECRET_KEYS) if (d[k]) secrets.add(d[k]);
  return d;
};
/** Logs of every operator process the suite ran. */
const logsOfStopped: string[] = [];
const operatorWrites = (from: number) =>
  readAuditEvents(cp.auditLogPath).slice(from)
    .filter((e) => e.user.username === OPERATOR_USER && !['get', 'list', 'watch'].includes(e.verb) && e.objectRef?.resource !== 'leases');
const reconciles = async (controller: string) =>
  (await op.metrics()).split('\n').filter((l) => l.startsWith(`familyhub_reconcile_total{controller="${controller}"`)).reduce((a, l) => a + Number(l.split(' ').at(-1)), 0);

async function startTheOperator(name: string, env: Record<string, string>): Promise<RunningOperator> {
  return startOperator({
    kubeconfigPath: saKubeconfig,
    name,
    env: {
      FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system',
      FAMILYHUB_CONTROLLERS: 'databaseclaim,oidcclient',
      FAMILYHUB_DEPENDENCY_RETRY_MS: '2000',
      FAMILYHUB_IDP_RETRY_MS: '1000',
      ...env,
    },
  });
}

beforeAll(async () => {
  dc.subscribe('http.server.request.start', onRequest);
  [cp, db, bao, idp] = await Promise.all([startControlPlane(), startPostgres(), startOpenBao(), startDevIdp({ allowedDomain: 'example.org' })]);
  for (const s of [db.password, bao.rootToken, idp.initialAccessToken]) secrets.add(s);
  kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installRbac(cp.kubeConfig);
  await namespace(kube, NS);
  await secret(kube, NS, 'pg-admin', { username: db.user, password: db.password });
  await secret(kube, NS, 'vault-token', { token: bao.rootToken });
  await secret(kube, NS, 'dcr-token', { token: idp.initialAccessToken });
  await kube.apply({
    apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: NS },
    spec: {
      domain: 'home.example.org', allowedEmailDomains: ['example.org'],
      postgres: { host: '127.0.0.1', port: db.port, database: 'postgres', sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' }, allowedExtensions: ['pgcrypto'] },
      vault: { address: bao.address, authMethod: 'token', tokenSecretRef: { name: 'vault-token' } },
      identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'dcr-token' } },
      runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
    },
  }, { fieldManager: 'e2e-test' });
  saKubeconfig = await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
  // Every resync of an OIDCClient reads the client back from the IdP (no reuse
  // window); a lease's state in Vault is trusted for 3 s only, so every quiet
  // window holds lease lookups (Vault's expire_time, a few ms from the
  // recorded one, once rewrote an unchanged claim's Secret).
  op = await startTheOperator('operator-promises-claims', { FAMILYHUB_RESYNC_MS: String(RESYNC_MS), FAMILYHUB_VAULT_VERIFY_TTL_MS: '3000', FAMILYHUB_OIDC_RECENT_MS: '0', FAMILYHUB_IDP_HEALTH_TTL_MS: '1000' });
  admin = new pg.Pool({ connectionString: db.url, max: 2 });
  admin.on('error', () => {});
}, 240_000);

afterAll(async () => {
  dc.unsubscribe('http.server.request.start', onRequest);
  await admin?.end().catch(() => {});
  await op?.stop();
  await Promise.allSettled([cp?.stop(), db?.stop(), bao?.stop(), idp?.stop()]);
});

describe('DatabaseClaim and OIDCClient promises, through the running operator', () => {
  it('an unchanged DatabaseClaim (VaultDynamic, Static) and OIDCClient: zero writes over several resyncs, which read the client back from the IdP', async () => {
    await kube.apply(claim('steady-dyn'), { fieldManager: 'e2e-test' });
    await kube.apply(claim('steady-static', { credentials: { mode: 'Static' } }), { fieldManager: 'e2e-test' });
    await kube.apply(client('steady-app'), { fieldManager: 'e2e-test' });
    for (const [kind, name] of [['DatabaseClaim', 'steady-dyn'], ['DatabaseClaim', 'steady-static'], ['OIDCClient', 'steady-app']] as const) {
      await waitForObject(kube, ref(kind, name), 'Ready', ready, 90_000);
    }
    const dyn = await readSecret('steady-dyn-db');
    const stat = await readSecret('steady-static-db');
    const app = await readSecret('steady-app-oidc');
    expect(dyn.username).toMatch(/^v-/);
    expect(stat.username).toBe(ids('steady-static').staticLoginRole);
    expect(app['client-secret']).toMatch(/^\S{16,}$/);
    // Whatever settled right after Ready has settled: the window starts once a full resync wrote nothing.
    await waitFor('a quiet resync', async () => {
      const mark = readAuditEvents(cp.auditLogPath).length;
      const r0 = await reconciles('databaseclaim');
      await waitFor('one resync', async () => (await reconciles('databaseclaim')) >= r0 + 2, { timeoutMs: RESYNC_MS * 4, intervalMs: 100 });
      return operatorWrites(mark).length === 0;
    }, { timeoutMs: 60_000, intervalMs: 0 });

    const mark = readAuditEvents(cp.auditLogPath).length;
    const idpMark = idpRequests.length;
    const claims0 = await reconciles('databaseclaim');
    const clients0 = await reconciles('oidcclient');
    // Three resyncs at least: every object reconciled three more times.
    await waitFor('three resyncs', async () => (await reconciles('databaseclaim')) >= claims0 + 6 && (await reconciles('oidcclient')) >= clients0 + 3, { timeoutMs: RESYNC_MS * 10, intervalMs: 200 });

    expect(operatorWrites(mark).map((e) => `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.name}`)).toEqual([]);
    const seen = idpRequests.slice(idpMark);
    expect(seen.filter((r) => r.method !== 'GET')).toEqual([]);
    // The read-back went to the client's registration URI (RFC 7592), not just discovery.
    const clientId = (await readSecret('steady-app-oidc'))['client-id'];
    expect(clientId).toBeTruthy();
    expect(seen.filter((r) => r.path.endsWith(`/${clientId}`)).length).toBeGreaterThanOrEqual(3);
    // Nothing moved: same credentials as before the window.
    expect(await readSecret('steady-dyn-db')).toEqual(dyn);
    expect(await readSecret('steady-static-db')).toEqual(stat);
    expect(await readSecret('steady-app-oidc')).toEqual(app);
  });

  it('Static: rotating again within the grace period drops the older login at once (GracePeriodCutShort)', async () => {
    await kube.apply(claim('cut', { credentials: { mode: 'Static', rotationGracePeriod: '1h' } }), { fieldManager: 'e2e-test' });
    await waitForObject(kube, ref('DatabaseClaim', 'cut'), 'Ready', ready, 60_000);
    const s1 = await readSecret('cut-db');
    await kube.mergePatch(API, 'DatabaseClaim', NS, 'cut', { spec: { credentials: { rotateGeneration: 1 } } });
    await waitForObject(kube, ref('DatabaseClaim', 'cut'), 'rotated once', (x) => ready(x) && x.status.observedRotateGeneration === 1);
    const s2 = await readSecret('cut-db');
    expect(s2.username).toBe(ids('cut').staticAltLoginRole);
    // Within its hour of grace, the first login still works.
    await (await connectWith(s1)).end();

    await kube.mergePatch(API, 'DatabaseClaim', NS, 'cut', { spec: { credentials: { rotateGeneration: 2 } } });
    await waitForObject(kube, ref('DatabaseClaim', 'cut'), 'rotated twice', (x) => ready(x) && x.status.observedRotateGeneration === 2);
    const s3 = await readSecret('cut-db');
    expect(s3.username).toBe(s1.username);
    expect(s3.password).not.toBe(s1.password);
    const events = (await kube.list('v1', 'Event', NS)).items.filter((e) => e.involvedObject?.name === 'cut' && e.reason === 'GracePeriodCutShort');
    expect(events).toHaveLength(1);
    expect(events[0]!.type).toBe('Warning');
    expect(events[0]!.message).toContain(s1.username);
    // The login from the first issue is gone now, an hour early; the second keeps its grace; the new one works.
    await expect(connectWith(s1)).rejects.toThrow(/password authentication failed/);
    await (await connectWith(s2)).end();
    await (await connectWith(s3)).end();
  });

  it('an extension not in the FamilyHub\'s allowedExtensions is refused before any DDL (ExtensionNotAllowed)', async () => {
    await kube.apply(claim('wants-hstore', { extensions: ['hstore'] }), { fieldManager: 'e2e-test' });
    const o = await waitForObject(kube, ref('DatabaseClaim', 'wants-hstore'), 'ExtensionNotAllowed', (x) => condition(x, 'SchemaReady')?.reason === 'ExtensionNotAllowed');
    expect(condition(o, 'SchemaReady')?.status).toBe('False');
    expect(condition(o, 'SchemaReady')?.message).toContain('hstore');
    expect(condition(o, 'Ready')?.status).toBe('False');
    expect((await admin.query('select 1 from pg_namespace where nspname = $1', [ids('wants-hstore').schema])).rowCount).toBe(0);
    expect((await admin.query("select 1 from pg_extension where extname = 'hstore'")).rowCount).toBe(0);
    expect(await kube.readSecret(NS, 'wants-hstore-db')).toBeUndefined();
  });

  it('an extension already installed in another claim\'s schema is a SchemaConflict', async () => {
    await kube.apply(claim('crypto-a', { extensions: ['pgcrypto'] }), { fieldManager: 'e2e-test' });
    await waitForObject(kube, ref('DatabaseClaim', 'crypto-a'), 'Ready', ready, 60_000);
    const where = await admin.query<{ s: string }>("select n.nspname as s from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pgcrypto'");
    expect(where.rows.map((r) => r.s)).toEqual([ids('crypto-a').schema]);

    await kube.apply(claim('crypto-b', { extensions: ['pgcrypto'] }), { fieldManager: 'e2e-test' });
    const o = await waitForObject(kube, ref('DatabaseClaim', 'crypto-b'), 'SchemaConflict', (x) => condition(x, 'SchemaReady')?.reason === 'SchemaConflict');
    expect(condition(o, 'SchemaReady')?.message).toContain(`pgcrypto is already installed in schema ${ids('crypto-a').schema}`);
    expect(condition(o, 'Ready')?.status).toBe('False');
    expect(await kube.readSecret(NS, 'crypto-b-db')).toBeUndefined();
    // The first claim's extension stayed where it was.
    expect((await admin.query("select n.nspname as s from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pgcrypto'")).rows).toEqual([{ s: ids('crypto-a').schema }]);
  });

  it('an OIDCClient\'s scheduled rotation fires from its own timer: no edit, no resync in reach', async () => {
    // A resync 10 minutes away: only the client's own wake-up can rotate it within the test.
    await op.stop();
    logsOfStopped.push(op.logs());
    op = await startTheOperator('operator-promises-rotation', { FAMILYHUB_RESYNC_MS: '600000' });
    await kube.apply(client('timed', { rotation: { interval: '1m' } }), { fieldManager: 'e2e-test' });
    const first = await waitForObject(kube, ref('OIDCClient', 'timed'), 'Ready', ready, 60_000);
    const s1 = await readSecret('timed-oidc');
    const issuedAt = Date.parse(first.status.lastRotatedAt);
    const mark = readAuditEvents(cp.auditLogPath).length;
    const rotated = await waitForObject(kube, ref('OIDCClient', 'timed'), 'rotated on schedule', (x) => ready(x) && x.status.secretHash !== first.status.secretHash, 150_000);
    const s2 = await readSecret('timed-oidc');
    expect(s2['client-secret']).not.toBe(s1['client-secret']);
    // Due after one minute, and not much later (a resync would be ten minutes away).
    const after = Date.parse(rotated.status.lastRotatedAt) - issuedAt;
    expect(after).toBeGreaterThanOrEqual(60_000);
    expect(after).toBeLessThan(90_000);
    // Nobody but the operator touched the client or its Secret in between.
    const others = readAuditEvents(cp.auditLogPath).slice(mark).filter((e) =>
      e.user.username !== OPERATOR_USER && !['get', 'list', 'watch'].includes(e.verb)
      && ((e.objectRef?.resource === 'oidcclients' && e.objectRef.name === 'timed') || (e.objectRef?.resource === 'secrets' && e.objectRef.name?.startsWith('timed'))));
    expect(others).toEqual([]);
  }, 240_000);

  it('no secret value the suite created or read appears in the operator\'s log', async () => {
    await readSecret('steady-app-oidc-registration');
    await readSecret('timed-oidc-registration');
    const logs = [...logsOfStopped, op.logs()].join('\n');
    expect(logsOfStopped).toHaveLength(1);
    expect(logs).toContain('"msg"');
    for (const s of secrets) expect(logs.includes(s), `secret of length ${s.length} in the log`).toBe(false);
  });
});
