// Two operator processes against one real apiserver: exactly one leads and
// reconciles; killing the leader hands over within the lease duration, and a
// graceful shutdown releases the lease so the hand-over is faster still.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { Informer } from '../../src/core/informer.js';
import { KubeClient } from '../../src/core/kube-client.js';
import pino from 'pino';
import { registerResource } from '../../src/core/resources.js';
import { API, isReady, namespace, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';

const LEASE_MS = 4000;
const LEADER = 'familyhub_leader_election_status{lease="familyhub-operator"}';
const RECONCILES = 'familyhub_reconcile_total{controller="familyhub",result="success"}';
// A standby's only GETs are its lease reads: their count says how many retry periods it has been through.
const GETS = 'familyhub_kube_requests_total{verb="get"}';

describe('leader election', () => {
  let cp: ControlPlane;
  let kube: KubeClient;
  const ops: RunningOperator[] = [];

  const start = (id: string) =>
    startOperator({
      kubeconfigPath: cp.kubeconfigPath,
      name: id,
      env: {
        FAMILYHUB_IDENTITY: id,
        FAMILYHUB_LEASE_DURATION_MS: String(LEASE_MS),
        FAMILYHUB_RENEW_DEADLINE_MS: '3000',
        FAMILYHUB_RETRY_PERIOD_MS: '500',
      },
    }).then((op) => (ops.push(op), op));

  const leaders = async (list: RunningOperator[]) => {
    const out: RunningOperator[] = [];
    for (const op of list) if ((await op.metric(LEADER).catch(() => 0)) === 1) out.push(op);
    return out;
  };

  let pg: LocalPostgres;
  let idp: DevIdp;

  beforeAll(async () => {
    [pg, idp] = await Promise.all([startPostgres(), startDevIdp({ allowedDomain: 'example.org' })]);
    cp = await startControlPlane({ audit: false });
    kube = new KubeClient(cp.kubeConfig);
    await installCrds(cp.kubeConfig);
    await namespace(kube, 'family');
    await secret(kube, 'family', 'pg-admin', { username: pg.user, password: pg.password });
    await secret(kube, 'family', 'idp-token', { token: idp.initialAccessToken });
  });

  afterAll(async () => {
    for (const op of ops) await op.kill();
    await cp?.stop();
    await idp?.stop();
    await pg?.stop();
  });

  it('elects exactly one leader, and only the leader reconciles', async () => {
    const [a, b] = await Promise.all([start('replica-a'), start('replica-b')]);
    await waitFor('a leader', async () => (await leaders([a!, b!])).length === 1, { timeoutMs: 20_000 });
    // Stays exactly one while the standby reads the held lease four more times.
    const [first] = await leaders([a!, b!]);
    const waiting = first === a ? b! : a!;
    const seen = (await waiting.metric(GETS)) ?? 0;
    const counts: number[] = [];
    await waitFor('standby retried four times', async () => {
      counts.push((await leaders([a!, b!])).length);
      return ((await waiting.metric(GETS)) ?? 0) >= seen + 4;
    }, { timeoutMs: 20_000 });
    expect(counts.length).toBeGreaterThan(1);
    expect(counts.every((n) => n === 1), `leaders seen: ${counts.join(',')}`).toBe(true);
    await kube.apply({
      apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: 'family' },
      spec: {
        domain: 'home.example.org', allowedEmailDomains: ['example.org'],
        postgres: { host: pg.host, port: pg.port, database: pg.database, sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
        identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } }, runtime: { image: 'runtime:dev' },
      },
    }, { fieldManager: 'e2e-test' });
    await waitForObject(kube, { kind: 'FamilyHub', namespace: 'family', name: 'home' }, 'Ready', isReady);
    const [leader] = await leaders([a!, b!]);
    const standby = leader === a ? b! : a!;
    expect((await leader!.metric(RECONCILES)) ?? 0).toBeGreaterThan(0);
    expect((await standby.metric(RECONCILES)) ?? 0).toBe(0);
  });

  it('a standby takes over within the lease duration when the leader is killed', async () => {
    const [leader] = await leaders(ops);
    const standby = ops.find((o) => o !== leader)!;
    const t0 = Date.now();
    await leader!.kill();
    await waitFor('standby leads', async () => (await standby.metric(LEADER)) === 1, { timeoutMs: LEASE_MS * 3 });
    const took = Date.now() - t0;
    // Expiry is judged from when the standby last saw a renewal: lease + one retry period.
    expect(took).toBeLessThanOrEqual(LEASE_MS + 1500);
    // The new leader reconciles.
    await kube.mergePatch(API, 'FamilyHub', 'family', 'home', { spec: { domain: 'takeover.example.org' } });
    await waitForObject(kube, { kind: 'FamilyHub', namespace: 'family', name: 'home' }, 'reconciled by new leader', (o) => isReady(o) && o.status?.domain === 'takeover.example.org');
  });

  it('hands over fast on graceful shutdown (lease released)', async () => {
    const [leader] = await leaders(ops.filter((o) => o.proc.child.exitCode === null && o.proc.child.signalCode === null));
    const c = await start('replica-c');
    // Not before it has read the held lease twice: until then "not leader" proves nothing.
    await waitFor('replica-c read the lease twice', async () => ((await c.metric(GETS)) ?? 0) >= 2, { timeoutMs: 20_000 });
    expect(await c.metric(LEADER)).toBe(0);
    const t0 = Date.now();
    const stopped = leader!.stop().then(() => Date.now() - t0);
    await waitFor('replica-c leads', async () => (await c.metric(LEADER)) === 1, { timeoutMs: LEASE_MS * 3 });
    // Released lease: taken at the standby's next retry, well before expiry.
    expect(Date.now() - t0).toBeLessThan(LEASE_MS);
    // All controllers run, and the Gateway API kinds the Route controller
    // owns are not installed: their informers sit in a backoff pause (up to
    // 10 s), which must not hold up the exit — in a cluster the replacement
    // pod would otherwise win the lease from the standby.
    expect(await stopped).toBeLessThan(3000);
    expect(leader!.logs()).toContain('released leader lease');
  });

  it('an informer of a kind the apiserver does not serve stops at once, even in the middle of its backoff pause', async () => {
    const widget = registerResource({ apiVersion: 'never-installed.example.org/v1', kind: 'Widget', plural: 'widgets', namespaced: true });
    const inf = new Informer(kube, { apiVersion: widget.apiVersion, kind: widget.kind }, pino({ level: 'silent' }));
    inf.start();
    await inf.hasSynced;
    expect(inf.served).toBe(false);
    // Retries at 0.25, 0.75, 1.75, 3.75 s, then pauses 4 s: stop inside that pause.
    await new Promise((r) => setTimeout(r, 4500));
    const t0 = Date.now();
    await inf.stop();
    expect(Date.now() - t0).toBeLessThan(500);
  });

  it('no replica logs a secret it was handed', () => {
    expect(ops).toHaveLength(3);
    for (const op of ops) {
      const logs = op.logs();
      expect(logs).toContain('"msg":"');
      for (const v of [pg.password, idp.initialAccessToken, cp.adminToken]) {
        expect(v.length).toBeGreaterThan(8);
        expect(logs).not.toContain(v);
      }
    }
  });
});
