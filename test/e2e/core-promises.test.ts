// What the README promises about the controller core, each checked through
// the running operator (a separate process under exactly config/rbac), with
// the apiserver's audit log as the independent witness of its writes:
// leader election under least privilege, /readyz, the work-queue depth
// metric, Event de-duplication, the watch idle timeout, and a leader that
// cannot renew exiting.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditEvents, startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { registerResource } from '../../src/core/resources.js';
import { API, condition, isReady, namespace, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';

const NS = 'family';
const OPERATOR_USER = 'system:serviceaccount:familyhub-system:familyhub-operator';
const IDENTITY = 'promises-replica';
const LEADER = 'familyhub_leader_election_status{lease="familyhub-operator"}';
const DEPTH = 'familyhub_workqueue_depth{controller="familyhub"}';
const RETRIES = 'familyhub_workqueue_retries_total{controller="familyhub"}';
const IDLE_RESTARTS = 'familyhub_informer_watch_restarts_total{kind="FamilyHub",cause="idle"}';
const WATCH_IDLE_MS = 3000;
const VAP = registerResource({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', plural: 'validatingadmissionpolicies', namespaced: false });
const VAP_BINDING = registerResource({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', plural: 'validatingadmissionpolicybindings', namespaced: false });
const REFUSAL = 'e2e: Ready refused for now';
const RENEW_DEADLINE_MS = 2000;

let pg: LocalPostgres;
let idp: DevIdp;

function hub(name: string, pgSecret = 'pg-admin'): KubeObject {
  return {
    apiVersion: API,
    kind: 'FamilyHub',
    metadata: { name, namespace: NS },
    spec: {
      domain: 'home.example.org',
      allowedEmailDomains: ['example.org'],
      postgres: { host: pg.host, port: pg.port, database: pg.database, sslMode: 'disable', adminCredentialsSecretRef: { name: pgSecret } },
      identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
      runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
    },
  };
}

function operatorRequests(cp: ControlPlane) {
  return readAuditEvents(cp.auditLogPath).filter((e) => e.user.username === OPERATOR_USER);
}

describe('controller core promises, through the running operator', () => {
  let cp: ControlPlane;
  let kube: KubeClient;
  let op: RunningOperator;
  let second: RunningOperator | undefined;
  let saKubeconfig: string;

  beforeAll(async () => {
    [pg, idp] = await Promise.all([startPostgres(), startDevIdp({ allowedDomain: 'example.org' })]);
    cp = await startControlPlane();
    kube = new KubeClient(cp.kubeConfig);
    await installCrds(cp.kubeConfig);
    await installRbac(cp.kubeConfig);
    await namespace(kube, NS);
    await secret(kube, NS, 'pg-admin', { username: pg.user, password: pg.password });
    await secret(kube, NS, 'idp-token', { token: idp.initialAccessToken });
    saKubeconfig = await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
    op = await startOperator({
      kubeconfigPath: saKubeconfig,
      name: 'operator-promises',
      env: {
        FAMILYHUB_IDENTITY: IDENTITY,
        FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system',
        FAMILYHUB_CONTROLLERS: 'familyhub',
        // One worker, so a burst of objects really waits in the queue.
        FAMILYHUB_CONCURRENCY: '1',
        FAMILYHUB_RECHECK_MS: '1000',
        FAMILYHUB_WATCH_IDLE_MS: String(WATCH_IDLE_MS),
        FAMILYHUB_LEASE_DURATION_MS: '4000',
        FAMILYHUB_RENEW_DEADLINE_MS: String(RENEW_DEADLINE_MS),
        FAMILYHUB_RETRY_PERIOD_MS: '500',
      },
    });
  }, 240_000);

  afterAll(async () => {
    if (cp?.apiserver.child.pid) process.kill(cp.apiserver.child.pid, 'SIGCONT');
    await op?.kill();
    await second?.kill();
    await cp?.stop();
    await idp?.stop();
    await pg?.stop();
  });

  it('takes the leader Lease as its ServiceAccount under exactly config/rbac', async () => {
    await waitFor('leader', async () => (await op.metric(LEADER)) === 1, { timeoutMs: 30_000 });
    const lease = await kube.get('coordination.k8s.io/v1', 'Lease', 'familyhub-system', 'familyhub-operator');
    expect(lease?.spec?.holderIdentity).toBe(IDENTITY);
    // The apiserver saw the Lease written by the ServiceAccount (not an admin identity), and allowed it.
    const leaseWrites = operatorRequests(cp).filter((e) => e.objectRef?.resource === 'leases' && ['create', 'update'].includes(e.verb));
    expect(leaseWrites.length).toBeGreaterThan(0);
    expect(leaseWrites.every((e) => (e.responseStatus?.code ?? 0) < 300)).toBe(true);
  });

  it('reconciles a FamilyHub to Ready', async () => {
    await kube.apply(hub('home'), { fieldManager: 'e2e-test' });
    await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'home' }, 'Ready', isReady, 90_000);
  });

  it('familyhub_workqueue_retries_total grows by exactly the number of failed reconciles, which the apiserver refused', async () => {
    // A real failure the operator cannot tell from any other: an admission
    // policy refuses the status write that would make 'retry-me' Ready (the
    // error status, Ready=False, passes). Each refused write is one failed
    // reconcile, recorded by the apiserver's audit log independently of the
    // operator's metrics. 'vap-probe' (dry run) tells when the policy is live.
    await kube.apply({
      apiVersion: VAP.apiVersion, kind: VAP.kind, metadata: { name: 'refuse-ready' },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: ['familyhub.dev'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE'], resources: ['familyhubs', 'familyhubs/status'] }] },
        matchConditions: [{ name: 'targets', expression: "object.metadata.name in ['retry-me', 'vap-probe']" }],
        validations: [{
          expression: "object.metadata.name == 'vap-probe' ? false : !(has(object.status) && has(object.status.conditions) && object.status.conditions.exists(c, c.type == 'Ready' && c.status == 'True'))",
          message: REFUSAL,
        }],
      },
    } as KubeObject, { fieldManager: 'e2e-test' });
    await kube.apply({ apiVersion: VAP_BINDING.apiVersion, kind: VAP_BINDING.kind, metadata: { name: 'refuse-ready' }, spec: { policyName: 'refuse-ready', validationActions: ['Deny'] } } as KubeObject, { fieldManager: 'e2e-test' });
    await waitFor('admission policy live', async () => {
      try {
        await kube.apply(hub('vap-probe'), { fieldManager: 'e2e-test', dryRun: true });
        return false;
      } catch (e) {
        if (!String(e).includes(REFUSAL)) throw e;
        return true;
      }
    }, { timeoutMs: 30_000 });
    const refused = () => operatorRequests(cp).filter((e) => e.objectRef?.resource === 'familyhubs' && e.objectRef.subresource === 'status' && e.objectRef.name === 'retry-me' && (e.responseStatus?.code ?? 0) >= 400);
    const before = (await op.metric(RETRIES)) ?? 0;
    await kube.apply(hub('retry-me'), { fieldManager: 'e2e-test' });
    // Backoff 200, 400, 800, 1600 ms: four refusals in about 3 s.
    await waitFor('four refused Ready writes', async () => refused().length >= 4, { timeoutMs: 30_000 });
    expect((await kube.get(API, 'FamilyHub', NS, 'retry-me'))?.status?.conditions?.find((c: { type: string }) => c.type === 'Ready')?.status).toBe('False');
    await kube.delete(VAP_BINDING.apiVersion, VAP_BINDING.kind, undefined, 'refuse-ready');
    await kube.delete(VAP.apiVersion, VAP.kind, undefined, 'refuse-ready');
    await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'retry-me' }, 'Ready once the policy is gone', isReady, 60_000);
    const failures = refused().length;
    expect(failures).toBeGreaterThanOrEqual(4);
    expect(refused().every((e) => e.verb === 'patch')).toBe(true);
    expect(((await op.metric(RETRIES)) ?? 0) - before).toBe(failures);
    expect(op.logs()).toContain(REFUSAL);
  });

  it('familyhub_workqueue_depth counts keys waiting for the single worker and drains to 0', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `burst-${i}`);
    let maxDepth = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxDepth = Math.max(maxDepth, (await op.metric(DEPTH)) ?? 0);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await Promise.all(names.map((n) => kube.apply(hub(n), { fieldManager: 'e2e-test' })));
    for (const n of names) await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: n }, 'Ready', isReady, 120_000);
    sampling = false;
    await sampler;
    // 20 keys arrived at once for one worker: several must have waited.
    expect(maxDepth).toBeGreaterThanOrEqual(5);
    await waitFor('queue drained', async () => (await op.metric(DEPTH)) === 0, { timeoutMs: 30_000 });
  });

  it('writes a repeated Event once (de-duplicated), however often the object flips back into it', async () => {
    await kube.apply(hub('flaky', 'flaky-pg'), { fieldManager: 'e2e-test' });
    const missing = (o: KubeObject) => condition(o, 'PostgresReady')?.reason === 'SecretMissing';
    for (let round = 0; round < 3; round++) {
      await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'flaky' }, `SecretMissing (round ${round})`, missing);
      await secret(kube, NS, 'flaky-pg', { username: pg.user, password: pg.password });
      await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'flaky' }, `Ready (round ${round})`, isReady);
      await kube.delete('v1', 'Secret', NS, 'flaky-pg');
    }
    await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'flaky' }, 'SecretMissing (last)', missing);
    const events = (await kube.list('v1', 'Event', NS)).items.filter((e) => e.involvedObject?.name === 'flaky' && e.reason === 'SecretMissing');
    expect(events).toHaveLength(1);
    // Four SecretMissing transitions, one Event write: the repeats were counted, not sent.
    const eventWrites = operatorRequests(cp).filter((e) => e.objectRef?.resource === 'events' && e.objectRef?.name === events[0]!.metadata.name && e.verb !== 'get');
    expect(eventWrites.map((e) => e.verb)).toEqual(['create']);
  });

  it('restarts a watch that delivered nothing for the idle timeout, and keeps reconciling', async () => {
    const before = (await op.metric(IDLE_RESTARTS)) ?? 0;
    // Nothing changes now: the FamilyHub watch stays silent past the idle timeout.
    await waitFor('idle watch restarted', async () => ((await op.metric(IDLE_RESTARTS)) ?? 0) >= before + 2, { timeoutMs: WATCH_IDLE_MS * 6 });
    // The restarted watch still delivers.
    const o = await kube.get(API, 'FamilyHub', NS, 'home');
    await kube.mergePatch(API, 'FamilyHub', NS, 'home', { spec: { domain: 'after-idle.example.org' } });
    await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'home' }, 'reconciled after idle restarts', (x) => isReady(x) && x.status?.domain === 'after-idle.example.org' && x.metadata.generation! > o!.metadata.generation!);
  });

  it('a leader that cannot renew within the renew deadline exits; /readyz is 503 until a new process has synced its caches', async () => {
    expect(await op.metric(LEADER)).toBe(1);
    const exited = new Promise<number | null>((resolve) => op.proc.child.once('exit', (code) => resolve(code)));
    // A frozen apiserver: connections stay open, nothing answers.
    const t0 = Date.now();
    process.kill(cp.apiserver.child.pid!, 'SIGSTOP');
    try {
      const code = await Promise.race([exited, new Promise<'alive'>((r) => setTimeout(() => r('alive'), RENEW_DEADLINE_MS * 5))]);
      expect(code).toBe(1);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(RENEW_DEADLINE_MS - 600);
      expect(op.logs()).toContain('could not renew within the renew deadline');
      // Without leader election the process runs its controllers at once; its
      // informers cannot list from the frozen apiserver, so it is alive but not ready.
      second = await startOperator({
        kubeconfigPath: saKubeconfig,
        name: 'operator-promises-readyz',
        env: { FAMILYHUB_LEADER_ELECTION: 'false', FAMILYHUB_CONTROLLERS: 'familyhub' },
      });
      for (let i = 0; i < 4; i++) {
        expect((await fetch(`http://127.0.0.1:${second.port}/readyz`)).status).toBe(503);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect((await fetch(`http://127.0.0.1:${second.port}/healthz`)).status).toBe(200);
    } finally {
      process.kill(cp.apiserver.child.pid!, 'SIGCONT');
    }
    await waitFor('/readyz 200 once caches synced', async () => (await fetch(`http://127.0.0.1:${second!.port}/readyz`)).status === 200, { timeoutMs: 60_000 });
    await kube.mergePatch(API, 'FamilyHub', NS, 'home', { spec: { domain: 'second.example.org' } });
    await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'home' }, 'reconciled by the new process', (x) => isReady(x) && x.status?.domain === 'second.example.org');
  });

  it('never logs secret values', () => {
    const logs = op.logs() + second!.logs();
    expect(op.logs().length).toBeGreaterThan(0);
    expect(second!.logs().length).toBeGreaterThan(0);
    expect(logs).not.toContain(pg.password);
    expect(logs).not.toContain(idp.initialAccessToken);
  });
});
