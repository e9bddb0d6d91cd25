// The Service controller on a real control plane (no node: nothing runs the
// pods, and kube-controller-manager runs only GC and namespace controllers,
// so no Deployment ever becomes available here — that is service-pods.test.ts).
// Real DatabaseClaim (PostgreSQL + OpenBao) and OIDCClient (dev IdP)
// controllers publish the Secrets; the operator runs as a process under
// config/rbac. Writes are counted from the apiserver's audit log.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { readAuditEvents, startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { startOpenBao, type LocalOpenBao } from '../../hack/local/openbao.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { waitFor } from '../../hack/local/process.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { API, condition, namespace, secret, waitForObject } from '../support/kube.js';
import { stopPostgres } from './databaseclaim-harness.js';
import { startOperator, type RunningOperator } from '../support/operator.js';

const NS = 'apps';
const OPERATOR_USER = 'system:serviceaccount:familyhub-system:familyhub-operator';

let cp: ControlPlane;
let kube: KubeClient;
let db: LocalPostgres;
let bao: LocalOpenBao;
let idp: DevIdp;
let op: RunningOperator;

interface AuditEvent { verb: string; user: { username: string }; requestURI?: string; stageTimestamp?: string; objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string }; responseStatus?: { code?: number } }
const audit = () => readAuditEvents(cp.auditLogPath) as AuditEvent[];
/** The operator's writes (dry runs excluded unless asked), as "resource[/sub]:name". */
function operatorWrites(from = 0, opts: { dryRun?: boolean } = {}): string[] {
  return audit().slice(from)
    .filter((e) => e.user.username === OPERATOR_USER && !['get', 'list', 'watch'].includes(e.verb) && e.objectRef?.resource !== 'leases')
    .filter((e) => (e.responseStatus?.code ?? 200) < 400)
    .filter((e) => !!opts.dryRun === /[?&]dryRun=All/.test(e.requestURI ?? ''))
    .map((e) => `${e.verb} ${e.objectRef?.resource}${e.objectRef?.subresource ? '/' + e.objectRef.subresource : ''}:${e.objectRef?.name}`);
}

const service = (name: string, spec: Record<string, unknown> = {}, annotations?: Record<string, string>): KubeObject => ({
  apiVersion: API, kind: 'Service', metadata: { name, namespace: NS, ...(annotations ? { annotations } : {}) },
  spec: { familyHubRef: { name: 'home' }, image: 'registry.family.test/recipes:1.0.0', port: 8080, host: `${name}.home.example.org`, ...spec },
});
const apply = (o: KubeObject) => kube.apply(o, { fieldManager: 'e2e-test' });
const get = (apiVersion: string, kind: string, name: string) => kube.get(apiVersion, kind, NS, name);
const waitSvc = (name: string, what: string, pred: (o: KubeObject) => boolean, ms = 60_000) => waitForObject(kube, { kind: 'Service', namespace: NS, name }, what, pred, ms);
const current = (o: KubeObject) => o.status?.observedGeneration === o.metadata.generation;
const full = { needs: { database: { enabled: true }, oidc: { enabled: true }, route: { rateLimit: { requests: 20, unit: 'Second' } } } };

beforeAll(async () => {
  [cp, db, bao, idp] = await Promise.all([startControlPlane(), startPostgres(), startOpenBao(), startDevIdp({ allowedDomain: 'example.org' })]);
  kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installRbac(cp.kubeConfig);
  await namespace(kube, NS);
  await secret(kube, NS, 'pg-admin', { username: db.user, password: db.password });
  await secret(kube, NS, 'vault-token', { token: bao.rootToken });
  await secret(kube, NS, 'idp-token', { token: idp.initialAccessToken });
  await apply({
    apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: NS },
    spec: {
      domain: 'home.example.org', allowedEmailDomains: ['example.org'],
      postgres: { host: '127.0.0.1', port: db.port, database: 'postgres', sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' }, allowedExtensions: ['pgcrypto'] },
      vault: { address: bao.address, authMethod: 'token', tokenSecretRef: { name: 'vault-token' } },
      identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
      runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
    },
  });
  op = await startOperator({
    kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
    name: 'operator-service',
    env: {
      FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_CONTROLLERS: 'service,databaseclaim,oidcclient',
      FAMILYHUB_RESYNC_MS: '1500', FAMILYHUB_DEPENDENCY_RETRY_MS: '2000', FAMILYHUB_IDP_RETRY_MS: '2000',
    },
  });
}, 240_000);

afterAll(async () => {
  await op?.stop();
  await Promise.allSettled([cp?.stop(), db?.stop(), bao?.stop(), idp?.stop()]);
});

describe('Service controller (control plane)', () => {
  it('creates the claim and client first, the Deployment and Service once both Secrets exist, and holds the Route back', async () => {
    const from = audit().length;
    await apply(service('recipes', { ...full, replicas: 2, env: [{ name: 'LOG_LEVEL', value: 'info' }] }));
    const s = await waitSvc('recipes', 'Deployment created, waiting for a replica', (o) => current(o) && condition(o, 'RouteReady')?.reason === 'WaitingForAvailableReplica' && o.status?.deploymentName === 'recipes'
      && condition(o, 'DatabaseReady')?.status === 'True' && condition(o, 'IdentityReady')?.status === 'True');
    expect(condition(s, 'DatabaseReady')?.status).toBe('True');
    expect(condition(s, 'IdentityReady')?.status).toBe('True');
    expect(condition(s, 'Available')).toMatchObject({ status: 'False', reason: 'Progressing' });
    expect(condition(s, 'Ready')?.status).toBe('False');
    expect(s.status).toMatchObject({ url: 'https://recipes.home.example.org/', databaseClaimName: 'recipes', oidcClientName: 'recipes', serviceName: 'recipes', readyReplicas: 0 });
    expect(s.status.routeName).toBeUndefined();

    // Order, from the apiserver's own record: both Secrets before the Deployment.
    const firstAt = (resource: string, name: string) => audit().slice(from).find((e) => e.user.username === OPERATOR_USER && e.verb === 'patch' && e.objectRef?.resource === resource && e.objectRef?.name === name && !e.objectRef?.subresource && (e.responseStatus?.code ?? 0) < 300)?.stageTimestamp;
    const [dbSecret, oidcSecret, dep] = [firstAt('secrets', 'recipes-db'), firstAt('secrets', 'recipes-oidc'), firstAt('deployments', 'recipes')];
    expect(dbSecret && oidcSecret && dep).toBeTruthy();
    expect(Date.parse(dep!)).toBeGreaterThanOrEqual(Date.parse(dbSecret!));
    expect(Date.parse(dep!)).toBeGreaterThanOrEqual(Date.parse(oidcSecret!));
    expect(await get(API, 'Route', 'recipes')).toBeUndefined();

    const d = (await get('apps/v1', 'Deployment', 'recipes'))!;
    expect(d.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Service', name: 'recipes', uid: s.metadata.uid, controller: true })]);
    expect(JSON.stringify(d.metadata.labels)).not.toContain('argocd');
    expect(d.spec.replicas).toBe(2);
    const pod = d.spec.template.spec;
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.containers[0].securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
    expect(pod.volumes.map((v: { name: string }) => v.name)).toEqual(['tmp', 'database-credentials', 'oidc-credentials']);
    const env = Object.fromEntries(pod.containers[0].env.map((e: { name: string; value: string }) => [e.name, e.value]));
    expect(env).toMatchObject({ LOG_LEVEL: 'info', DATABASE_URL_FILE: '/var/run/familyhub/database/uri', OIDC_CLIENT_SECRET_FILE: '/var/run/familyhub/oidc/client-secret', OIDC_ISSUER: idp.issuer });
    // No credential value anywhere in the pod template.
    const dbCreds = (await kube.readSecret(NS, 'recipes-db'))!;
    const oidcCreds = (await kube.readSecret(NS, 'recipes-oidc'))!;
    for (const v of [dbCreds.password!, oidcCreds['client-secret']!]) expect(JSON.stringify(d)).not.toContain(v);
    expect(d.spec.template.metadata.annotations['familyhub.dev/credentials-hash']).toBe(s.status.credentialsHash);

    const oidc = (await get(API, 'OIDCClient', 'recipes'))!;
    expect(oidc.spec.redirectUris).toEqual(['https://recipes.home.example.org/oauth2/callback']);
    const core = (await get('v1', 'Service', 'recipes'))!;
    expect(core.spec.ports[0]).toMatchObject({ port: 8080, targetPort: 'http' });
    expect(core.metadata.ownerReferences?.[0]?.uid).toBe(s.metadata.uid);
  });

  it('makes zero writes for an unchanged Service over several resyncs', async () => {
    // The client's one-time Created → InSync status change is the OIDCClient controller's, not ours.
    await waitForObject(kube, { kind: 'OIDCClient', namespace: NS, name: 'recipes' }, 'InSync', (o) => condition(o, 'ClientReady')?.reason === 'InSync', 30_000);
    const reconciles = async () => ((await op.metric('familyhub_reconcile_total{controller="service",result="requeue"}')) ?? 0) + ((await op.metric('familyhub_reconcile_total{controller="service",result="success"}')) ?? 0);
    const ours = (from: number) => operatorWrites(from).filter((w) => /^\w+ (deployments|services|services\/status|databaseclaims|oidcclients|routes):/.test(w));
    // Settled: a whole Service reconcile went by without one of its writes (the last status write has landed).
    let mark = { at: audit().length, reconciles: await reconciles() };
    await waitFor('a Service reconcile without a write', async () => {
      if (ours(mark.at).length) mark = { at: audit().length, reconciles: await reconciles() };
      return (await reconciles()) > mark.reconciles && ours(mark.at).length === 0;
    }, { timeoutMs: 30_000 });
    const before = audit().length;
    const start = await reconciles();
    // Three more reconciles (resyncs and rechecks), counted rather than timed.
    await waitFor('three more Service reconciles', async () => (await reconciles()) >= start + 3, { timeoutMs: 30_000 });
    // What the Service controller writes (its children and its status). The
    // claim may still adjust its own Secret's lease bookkeeping (lease_expires_at
    // from Vault's lookup): that is the DatabaseClaim controller's, and must
    // not roll the pods.
    expect(ours(before)).toEqual([]);
  });

  it('a credential rotation rolls the pods through the pod-template hash', async () => {
    const before = (await get('apps/v1', 'Deployment', 'recipes'))!.spec.template.metadata.annotations['familyhub.dev/credentials-hash'];
    const oldPassword = (await kube.readSecret(NS, 'recipes-db'))!.password;
    await apply(service('recipes', { ...full, replicas: 2, env: [{ name: 'LOG_LEVEL', value: 'info' }], needs: { ...full.needs, database: { enabled: true, rotateGeneration: 1 } } }));
    await waitFor('claim rotated', async () => (await kube.readSecret(NS, 'recipes-db'))?.password !== oldPassword, { timeoutMs: 30_000 });
    await waitFor('pod template rolled', async () => {
      const h = (await get('apps/v1', 'Deployment', 'recipes'))!.spec.template.metadata.annotations['familyhub.dev/credentials-hash'];
      return h !== before;
    }, { timeoutMs: 30_000 });
    const s = await waitSvc('recipes', 'status hash follows', (o) => current(o) && o.status.credentialsHash !== before);
    expect((await get('apps/v1', 'Deployment', 'recipes'))!.spec.template.metadata.annotations['familyhub.dev/credentials-hash']).toBe(s.status.credentialsHash);
  });

  it('restores a hand-edited Deployment and recreates a deleted child', async () => {
    await kube.request('PATCH', `/apis/apps/v1/namespaces/${NS}/deployments/recipes`, {
      contentType: 'application/merge-patch+json', query: { fieldManager: 'kubectl-edit' },
      body: { spec: { template: { spec: { containers: [{ name: 'app', image: 'evil.example/miner:1' }] } } } },
    });
    await waitFor('image restored', async () => (await get('apps/v1', 'Deployment', 'recipes'))?.spec.template.spec.containers[0].image === 'registry.family.test/recipes:1.0.0', { timeoutMs: 30_000 });
    await waitFor('Drifted event', async () => (await kube.list('v1', 'Event', NS)).items.some((e) => e.involvedObject?.kind === 'Service' && e.reason === 'Drifted' && /Deployment apps\/recipes/.test(e.message)), { timeoutMs: 10_000 });

    const oldUid = (await get('v1', 'Service', 'recipes'))!.metadata.uid;
    await kube.delete('v1', 'Service', NS, 'recipes');
    await waitFor('core Service recreated', async () => { const c = await get('v1', 'Service', 'recipes'); return !!c && c.metadata.uid !== oldUid; }, { timeoutMs: 30_000 });
    const depUid = (await get('apps/v1', 'Deployment', 'recipes'))!.metadata.uid;
    await kube.delete('apps/v1', 'Deployment', NS, 'recipes');
    await waitFor('Deployment recreated', async () => { const c = await get('apps/v1', 'Deployment', 'recipes'); return !!c && c.metadata.uid !== depUid; }, { timeoutMs: 30_000 });
  });

  it('refuses a child name that belongs to someone else, writing nothing to it', async () => {
    await apply({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'taken', namespace: NS },
      spec: { replicas: 0, selector: { matchLabels: { app: 'taken' } }, template: { metadata: { labels: { app: 'taken' } }, spec: { containers: [{ name: 'x', image: 'someone/else:1' }] } } },
    });
    await apply(service('taken'));
    const s = await waitSvc('taken', 'conflict', (o) => current(o) && condition(o, 'Available')?.reason === 'ChildConflict');
    expect(condition(s, 'Available')?.message).toContain('Deployment apps/taken already exists');
    expect(condition(s, 'Stalled')?.status).toBe('True');
    const d = (await get('apps/v1', 'Deployment', 'taken'))!;
    expect(d.spec.template.spec.containers[0].image).toBe('someone/else:1');
    expect(d.metadata.ownerReferences).toBeUndefined();
  });

  it('plan mode: a summary of dry runs in status.plan, nothing written; removing the annotation applies', async () => {
    const from = audit().length;
    await apply(service('planned', { needs: { database: { enabled: true }, route: {} } }, { 'familyhub.dev/plan': 'true' }));
    const s = await waitSvc('planned', 'plan', (o) => current(o) && !!o.status?.plan);
    expect(condition(s, 'Applied')).toMatchObject({ status: 'False', reason: 'PlanMode' });
    const actions = Object.fromEntries(s.status.plan.changes.map((c: { kind: string; action: string }) => [c.kind, c.action]));
    expect(actions).toEqual({ DatabaseClaim: 'Create', Deployment: 'Waiting', Service: 'Waiting', Route: 'Waiting' });
    expect(s.status.plan.summary).toBe('1 to create, 3 waiting');

    // An existing Service in plan mode: the diff names the field, the Deployment keeps its image.
    await apply(service('recipes', { ...full, image: 'registry.family.test/recipes:2.0.0', replicas: 2, env: [{ name: 'LOG_LEVEL', value: 'info' }], needs: { ...full.needs, database: { enabled: true, rotateGeneration: 1 } } }, { 'familyhub.dev/plan': 'true' }));
    const r = await waitSvc('recipes', 'plan of an update', (o) => current(o) && !!o.status?.plan);
    const dep = r.status.plan.changes.find((c: { kind: string }) => c.kind === 'Deployment');
    expect(dep).toMatchObject({ action: 'Update', fields: ['spec.template.spec.containers[0].image'] });
    expect(r.status.plan.changes.find((c: { kind: string }) => c.kind === 'DatabaseClaim')?.action).toBe('Unchanged');
    await new Promise((res) => setTimeout(res, 3000)); // several resyncs in plan mode
    expect((await get('apps/v1', 'Deployment', 'recipes'))!.spec.template.spec.containers[0].image).toBe('registry.family.test/recipes:1.0.0');

    // The apiserver's record: dry runs, but not one real write to a child of either Service.
    const childWrites = operatorWrites(from).filter((w) => /^\w+ (deployments|services|databaseclaims|oidcclients|routes):(planned|recipes)$/.test(w));
    expect(childWrites).toEqual([]);
    expect(operatorWrites(from, { dryRun: true }).length).toBeGreaterThan(0);
    for (const k of ['DatabaseClaim', 'Route']) expect(await get(API, k, 'planned')).toBeUndefined();
    expect(await get('apps/v1', 'Deployment', 'planned')).toBeUndefined();

    await apply(service('recipes', { ...full, image: 'registry.family.test/recipes:2.0.0', replicas: 2, env: [{ name: 'LOG_LEVEL', value: 'info' }], needs: { ...full.needs, database: { enabled: true, rotateGeneration: 1 } } }, {}));
    await kube.mergePatch(API, 'Service', NS, 'recipes', { metadata: { annotations: { 'familyhub.dev/plan': null } } });
    await waitFor('applied after plan', async () => (await get('apps/v1', 'Deployment', 'recipes'))?.spec.template.spec.containers[0].image === 'registry.family.test/recipes:2.0.0', { timeoutMs: 30_000 });
    const applied = await waitSvc('recipes', 'plan gone', (o) => current(o) && !o.status?.plan);
    expect(condition(applied, 'Applied')).toBeUndefined();
  });

  it('PostgreSQL down: DatabaseReady=False with the claim\'s reason; recovers on its own', async () => {
    await stopPostgres(db);
    const down = await waitSvc('recipes', 'database down', (o) => current(o) && condition(o, 'DatabaseReady')?.status === 'False');
    expect(condition(down, 'DatabaseReady')?.reason).toBe('PostgresUnavailable');
    expect(condition(down, 'DatabaseReady')?.message).toMatch(/^DatabaseClaim recipes: .*PostgreSQL 127\.0\.0\.1:\d+\/postgres is not reachable/);
    expect(condition(down, 'Degraded')?.status).toBe('True');
    await db.restart();
    await waitSvc('recipes', 'database back', (o) => current(o) && condition(o, 'DatabaseReady')?.status === 'True');
  });

  it('a need removed deletes its child; deleting the Service leaves the rest to the GC, the claim keeps its schema (Retain)', async () => {
    await apply(service('notes', { needs: { database: { enabled: true }, oidc: { enabled: true } } }));
    const s = await waitSvc('notes', 'Deployment created', (o) => current(o) && o.status?.deploymentName === 'notes', 90_000);
    await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'notes' }, 'schema', (o) => !!o.status?.schema);
    const schema = (await get(API, 'DatabaseClaim', 'notes'))!.status.schema as string;
    expect(condition(s, 'IdentityReady')?.status).toBe('True');

    await apply(service('notes', { needs: { database: { enabled: true } } }));
    await waitFor('OIDCClient removed', async () => !(await get(API, 'OIDCClient', 'notes')), { timeoutMs: 30_000 });
    const without = await waitSvc('notes', 'no identity condition', (o) => current(o) && !condition(o, 'IdentityReady'));
    expect(without.status.oidcClientName).toBeUndefined();
    expect((await get('apps/v1', 'Deployment', 'notes'))!.spec.template.spec.volumes.map((v: { name: string }) => v.name)).toEqual(['tmp', 'database-credentials']);

    await kube.delete(API, 'Service', NS, 'notes');
    await waitFor('children garbage-collected', async () =>
      !(await get('apps/v1', 'Deployment', 'notes')) && !(await get('v1', 'Service', 'notes')) && !(await get(API, 'DatabaseClaim', 'notes')), { timeoutMs: 60_000 });
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      const r = await admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      expect(r.rowCount).toBe(1);
    } finally {
      await admin.end();
    }
  });

  it('never logs secret values', async () => {
    const logs = op.logs();
    expect(logs.length).toBeGreaterThan(0);
    const creds = (await kube.readSecret(NS, 'recipes-db'))!;
    const client = (await kube.readSecret(NS, 'recipes-oidc'))!;
    for (const v of [db.password, bao.rootToken, idp.initialAccessToken, creds.password!, client['client-secret']!]) expect(logs).not.toContain(v);
  });
});
