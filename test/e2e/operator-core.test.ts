// The controller core against a real kube-apiserver + etcd +
// kube-controller-manager, with the operator running as a separate process
// under exactly the RBAC in config/rbac (not cluster-admin).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditEvents, startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { API, condition, isReady, namespace, secret, waitForObject } from '../support/kube.js';
import { load } from '../support/kubeconfig.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';

const NS = 'family';
const OPERATOR_USER = 'system:serviceaccount:familyhub-system:familyhub-operator';

// Real dependencies: the FamilyHub's live checks connect to them.
let pg: LocalPostgres;
let idp: DevIdp;

function hub(name: string, extra: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: API,
    kind: 'FamilyHub',
    metadata: { name, namespace: NS },
    spec: {
      domain: 'home.example.org',
      allowedEmailDomains: ['example.org'],
      postgres: { host: pg.host, port: pg.port, database: pg.database, sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
      identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
      runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
      ...extra,
    },
  };
}

/** Write requests (not reads, not leader-election renewals) the operator made, from the apiserver's audit log. */
function operatorWrites(cp: ControlPlane): Array<{ verb: string; resource: string }> {
  return readAuditEvents(cp.auditLogPath)
    .filter((e) => e.user.username === OPERATOR_USER && !['get', 'list', 'watch'].includes(e.verb))
    .filter((e) => e.objectRef?.resource !== 'leases')
    .map((e) => ({ verb: e.verb, resource: `${e.objectRef?.resource}${e.objectRef?.subresource ? '/' + e.objectRef.subresource : ''}:${e.objectRef?.name}` }));
}

describe('operator core on a real control plane', () => {
  let cp: ControlPlane;
  let kube: KubeClient;
  let op: RunningOperator;
  let saKubeconfig: string;

  beforeAll(async () => {
    [pg, idp] = await Promise.all([startPostgres(), startDevIdp({ allowedDomain: 'example.org' })]);
    cp = await startControlPlane();
    kube = new KubeClient(cp.kubeConfig);
    await installCrds(cp.kubeConfig);
    await installRbac(cp.kubeConfig);
    await namespace(kube, NS);
    saKubeconfig = await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
    op = await startOperator({
      kubeconfigPath: saKubeconfig,
      env: { FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_RESYNC_MS: '1500', FAMILYHUB_RECHECK_MS: '1000', FAMILYHUB_CONTROLLERS: 'familyhub' },
    });
  });

  afterAll(async () => {
    await op?.stop();
    await cp?.stop();
    await idp?.stop();
    await pg?.stop();
  });

  it('runs with exactly the RBAC of config/rbac, not as cluster-admin', async () => {
    // The ServiceAccount cannot do what the ClusterRole does not grant.
    const sa = new KubeClient(load(saKubeconfig));
    await expect(sa.list('v1', 'Namespace')).rejects.toThrow(/forbidden/);
    await expect(sa.list('rbac.authorization.k8s.io/v1', 'ClusterRole')).rejects.toThrow(/forbidden/);
  });

  it('reconciles a FamilyHub to Ready with observedGeneration, and follows spec changes', async () => {
    await secret(kube, NS, 'pg-admin', { username: pg.user, password: pg.password });
    await secret(kube, NS, 'idp-token', { token: idp.initialAccessToken });
    await kube.apply(hub('home'), { fieldManager: 'e2e-test' });
    let o = await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'home' }, 'Ready', isReady);
    expect(o.metadata.generation).toBe(1);
    expect(condition(o, 'Ready')?.observedGeneration).toBe(1);
    expect(condition(o, 'Degraded')?.status).toBe('False');
    expect(condition(o, 'Reconciling')?.status).toBe('False');
    expect(condition(o, 'PostgresReady')).toMatchObject({ status: 'True', reason: 'Connected' });
    expect(condition(o, 'IdentityReady')?.status).toBe('True');
    expect(o.metadata.finalizers).toContain('familyhub.dev/in-use-protection');
    // Owned child: platform ConfigMap.
    const cm = await kube.get('v1', 'ConfigMap', NS, 'home-platform');
    expect(cm?.data?.domain).toBe('home.example.org');
    expect(cm?.metadata.ownerReferences?.[0]?.uid).toBe(o.metadata.uid);

    await kube.apply(hub('home', { domain: 'family.example.org' }), { fieldManager: 'e2e-test' });
    o = await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'home' }, 'observedGeneration 2', (x) => isReady(x) && x.metadata.generation === 2);
    expect(o.status.domain).toBe('family.example.org');
    expect(condition(o, 'Ready')?.observedGeneration).toBe(2);
    await waitForObject(kube, { apiVersion: 'v1', kind: 'ConfigMap', namespace: NS, name: 'home-platform' }, 'updated domain', (c) => c.data?.domain === 'family.example.org');
  });

  it('makes zero writes for an unchanged object across several resyncs', async () => {
    const reconciles = async () => (await op.metric('familyhub_reconcile_total{controller="familyhub",result="success"}')) ?? 0;
    // Settled: a whole reconcile went by without a write (the status write of the last change has landed).
    let settled = { writes: operatorWrites(cp).length, reconciles: await reconciles() };
    await waitFor('a reconcile without a write', async () => {
      const now = { writes: operatorWrites(cp).length, reconciles: await reconciles() };
      if (now.writes !== settled.writes) settled = now;
      return now.writes === settled.writes && now.reconciles > settled.reconciles;
    }, { timeoutMs: 30_000 });
    const reconcilesBefore = await reconciles();
    const writesBefore = operatorWrites(cp).length;
    // Resync period is 1.5 s here: four resyncs of the unchanged object, counted rather than timed.
    await waitFor('four resyncs', async () => (await reconciles()) >= reconcilesBefore + 4, { timeoutMs: 30_000 });
    const writes = operatorWrites(cp).slice(writesBefore);
    expect(writes).toEqual([]);
  });

  it('reports a missing Secret as a readable condition and recovers when it appears', async () => {
    await kube.apply(hub('broken', { postgres: { host: pg.host, port: pg.port, database: pg.database, sslMode: 'disable', adminCredentialsSecretRef: { name: 'nope' } } }), { fieldManager: 'e2e-test' });
    let o = await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'broken' }, 'Ready=False', (x) => condition(x, 'Ready')?.status === 'False' && x.status?.observedGeneration === 1);
    expect(condition(o, 'PostgresReady')?.reason).toBe('SecretMissing');
    expect(condition(o, 'PostgresReady')?.message).toMatch(/spec\.postgres\.adminCredentialsSecretRef: Secret family\/nope not found/);
    expect(condition(o, 'Degraded')?.status).toBe('True');
    await waitFor('warning event', async () => (await kube.list('v1', 'Event', NS)).items.some((e) => e.involvedObject?.name === 'broken' && e.type === 'Warning' && e.reason === 'SecretMissing'));
    // A Secret with the wrong password: the live check reports it, without the value.
    await secret(kube, NS, 'nope', { username: pg.user, password: 'p-secret-value-5678' });
    o = await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'broken' }, 'PostgresAuthFailed', (x) => condition(x, 'PostgresReady')?.reason === 'PostgresAuthFailed');
    expect(condition(o, 'PostgresReady')?.message).not.toContain('p-secret-value-5678');
    await secret(kube, NS, 'nope', { username: pg.user, password: pg.password });
    o = await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'broken' }, 'Ready after Secret fixed', isReady);
    expect(condition(o, 'Degraded')?.status).toBe('False');
  });

  it('keeps a FamilyHub while something references it, then finalizes; the GC removes its children', async () => {
    await kube.apply({
      apiVersion: API, kind: 'DatabaseClaim', metadata: { name: 'app', namespace: NS },
      spec: { familyHubRef: { name: 'broken' }, credentials: { mode: 'Static' } },
    }, { fieldManager: 'e2e-test' });
    await kube.delete(API, 'FamilyHub', NS, 'broken');
    await waitFor('InUse event', async () => (await kube.list('v1', 'Event', NS)).items.some((e) => e.involvedObject?.name === 'broken' && e.reason === 'InUse'));
    const still = await kube.get(API, 'FamilyHub', NS, 'broken');
    expect(still?.metadata.deletionTimestamp).toBeTruthy();
    expect(await kube.get('v1', 'ConfigMap', NS, 'broken-platform')).toBeTruthy();
    await kube.delete(API, 'DatabaseClaim', NS, 'app');
    await waitFor('FamilyHub gone', async () => !(await kube.get(API, 'FamilyHub', NS, 'broken')), { timeoutMs: 30_000 });
    // kube-controller-manager's garbage collector deletes the owned ConfigMap.
    await waitFor('owned ConfigMap garbage-collected', async () => !(await kube.get('v1', 'ConfigMap', NS, 'broken-platform')), { timeoutMs: 60_000 });
  });

  it('catches up after the apiserver is killed and restarted', async () => {
    await cp.restartApiserver({ downMs: 2000 });
    await kube.apply(hub('home', { domain: 'after-restart.example.org' }), { fieldManager: 'e2e-test' });
    const o = await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'home' }, 'reconciled after restart', (x) => isReady(x) && x.status?.domain === 'after-restart.example.org');
    expect(o.status.observedGeneration).toBe(o.metadata.generation);
  });

  it('relists after 410 Gone and reconciles a change made while it was disconnected', async () => {
    const goneBefore = (await op.metric('familyhub_informer_watch_restarts_total{kind="FamilyHub",cause="gone"}')) ?? 0;
    process.kill(op.proc.child.pid!, 'SIGSTOP');
    try {
      // Break the operator's watch first, so nothing below can reach it
      // through an already-open stream.
      await cp.restartApiserver({ downMs: 200 });
      await kube.apply(hub('home', { domain: 'while-away.example.org' }), { fieldManager: 'e2e-test' });
      for (let i = 0; i < 5; i++) await kube.apply(hub(`filler-${i}`), { fieldManager: 'e2e-test' });
      // Compact etcd and restart again: the operator's resourceVersion is
      // now older than anything the apiserver or etcd can serve.
      await cp.restartApiserver({ downMs: 200, beforeStart: async () => void (await cp.compactEtcd()) });
    } finally {
      process.kill(op.proc.child.pid!, 'SIGCONT');
    }
    const o = await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'home' }, 'reconciled after 410', (x) => isReady(x) && x.status?.domain === 'while-away.example.org', 90_000);
    expect(o.status.observedGeneration).toBe(o.metadata.generation);
    const goneAfter = (await op.metric('familyhub_informer_watch_restarts_total{kind="FamilyHub",cause="gone"}')) ?? 0;
    expect(goneAfter).toBeGreaterThan(goneBefore);
    for (let i = 0; i < 5; i++) await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: `filler-${i}` }, 'Ready', isReady);
  });

  it('never logs secret values', () => {
    const logs = op.logs();
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).not.toContain(pg.password);
    expect(logs).not.toContain(idp.initialAccessToken);
    expect(logs).not.toContain('p-secret-value-5678');
  });
});
