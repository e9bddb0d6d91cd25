// Cross-object attacks on Secrets, schemas and ConfigMaps, against the real
// apiserver (with its audit log), a real PostgreSQL, the development IdP
// (DCR) and the operator as its ServiceAccount under config/rbac. Each
// attacker names something that belongs to another object; each case asserts
// the attacker's exact condition, that the operator wrote nothing but the
// attacker's own status (audit log), and the victim afterwards: same
// resourceVersion, data and owner, still working (a login at the IdP, a
// query with the claim's credentials), and still there after the attacker is
// deleted and the garbage collector has processed that deletion.
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditEvents, startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { DcrAdapter } from '../../src/idp/dcr/adapter.js';
import { API, condition, isReady, namespace, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';

const NS = 'family';
const OPERATOR_USER = 'system:serviceaccount:familyhub-system:familyhub-operator';
const READS = new Set(['get', 'list', 'watch']);

let cp: ControlPlane;
let kube: KubeClient;
let db: LocalPostgres;
let idp: DevIdp;
let op: RunningOperator;
let admin: pg.Pool;
/** Every secret value this file saw: none may appear in logs, status or Events. */
const secretValues = new Set<string>();

const user = { fieldManager: 'hostile-user' };
const apply = (o: KubeObject) => kube.apply(o, user);

const hub = (name: string): KubeObject => ({
  apiVersion: API, kind: 'FamilyHub', metadata: { name, namespace: NS },
  spec: {
    domain: 'family.test',
    allowedEmailDomains: ['family.test'],
    postgres: { host: '127.0.0.1', port: db.port, database: 'postgres', sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
    identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
    runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
  },
});
const claim = (name: string, spec: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: API, kind: 'DatabaseClaim', metadata: { name, namespace: NS },
  spec: { familyHubRef: { name: 'home' }, credentials: { mode: 'Static' }, ...spec },
});
const client = (name: string, spec: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: API, kind: 'OIDCClient', metadata: { name, namespace: NS },
  spec: { familyHubRef: { name: 'home' }, redirectUris: [`https://${name}.family.test/cb`], defaultScopes: ['openid', 'email'], ...spec },
});

const get = (kind: string, name: string) => kube.get(kind === 'Secret' || kind === 'ConfigMap' ? 'v1' : API, kind, NS, name);

/** What must not change about a victim: resourceVersion, data, owners, labels, annotations. */
async function snapshot(kind: 'Secret' | 'ConfigMap', name: string) {
  const o = await get(kind, name);
  expect(o, `${kind} ${name} exists`).toBeDefined();
  return { resourceVersion: o!.metadata.resourceVersion, data: o!.data, ownerReferences: o!.metadata.ownerReferences, labels: o!.metadata.labels, annotations: o!.metadata.annotations };
}

/** Position in the audit log; writes after it are what a case caused. */
const auditMark = () => readAuditEvents(cp.auditLogPath).length;
function operatorWritesSince(mark: number): string[] {
  return readAuditEvents(cp.auditLogPath).slice(mark)
    .filter((e) => e.user.username === OPERATOR_USER && !READS.has(e.verb))
    // Lease renewals and Events are not object writes.
    .filter((e) => e.objectRef?.resource !== 'leases' && e.objectRef?.resource !== 'events')
    .map((e) => `${e.verb} ${e.objectRef?.resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''} ${e.objectRef?.name}`);
}
/** Only the attacker itself (finalizer patch, status) may have been written. */
function expectOnlyOwnWrites(mark: number, resource: string, name: string) {
  const foreign = operatorWritesSince(mark).filter((w) => !new RegExp(`^\\S+ ${resource}(/status)? ${name}$`).test(w));
  expect(foreign).toEqual([]);
}

const stalledWith = (type: string, reason: string) => (o: KubeObject) =>
  condition(o, 'Stalled')?.status === 'True' && condition(o, type)?.reason === reason && o.status?.observedGeneration === o.metadata.generation;

async function eventReasons(kind: string, name: string): Promise<string[]> {
  const list = await kube.list('v1', 'Event', NS);
  return list.items.filter((e) => e.involvedObject?.kind === kind && e.involvedObject?.name === name).map((e) => e.reason as string);
}
const waitEvent = (kind: string, name: string, reason: string) =>
  waitFor(`${kind} ${name}: Event ${reason}`, async () => (await eventReasons(kind, name)).includes(reason), { timeoutMs: 30_000 });

/**
 * Deletes `attacker` and returns once it is gone and the garbage collector
 * has processed the deletion: a sentinel ConfigMap owned by the attacker is
 * collected only then, so a victim still present afterwards was not
 * collected (rather than not collected yet).
 */
async function deleteAndCollect(kind: string, name: string): Promise<void> {
  const obj = (await get(kind, name))!;
  await kube.create({
    apiVersion: 'v1', kind: 'ConfigMap',
    metadata: { name: `${name}-gc-sentinel`, namespace: NS, ownerReferences: [{ apiVersion: API, kind, name, uid: obj.metadata.uid!, blockOwnerDeletion: false }] },
  });
  await kube.delete(API, kind, NS, name);
  await waitFor(`${kind} ${name} gone`, async () => !(await get(kind, name)), { timeoutMs: 30_000 });
  await waitFor(`${kind} ${name}'s dependents collected`, async () => !(await get('ConfigMap', `${name}-gc-sentinel`)), { timeoutMs: 60_000 });
}

async function readSecret(name: string): Promise<Record<string, string>> {
  const data = (await kube.readSecret(NS, name))!;
  for (const [k, v] of Object.entries(data)) if (/password|secret|token|uri|DATABASE_URL/i.test(k) && v) secretValues.add(v);
  return data;
}

async function loginWith(secretName: string, redirectHost: string) {
  const s = await readSecret(secretName);
  return idp.login({ clientId: s['client-id']!, clientSecret: s['client-secret'], redirectUri: `https://${redirectHost}.family.test/cb`, accountId: 'alice', scope: 'openid email' });
}

async function queryWith(secretName: string, sql: string) {
  const c = new pg.Client({ connectionString: (await readSecret(secretName)).uri });
  await c.connect();
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

const schemaExists = async (schema: string) => (await admin.query('select 1 from information_schema.schemata where schema_name = $1', [schema])).rowCount === 1;

/** A new claim on the hub reaching Ready proves the hub's admin Secret is there and works. */
async function hubAdminWorks(probe: string) {
  await apply(claim(probe, { deletionPolicy: 'Delete' }));
  await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: probe }, 'Ready', isReady);
  await kube.delete(API, 'DatabaseClaim', NS, probe);
  await waitFor(`${probe} gone`, async () => !(await get('DatabaseClaim', probe)), { timeoutMs: 30_000 });
}

beforeAll(async () => {
  [cp, db, idp] = await Promise.all([startControlPlane(), startPostgres(), startDevIdp({ allowedDomain: 'family.test' })]);
  kube = new KubeClient(cp.kubeConfig);
  admin = new pg.Pool({ connectionString: db.url, max: 2 });
  admin.on('error', () => {});
  secretValues.add(db.password);
  secretValues.add(idp.initialAccessToken);
  await installCrds(cp.kubeConfig);
  await installRbac(cp.kubeConfig);
  await namespace(kube, NS);
  await secret(kube, NS, 'pg-admin', { username: db.user, password: db.password });
  await secret(kube, NS, 'idp-token', { token: idp.initialAccessToken });
  await apply(hub('home'));
  op = await startOperator({
    kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
    name: 'operator-hostile-secrets',
    // A heap snapshot on SIGUSR2 shows what the operator keeps in memory.
    nodeArgs: ['--heapsnapshot-signal=SIGUSR2'],
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
  await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'home' }, 'Ready', isReady, 90_000);
  // The victims: an OIDCClient with working credentials, a claim with data.
  await apply(client('notes'));
  await apply(claim('ledger', { schemaName: 'ledger' }));
  await waitForObject(kube, { kind: 'OIDCClient', namespace: NS, name: 'notes' }, 'Ready', isReady);
  await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'ledger' }, 'Ready', isReady);
  await queryWith('ledger-db', "create table ledger.entries (id int primary key, what text); insert into ledger.entries values (1, 'pocket money')");
});

afterAll(async () => {
  await admin?.end().catch(() => {});
  await op?.stop();
  await Promise.allSettled([cp?.stop(), db?.stop(), idp?.stop()]);
});

describe('the two takeovers of issue 10', () => {
  it('OIDCClient with secretName = the hub\'s PostgreSQL admin Secret: SecretConflict, nothing registered or written; deleting it leaves the Secret and the hub working', async () => {
    const before = await snapshot('Secret', 'pg-admin');
    const mark = auditMark();
    await apply(client('grabber', { secretName: 'pg-admin' }));
    const o = await waitForObject(kube, { kind: 'OIDCClient', namespace: NS, name: 'grabber' }, 'SecretConflict', stalledWith('ClientReady', 'SecretConflict'));
    expect(condition(o, 'ClientReady')?.message).toContain('Secret family/pg-admin already exists and is not managed by this object; nothing was written');
    expect(condition(o, 'Ready')).toMatchObject({ status: 'False', reason: 'SecretConflict' });
    expect(o.status.clientId).toBeUndefined();
    await waitEvent('OIDCClient', 'grabber', 'SecretConflict');
    expectOnlyOwnWrites(mark, 'oidcclients', 'grabber');
    expect(await get('Secret', 'pg-admin-registration')).toBeUndefined();
    expect(await snapshot('Secret', 'pg-admin')).toEqual(before);

    await deleteAndCollect('OIDCClient', 'grabber');
    expect(await snapshot('Secret', 'pg-admin')).toEqual(before);
    await hubAdminWorks('probe-after-grabber');
  });

  it('DatabaseClaim with secretName = an OIDCClient\'s Secret: SecretConflict naming the owner, no schema; the client keeps working and survives the claim\'s deletion', async () => {
    const before = await snapshot('Secret', 'notes-oidc');
    const mark = auditMark();
    await apply(claim('squatter', { secretName: 'notes-oidc' }));
    const o = await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'squatter' }, 'SecretConflict', stalledWith('CredentialsReady', 'SecretConflict'));
    expect(condition(o, 'CredentialsReady')?.message).toContain('Secret family/notes-oidc already exists and is controlled by OIDCClient notes; nothing was written');
    expect(o.status.schema).toBeUndefined();
    await waitEvent('DatabaseClaim', 'squatter', 'SecretConflict');
    expectOnlyOwnWrites(mark, 'databaseclaims', 'squatter');
    expect(await schemaExists('fh_family_squatter')).toBe(false);
    expect(await snapshot('Secret', 'notes-oidc')).toEqual(before);

    await deleteAndCollect('DatabaseClaim', 'squatter');
    expect(await snapshot('Secret', 'notes-oidc')).toEqual(before);
    const notes = await waitForObject(kube, { kind: 'OIDCClient', namespace: NS, name: 'notes' }, 'still Ready', isReady);
    expect(condition(notes, 'ClientReady')?.message).toContain('credentials in Secret notes-oidc');
    expect((await loginWith('notes-oidc', 'notes')).claims?.email).toBe('alice@family.test');
  });
});

describe('one object naming another\'s Secret', () => {
  it('DatabaseClaim with another claim\'s Secret: refused; the victim\'s credentials still read its data after the attacker is deleted', async () => {
    const before = await snapshot('Secret', 'ledger-db');
    const mark = auditMark();
    await apply(claim('copycat', { secretName: 'ledger-db' }));
    const o = await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'copycat' }, 'SecretConflict', stalledWith('CredentialsReady', 'SecretConflict'));
    expect(condition(o, 'CredentialsReady')?.message).toContain('controlled by DatabaseClaim ledger');
    expectOnlyOwnWrites(mark, 'databaseclaims', 'copycat');
    await deleteAndCollect('DatabaseClaim', 'copycat');
    expect(await snapshot('Secret', 'ledger-db')).toEqual(before);
    expect(await queryWith('ledger-db', 'select what from ledger.entries')).toEqual([{ what: 'pocket money' }]);
  });

  it('OIDCClient with another OIDCClient\'s Secret: refused before any IdP call; the victim logs in afterwards', async () => {
    const before = await snapshot('Secret', 'notes-oidc');
    const mark = auditMark();
    await apply(client('mimic', { secretName: 'notes-oidc' }));
    const o = await waitForObject(kube, { kind: 'OIDCClient', namespace: NS, name: 'mimic' }, 'SecretConflict', stalledWith('ClientReady', 'SecretConflict'));
    expect(condition(o, 'ClientReady')?.message).toContain('controlled by OIDCClient notes');
    expect(o.status.clientId).toBeUndefined();
    expectOnlyOwnWrites(mark, 'oidcclients', 'mimic');
    await deleteAndCollect('OIDCClient', 'mimic');
    expect(await snapshot('Secret', 'notes-oidc')).toEqual(before);
    expect((await loginWith('notes-oidc', 'notes')).claims?.email).toBe('alice@family.test');
  });

  it('OIDCClient whose Secret would be another client\'s registration Secret: refused; the registration still manages the victim\'s client', async () => {
    const before = await snapshot('Secret', 'notes-oidc-registration');
    const mark = auditMark();
    await apply(client('regthief', { secretName: 'notes-oidc-registration' }));
    const o = await waitForObject(kube, { kind: 'OIDCClient', namespace: NS, name: 'regthief' }, 'SecretConflict', stalledWith('ClientReady', 'SecretConflict'));
    expect(condition(o, 'ClientReady')?.message).toContain('Secret family/notes-oidc-registration already exists and is controlled by OIDCClient notes');
    expectOnlyOwnWrites(mark, 'oidcclients', 'regthief');
    await deleteAndCollect('OIDCClient', 'regthief');
    expect(await snapshot('Secret', 'notes-oidc-registration')).toEqual(before);
    const reg = await readSecret('notes-oidc-registration');
    const seen = await new DcrAdapter({ issuerUrl: idp.issuer }).getClient({ clientId: reg['client-id']!, registrationClientUri: reg['registration-client-uri'], registrationAccessToken: reg['registration-access-token'] });
    expect(seen?.spec.redirectUris).toEqual(['https://notes.family.test/cb']);
  });

  it('a hand-made registration Secret carrying a leaked registration token is never read: refused, the victim\'s client unchanged and not deleted with the attacker', async () => {
    const reg = await readSecret('notes-oidc-registration');
    await secret(kube, NS, 'forger-oidc-registration', reg);
    const mark = auditMark();
    await apply(client('forger', { redirectUris: ['https://evil.family.test/cb'] }));
    const o = await waitForObject(kube, { kind: 'OIDCClient', namespace: NS, name: 'forger' }, 'SecretConflict', stalledWith('ClientReady', 'SecretConflict'));
    expect(condition(o, 'ClientReady')?.message).toContain('Secret family/forger-oidc-registration already exists and is not managed by this object');
    expectOnlyOwnWrites(mark, 'oidcclients', 'forger');
    await deleteAndCollect('OIDCClient', 'forger');
    const dcr = new DcrAdapter({ issuerUrl: idp.issuer });
    const seen = await dcr.getClient({ clientId: reg['client-id']!, registrationClientUri: reg['registration-client-uri'], registrationAccessToken: reg['registration-access-token'] });
    expect(seen?.spec.redirectUris).toEqual(['https://notes.family.test/cb']);
    expect((await loginWith('notes-oidc', 'notes')).claims?.email).toBe('alice@family.test');
    await kube.delete('v1', 'Secret', NS, 'forger-oidc-registration');
  });

  it.each([
    ['DatabaseClaim', 'pg-admin', 'CredentialsReady'],
    ['DatabaseClaim', 'idp-token', 'CredentialsReady'],
    ['OIDCClient', 'idp-token', 'ClientReady'],
  ] as const)('%s naming the hub\'s input Secret %s: refused, the Secret unchanged', async (kind, target, type) => {
    const before = await snapshot('Secret', target);
    const name = `${kind === 'DatabaseClaim' ? 'dbc' : 'oidc'}-takes-${target}`;
    const mark = auditMark();
    await apply(kind === 'DatabaseClaim' ? claim(name, { secretName: target }) : client(name, { secretName: target }));
    const o = await waitForObject(kube, { kind, namespace: NS, name }, 'SecretConflict', stalledWith(type, 'SecretConflict'));
    // A claim is refused by name as the hub's input; the OIDCClient by the ownership check.
    expect(condition(o, type)?.message).toContain(kind === 'DatabaseClaim' ? `Secret family/${target} is an input of FamilyHub family/home` : `Secret family/${target} already exists and is not managed by this object`);
    expectOnlyOwnWrites(mark, kind === 'DatabaseClaim' ? 'databaseclaims' : 'oidcclients', name);
    await deleteAndCollect(kind, name);
    expect(await snapshot('Secret', target)).toEqual(before);
  });

  it('DatabaseClaim naming a hub\'s input Secret that does not exist yet: refused naming the hub field, the Secret never created, so the admin\'s later Secret is nobody\'s child', async () => {
    // A hub whose admin has not created its PostgreSQL admin Secret yet.
    await apply({ ...hub('pending'), spec: { ...hub('pending').spec, postgres: { ...hub('pending').spec.postgres, adminCredentialsSecretRef: { name: 'pending-admin' } } } });
    await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'pending' }, 'seen (admin Secret missing)', (x) => x.status?.observedGeneration === x.metadata.generation);
    const mark = auditMark();
    await apply(claim('earlybird', { secretName: 'pending-admin' }));
    const o = await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'earlybird' }, 'SecretConflict', stalledWith('CredentialsReady', 'SecretConflict'));
    expect(condition(o, 'CredentialsReady')?.message).toContain(`Secret ${NS}/pending-admin is an input of FamilyHub ${NS}/pending (spec.postgres.adminCredentialsSecretRef); nothing was written`);
    expect(o.status.schema).toBeUndefined();
    // Besides its own object, only the waiting hub's status may have been written.
    expect(operatorWritesSince(mark).filter((w) => !/^\S+ (databaseclaims(\/status)? earlybird|familyhubs\/status pending)$/.test(w))).toEqual([]);
    expect(await get('Secret', 'pending-admin')).toBeUndefined();
    expect(await schemaExists('fh_family_earlybird')).toBe(false);
    // The admin now creates it: it stays unowned and survives the claim's deletion.
    await secret(kube, NS, 'pending-admin', { username: db.user, password: db.password });
    await deleteAndCollect('DatabaseClaim', 'earlybird');
    const s = (await get('Secret', 'pending-admin'))!;
    expect(s.metadata.ownerReferences ?? []).toEqual([]);
    expect(await kube.readSecret(NS, 'pending-admin')).toEqual({ username: db.user, password: db.password });
    await deleteAndCollect('FamilyHub', 'pending');
    await kube.delete('v1', 'Secret', NS, 'pending-admin');
  });

  it('a user\'s unrelated Secret named by a claim is neither adopted nor overwritten', async () => {
    await secret(kube, NS, 'diary', { text: 'dear diary, the wifi password is correct-horse' });
    const before = await snapshot('Secret', 'diary');
    await apply(claim('nosy', { secretName: 'diary' }));
    const o = await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'nosy' }, 'SecretConflict', stalledWith('CredentialsReady', 'SecretConflict'));
    expect(condition(o, 'CredentialsReady')?.message).toContain('not managed by this object');
    await deleteAndCollect('DatabaseClaim', 'nosy');
    expect(await snapshot('Secret', 'diary')).toEqual(before);
  });
});

describe('one object naming another\'s schema or ConfigMap', () => {
  it('DatabaseClaim with schemaName = another claim\'s explicit schema, deletionPolicy Delete: SchemaConflict, no Secret; its deletion drops nothing', async () => {
    const mark = auditMark();
    await apply(claim('thief', { schemaName: 'ledger', deletionPolicy: 'Delete' }));
    const o = await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'thief' }, 'SchemaConflict', stalledWith('SchemaReady', 'SchemaConflict'));
    expect(condition(o, 'SchemaReady')?.message).toMatch(/ledger/);
    expect(await get('Secret', 'thief-db')).toBeUndefined();
    expectOnlyOwnWrites(mark, 'databaseclaims', 'thief');
    await deleteAndCollect('DatabaseClaim', 'thief');
    expect(await eventReasons('DatabaseClaim', 'thief')).toContain('CleanupSkipped');
    expect(await schemaExists('ledger')).toBe(true);
    expect(await queryWith('ledger-db', 'select what from ledger.entries')).toEqual([{ what: 'pocket money' }]);
  });

  it('FamilyHub whose platform ConfigMap name is a user\'s ConfigMap: ChildConflict, the ConfigMap unchanged and surviving the hub\'s deletion', async () => {
    await kube.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'rogue-platform', namespace: NS }, data: { mine: 'yes' } }, user);
    const before = await snapshot('ConfigMap', 'rogue-platform');
    const mark = auditMark();
    await apply(hub('rogue'));
    const o = await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'rogue' }, 'ChildConflict', (x) => condition(x, 'Stalled')?.reason === 'ChildConflict');
    expect(condition(o, 'Ready')?.message).toContain('ConfigMap family/rogue-platform already exists and is not managed by this object');
    expectOnlyOwnWrites(mark, 'familyhubs', 'rogue');
    await deleteAndCollect('FamilyHub', 'rogue');
    expect(await snapshot('ConfigMap', 'rogue-platform')).toEqual(before);
  });
});

describe('an owner notices its own output changed', () => {
  it('a hand-edited OIDCClient Secret is restored with a Drifted Event, and still logs in', async () => {
    const original = await readSecret('notes-oidc');
    await kube.mergePatch('v1', 'Secret', NS, 'notes-oidc', { data: { 'client-secret': Buffer.from('attacker-chosen').toString('base64') } });
    await waitFor('notes-oidc restored', async () => (await kube.readSecret(NS, 'notes-oidc'))?.['client-secret'] === original['client-secret'], { timeoutMs: 30_000 });
    await waitEvent('OIDCClient', 'notes', 'Drifted');
    expect((await loginWith('notes-oidc', 'notes')).claims?.email).toBe('alice@family.test');
  });

  it('a hand-edited DatabaseClaim Secret is replaced by working credentials with a Drifted Event (the old password cannot be recovered)', async () => {
    const original = await readSecret('ledger-db');
    await kube.mergePatch('v1', 'Secret', NS, 'ledger-db', { data: { password: Buffer.from('attacker-chosen').toString('base64') } });
    let now: Record<string, string> = {};
    await waitFor('ledger-db rewritten', async () => {
      now = (await kube.readSecret(NS, 'ledger-db'))!;
      return now.password !== 'attacker-chosen' && now.uri !== original.uri;
    }, { timeoutMs: 30_000 });
    expect(now.password).not.toBe(original.password);
    expect(now.uri).toContain(encodeURIComponent(now.password!));
    await waitEvent('DatabaseClaim', 'ledger', 'Drifted');
    expect(await queryWith('ledger-db', 'select what from ledger.entries')).toEqual([{ what: 'pocket money' }]);
  });

  it('a Secret whose controller reference was moved to another object is not taken back: SecretConflict on the owner, recovered when the reference returns', async () => {
    const mine = (await get('Secret', 'ledger-db'))!.metadata.ownerReferences!;
    const notes = (await get('OIDCClient', 'notes'))!;
    // Someone with Secret write access hands it to another (existing: the
    // garbage collector would delete a Secret whose owner does not exist) object.
    const elsewhere = [{ apiVersion: API, kind: 'OIDCClient', name: 'notes', uid: notes.metadata.uid!, controller: true, blockOwnerDeletion: true }];
    await kube.mergePatch('v1', 'Secret', NS, 'ledger-db', { metadata: { ownerReferences: elsewhere } });
    const o = await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'ledger' }, 'SecretConflict', stalledWith('CredentialsReady', 'SecretConflict'));
    expect(condition(o, 'CredentialsReady')?.message).toContain('controlled by OIDCClient notes');
    expect((await get('Secret', 'ledger-db'))!.metadata.ownerReferences).toEqual(elsewhere);
    await kube.mergePatch('v1', 'Secret', NS, 'ledger-db', { metadata: { ownerReferences: mine } });
    await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'ledger' }, 'Ready again', (x) => isReady(x) && condition(x, 'Stalled') === undefined);
    expect(await queryWith('ledger-db', 'select what from ledger.entries')).toEqual([{ what: 'pocket money' }]);
  });
});

describe('secret values stay where they belong', () => {
  it('no secret value in the operator\'s logs, in any status or in any Event', async () => {
    await readSecret('notes-oidc');
    await readSecret('notes-oidc-registration');
    await readSecret('ledger-db');
    expect(secretValues.size).toBeGreaterThanOrEqual(6);
    const logs = op.logs();
    expect(logs.length).toBeGreaterThan(1000);
    const statuses: string[] = [];
    for (const kind of ['FamilyHub', 'DatabaseClaim', 'OIDCClient']) {
      for (const o of (await kube.list(API, kind, NS)).items) statuses.push(JSON.stringify(o.status ?? {}), JSON.stringify(o.spec ?? {}));
    }
    const events = JSON.stringify((await kube.list('v1', 'Event', NS)).items.map((e) => e.message));
    for (const v of secretValues) {
      expect(logs).not.toContain(v);
      for (const s of statuses) expect(s).not.toContain(v);
      expect(events).not.toContain(v);
    }
  });

  it('the Secret cache holds digests: the value of a Secret the operator watched but never read is not in its heap, decoded', async () => {
    // 'diary' above was only named, never read: its value reached the
    // operator through the Secret watch alone.
    await secret(kube, NS, 'unread', { pin: 'unread-value-7f3a91c2' });
    await apply(claim('names-unread', { secretName: 'unread' }));
    await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'names-unread' }, 'SecretConflict (so the cache has the Secret)', stalledWith('CredentialsReady', 'SecretConflict'));
    const dir = path.dirname(op.proc.logFile);
    const before = new Set(readdirSync(dir));
    process.kill(op.proc.child.pid!, 'SIGUSR2');
    let file = '';
    let size = -1;
    await waitFor('heap snapshot written', async () => {
      file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f)) ?? '';
      if (!file) return false;
      // Written in one go by the signal handler: done once the size stops growing.
      const now = statSync(path.join(dir, file)).size;
      const done = now > 0 && now === size;
      size = now;
      return done;
    }, { timeoutMs: 90_000, intervalMs: 1000 });
    const heap = readFileSync(path.join(dir, file), 'utf8');
    rmSync(path.join(dir, file));
    expect(heap.length).toBeGreaterThan(1_000_000);
    // Sanity: the snapshot does hold strings the operator keeps (its own Secret names).
    expect(heap).toContain('names-unread');
    // The decoded value would be there if the cache held values. The base64
    // text of the watch event that brought it is not checked: it was still
    // found in a snapshot after the informer's watch loop stopped holding raw
    // chunks and lines (not traced yet; a known limit in the README).
    for (const v of ['unread-value-7f3a91c2', 'dear diary, the wifi password is correct-horse']) expect(heap.includes(v), v).toBe(false);
  });
});
