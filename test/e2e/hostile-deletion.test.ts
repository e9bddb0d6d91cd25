// Deletion in every state, against the real apiserver (kube-controller-
// manager's garbage collector and namespace controller included), real
// PostgreSQL servers, the development IdP and the operator as its
// ServiceAccount: what was never provisioned or was refused finishes at
// once; what was provisioned is cleaned up per deletionPolicy; a hub that is
// gone releases its objects; a hub that cannot be reached holds them with a
// status that says why, until the documented skip-cleanup annotation
// releases them; a namespace holding claims can be deleted.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { DcrAdapter } from '../../src/idp/dcr/adapter.js';
import { API, condition, isReady, namespace, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { stopPostgres } from './databaseclaim-harness.js';

const NS = 'family';
const SKIP = 'familyhub.dev/skip-cleanup';

let cp: ControlPlane;
let kube: KubeClient;
let db: LocalPostgres;
let far: LocalPostgres;
let idp: DevIdp;
let op: RunningOperator;
let admin: pg.Pool;

const user = { fieldManager: 'hostile-user' };
const apply = (o: KubeObject) => kube.apply(o, user);

const hub = (name: string, ns: string, pgServer: LocalPostgres): KubeObject => ({
  apiVersion: API, kind: 'FamilyHub', metadata: { name, namespace: ns },
  spec: {
    domain: 'family.test',
    allowedEmailDomains: ['family.test'],
    postgres: { host: '127.0.0.1', port: pgServer.port, database: 'postgres', sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
    identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
    runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
  },
});
const claim = (name: string, spec: Record<string, unknown> = {}, ns = NS): KubeObject => ({
  apiVersion: API, kind: 'DatabaseClaim', metadata: { name, namespace: ns },
  spec: { familyHubRef: { name: 'home' }, credentials: { mode: 'Static' }, ...spec },
});
const client = (name: string, spec: Record<string, unknown> = {}, ns = NS): KubeObject => ({
  apiVersion: API, kind: 'OIDCClient', metadata: { name, namespace: ns },
  spec: { familyHubRef: { name: 'home' }, redirectUris: [`https://${name}.family.test/cb`], defaultScopes: ['openid', 'email'], ...spec },
});

const get = (kind: string, name: string, ns = NS) => kube.get(kind === 'Secret' ? 'v1' : API, kind, ns, name);
const waitObj = (kind: string, name: string, what: string, pred: (o: KubeObject) => boolean, ns = NS) => waitForObject(kube, { kind, namespace: ns, name }, what, pred);
const gone = (kind: string, name: string, ns = NS, timeoutMs = 20_000) => waitFor(`${kind} ${ns}/${name} gone`, async () => !(await get(kind, name, ns)), { timeoutMs });
const eventsOf = async (kind: string, name: string, ns = NS) =>
  (await kube.list('v1', 'Event', ns)).items.filter((e) => e.involvedObject?.kind === kind && e.involvedObject?.name === name).map((e) => ({ reason: e.reason as string, message: e.message as string }));
const waitEvent = (kind: string, name: string, reason: string, ns = NS) =>
  waitFor(`${kind} ${name}: Event ${reason}`, async () => (await eventsOf(kind, name, ns)).some((e) => e.reason === reason), { timeoutMs: 30_000 });

const schemaExists = async (pool: pg.Pool, schema: string) => (await pool.query('select 1 from information_schema.schemata where schema_name = $1', [schema])).rowCount === 1;
const roleExists = async (pool: pg.Pool, role: string) => (await pool.query('select 1 from pg_roles where rolname = $1', [role])).rowCount === 1;

async function connect(secretName: string, ns = NS): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: (await kube.readSecret(ns, secretName))!.uri });
  await c.connect();
  return c;
}

async function provisioned(name: string, spec: Record<string, unknown> = {}, ns = NS): Promise<KubeObject> {
  await apply(claim(name, spec, ns));
  return waitObj('DatabaseClaim', name, 'Ready', isReady, ns);
}

/** Deletes and expects the finalizer to finish quickly: nothing to wait for. */
async function deletesAtOnce(kind: string, name: string, ns = NS): Promise<void> {
  const t0 = Date.now();
  await kube.delete(API, kind, ns, name);
  await gone(kind, name, ns, 15_000);
  expect(Date.now() - t0).toBeLessThan(15_000);
}

beforeAll(async () => {
  [cp, db, far, idp] = await Promise.all([startControlPlane(), startPostgres(), startPostgres(), startDevIdp({ allowedDomain: 'family.test' })]);
  kube = new KubeClient(cp.kubeConfig);
  admin = new pg.Pool({ connectionString: db.url, max: 2 });
  admin.on('error', () => {});
  await installCrds(cp.kubeConfig);
  await installRbac(cp.kubeConfig);
  for (const ns of [NS, 'doomed', 'apps']) {
    await namespace(kube, ns);
    await secret(kube, ns, 'pg-admin', { username: db.user, password: db.password });
    await secret(kube, ns, 'idp-token', { token: idp.initialAccessToken });
  }
  // A second hub on a second server, which one case takes away.
  await secret(kube, NS, 'far-admin', { username: far.user, password: far.password });
  await apply(hub('home', NS, db));
  await apply({ ...hub('faraway', NS, far), spec: { ...hub('faraway', NS, far).spec, postgres: { ...hub('faraway', NS, far).spec.postgres, adminCredentialsSecretRef: { name: 'far-admin' } } } });
  op = await startOperator({
    kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
    name: 'operator-hostile-deletion',
    env: {
      FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system',
      FAMILYHUB_CONTROLLERS: 'familyhub,databaseclaim,oidcclient',
      FAMILYHUB_RESYNC_MS: '2000',
      FAMILYHUB_RECHECK_MS: '1000',
      FAMILYHUB_DEPENDENCY_RETRY_MS: '1000',
      FAMILYHUB_IDP_RETRY_MS: '1000',
      FAMILYHUB_IDP_HEALTH_TTL_MS: '1000',
    },
  });
  await waitObj('FamilyHub', 'home', 'Ready', isReady);
  await waitObj('FamilyHub', 'faraway', 'Ready', isReady);
});

afterAll(async () => {
  await admin?.end().catch(() => {});
  await op?.stop();
  await Promise.allSettled([cp?.stop(), db?.stop(), far?.stop(), idp?.stop()]);
});

describe('never provisioned or refused: deletion finishes at once', () => {
  it('a DatabaseClaim whose FamilyHub never existed', async () => {
    await apply(claim('orphan', { familyHubRef: { name: 'ghost' } }));
    const o = await waitObj('DatabaseClaim', 'orphan', 'FamilyHubNotFound', (x) => condition(x, 'Ready')?.reason === 'FamilyHubNotFound');
    expect(o.metadata.finalizers).toContain('familyhub.dev/databaseclaim');
    await deletesAtOnce('DatabaseClaim', 'orphan');
    expect((await eventsOf('DatabaseClaim', 'orphan')).map((e) => e.reason)).toContain('CleanupSkipped');
  });

  it('a DatabaseClaim refused for an extension the hub does not allow, deletionPolicy Delete: nothing was created, nothing else dropped', async () => {
    await provisioned('neighbour', { deletionPolicy: 'Retain' });
    await apply(claim('greedy', { extensions: ['plpython3u'], deletionPolicy: 'Delete' }));
    const o = await waitObj('DatabaseClaim', 'greedy', 'ExtensionNotAllowed', (x) => condition(x, 'SchemaReady')?.reason === 'ExtensionNotAllowed');
    expect(condition(o, 'Stalled')?.status).toBe('True');
    expect(await schemaExists(admin, 'fh_family_greedy')).toBe(false);
    await deletesAtOnce('DatabaseClaim', 'greedy');
    expect(await schemaExists(admin, 'fh_family_greedy')).toBe(false);
    expect(await schemaExists(admin, 'fh_family_neighbour')).toBe(true);
    const c = await connect('neighbour-db');
    await c.end();
  });

  it('an OIDCClient that never registered (its hub never existed)', async () => {
    await apply(client('lonely', { familyHubRef: { name: 'ghost' } }));
    const o = await waitObj('OIDCClient', 'lonely', 'FamilyHubNotFound', (x) => condition(x, 'Ready')?.reason === 'FamilyHubNotFound');
    expect(o.status?.clientId).toBeUndefined();
    await deletesAtOnce('OIDCClient', 'lonely');
  });

  it('an OIDCClient refused for a Secret it may not write', async () => {
    await apply(client('refused', { secretName: 'pg-admin' }));
    await waitObj('OIDCClient', 'refused', 'SecretConflict', (x) => condition(x, 'ClientReady')?.reason === 'SecretConflict');
    await deletesAtOnce('OIDCClient', 'refused');
    expect(await kube.readSecret(NS, 'pg-admin')).toEqual({ username: db.user, password: db.password });
  });
});

describe('provisioned: deletion honours deletionPolicy', () => {
  it('Retain (default): logins revoked, schema and data kept', async () => {
    await provisioned('keeper');
    const c = await connect('keeper-db');
    await c.query("create table notes (t text); insert into notes values ('keep me')");
    await c.end();
    const creds = (await kube.readSecret(NS, 'keeper-db'))!;
    await kube.delete(API, 'DatabaseClaim', NS, 'keeper');
    await gone('DatabaseClaim', 'keeper');
    expect((await admin.query('select t from fh_family_keeper.notes')).rows).toEqual([{ t: 'keep me' }]);
    expect(await roleExists(admin, creds.username!)).toBe(false);
    const late = new pg.Client({ connectionString: creds.uri });
    await expect(late.connect()).rejects.toThrow(/does not exist|authentication failed/);
  });

  it('Delete: schema, owner role and logins dropped', async () => {
    const o = await provisioned('dropper', { deletionPolicy: 'Delete' });
    const creds = (await kube.readSecret(NS, 'dropper-db'))!;
    await kube.delete(API, 'DatabaseClaim', NS, 'dropper');
    await gone('DatabaseClaim', 'dropper');
    expect(await schemaExists(admin, o.status.schema)).toBe(false);
    expect(await roleExists(admin, o.status.ownerRole)).toBe(false);
    expect(await roleExists(admin, creds.username!)).toBe(false);
  });

  it('an OIDCClient with deletionPolicy Delete: its registration stops working at the IdP', async () => {
    await apply(client('temp'));
    await waitObj('OIDCClient', 'temp', 'Ready', isReady);
    const reg = (await kube.readSecret(NS, 'temp-oidc-registration'))!;
    const ref = { clientId: reg['client-id']!, registrationClientUri: reg['registration-client-uri'], registrationAccessToken: reg['registration-access-token'] };
    const dcr = new DcrAdapter({ issuerUrl: idp.issuer });
    expect(await dcr.getClient(ref)).toBeDefined();
    await kube.delete(API, 'OIDCClient', NS, 'temp');
    await gone('OIDCClient', 'temp');
    expect(await dcr.getClient(ref)).toBeUndefined();
  });
});

describe('the hub gone or unreachable', () => {
  it('a FamilyHub in use waits (InUse), is released by skip-cleanup; its claims then delete at once', async () => {
    await secret(kube, NS, 'pg-admin-2', { username: db.user, password: db.password });
    const h = hub('second', NS, db);
    h.spec.postgres.adminCredentialsSecretRef = { name: 'pg-admin-2' };
    await apply(h);
    await waitObj('FamilyHub', 'second', 'Ready', isReady);
    const o = await provisioned('stranded', { familyHubRef: { name: 'second' } });
    await kube.delete(API, 'FamilyHub', NS, 'second');
    await waitEvent('FamilyHub', 'second', 'InUse');
    const held = await waitObj('FamilyHub', 'second', 'Ready=False InUse', (x) => condition(x, 'Ready')?.reason === 'InUse');
    expect(held.metadata.deletionTimestamp).toBeTruthy();
    expect(condition(held, 'Ready')?.message).toContain('DatabaseClaim family/stranded');

    await kube.mergePatch(API, 'FamilyHub', NS, 'second', { metadata: { annotations: { [SKIP]: 'true' } } });
    await gone('FamilyHub', 'second');
    expect((await eventsOf('FamilyHub', 'second')).map((e) => e.reason)).toContain('CleanupSkipped');

    // The hub is gone: nothing says where the schema lives any more.
    await deletesAtOnce('DatabaseClaim', 'stranded');
    const skipped = (await eventsOf('DatabaseClaim', 'stranded')).find((e) => e.reason === 'CleanupSkipped');
    expect(skipped?.message).toContain('FamilyHub family/second not found');
    // Nothing was cleaned up, as the Event says.
    expect(await schemaExists(admin, o.status.schema)).toBe(true);
  });

  it('a claim on an unreachable PostgreSQL waits with PostgresUnavailable in status; skip-cleanup releases it', async () => {
    await provisioned('remote', { familyHubRef: { name: 'faraway' }, deletionPolicy: 'Delete' });
    await stopPostgres(far);
    await kube.delete(API, 'DatabaseClaim', NS, 'remote');
    const o = await waitObj('DatabaseClaim', 'remote', 'PostgresUnavailable while deleting', (x) => !!x.metadata.deletionTimestamp && condition(x, 'PostgresReady')?.reason === 'PostgresUnavailable');
    expect(condition(o, 'PostgresReady')?.message).toContain(`PostgreSQL 127.0.0.1:${far.port}/postgres is not reachable`);
    expect(o.metadata.finalizers).toContain('familyhub.dev/databaseclaim');
    await kube.mergePatch(API, 'DatabaseClaim', NS, 'remote', { metadata: { annotations: { [SKIP]: 'true' } } });
    await gone('DatabaseClaim', 'remote');
    expect((await eventsOf('DatabaseClaim', 'remote')).find((e) => e.reason === 'CleanupSkipped')?.message).toContain(SKIP);
  });
});

describe('namespaces with claims inside can be deleted', () => {
  it('claims in an app namespace on a hub elsewhere: the namespace goes, Delete drops, Retain keeps', async () => {
    await provisioned('shop', { familyHubRef: { name: 'home', namespace: NS }, deletionPolicy: 'Delete' }, 'apps');
    await provisioned('archive', { familyHubRef: { name: 'home', namespace: NS } }, 'apps');
    await kube.delete('v1', 'Namespace', undefined, 'apps');
    await waitFor('namespace apps gone', async () => !(await kube.get('v1', 'Namespace', undefined, 'apps')), { timeoutMs: 90_000 });
    expect(await schemaExists(admin, 'fh_apps_shop')).toBe(false);
    expect(await schemaExists(admin, 'fh_apps_archive')).toBe(true);
  });

  it('a namespace holding its own hub, its admin Secret, claims and a client: everything goes', async () => {
    await apply(hub('home', 'doomed', db));
    await waitObj('FamilyHub', 'home', 'Ready', isReady, 'doomed');
    await provisioned('inside', { deletionPolicy: 'Delete' }, 'doomed');
    await apply(client('inside', {}, 'doomed'));
    await waitObj('OIDCClient', 'inside', 'Ready', isReady, 'doomed');
    await kube.delete('v1', 'Namespace', undefined, 'doomed');
    await waitFor('namespace doomed gone', async () => !(await kube.get('v1', 'Namespace', undefined, 'doomed')), { timeoutMs: 90_000 });
  });
});

describe('the IdP unreachable', () => {
  it('an OIDCClient waits with IdPUnreachable in status; skip-cleanup releases it (runs last: stops the IdP)', async () => {
    await apply(client('stuck'));
    await waitObj('OIDCClient', 'stuck', 'Ready', isReady);
    await idp.stop();
    await kube.delete(API, 'OIDCClient', NS, 'stuck');
    const o = await waitObj('OIDCClient', 'stuck', 'IdPUnreachable while deleting', (x) => !!x.metadata.deletionTimestamp && condition(x, 'IdPReachable')?.reason === 'IdPUnreachable');
    expect(condition(o, 'IdPReachable')?.status).toBe('False');
    await kube.mergePatch(API, 'OIDCClient', NS, 'stuck', { metadata: { annotations: { [SKIP]: 'true' } } });
    await gone('OIDCClient', 'stuck');
    expect((await eventsOf('OIDCClient', 'stuck')).map((e) => e.reason)).toContain('CleanupSkipped');
  });
});
