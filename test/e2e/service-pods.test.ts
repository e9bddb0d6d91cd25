// Services with real pods on the local node (hack/local/node.ts): the
// Deployment's availability comes from the real kube-controller-manager and
// kubelet, the pods run under an enforced restricted Pod Security profile,
// the app reads its database login from the mounted file and uses its own
// schema on the host's PostgreSQL (credentials from a real OpenBao through
// the DatabaseClaim controller); a missing image is Degraded with the pod's
// reason and recovers when the image appears. Needs root (skipped otherwise).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProjectImage } from '../../hack/images/images.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { BRIDGE_ADDRESS, POD_CIDR, startCluster, type Cluster } from '../../hack/local/node.js';
import { startOpenBao, type LocalOpenBao } from '../../hack/local/openbao.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { waitFor } from '../../hack/local/process.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { API, condition, isReady, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const NS = 'svc-pods';
const isRoot = process.getuid?.() === 0;

// The sample app, in the project image: health, its public URL, and its own
// schema through the mounted DATABASE_URL_FILE (read on every request, so a
// rotated file is picked up). Node as PID 1 must handle SIGTERM itself.
const APP = `const fs=require('fs'),http=require('http');
const srv=http.createServer(async(q,s)=>{
  if(q.url==='/healthz')return s.end('ok');
  if(q.url==='/db'){const {Client}=require('pg');const c=new Client({connectionString:fs.readFileSync(process.env.DATABASE_URL_FILE,'utf8')});
    try{await c.connect();await c.query('CREATE TABLE IF NOT EXISTS visits(at timestamptz DEFAULT now())');await c.query('INSERT INTO visits DEFAULT VALUES');
      const r=await c.query('SELECT session_user AS "user", current_schema() AS schema, (SELECT count(*)::int FROM visits) AS visits');
      s.setHeader('content-type','application/json');s.end(JSON.stringify({...r.rows[0],secretEnv:Object.keys(process.env).filter(k=>/PASSWORD$|SECRET$|^DATABASE_URL$/.test(k))}));}
    catch(e){s.statusCode=500;s.end(String(e&&e.message))}finally{c.end().catch(()=>{})}return;}
  s.end(JSON.stringify({url:process.env.PUBLIC_URL}));
});
srv.keepAliveTimeout=1000;
srv.listen(Number(process.env.PORT),()=>console.log('app listening'));
// Graceful stop: keep answering while the endpoint is being removed, then close.
process.on('SIGTERM',()=>setTimeout(()=>{srv.close(()=>process.exit(0));setTimeout(()=>process.exit(0),2000)},3000));`;

describe.skipIf(!isRoot)('Service with real pods', () => {
  let cluster: Cluster;
  let kube: KubeClient;
  let pg: LocalPostgres;
  let bao: LocalOpenBao;
  let op: RunningOperator;
  let image: string;

  const service = (name: string, spec: Record<string, unknown>): KubeObject => ({
    apiVersion: API, kind: 'Service', metadata: { name, namespace: NS },
    spec: { familyHubRef: { name: 'home' }, image, port: 8080, host: `${name}.family.test`, command: ['node', '-e', APP], probes: { readiness: { path: '/healthz', periodSeconds: 1 } }, ...spec },
  });
  const apply = (o: KubeObject) => kube.apply(o, { fieldManager: 'e2e-test' });
  const waitSvc = (name: string, what: string, pred: (o: KubeObject) => boolean, ms = 120_000) => waitForObject(kube, { kind: 'Service', namespace: NS, name }, what, pred, ms);
  const podIp = async (name: string) => {
    const pods = (await kube.list('v1', 'Pod', NS, { labelSelector: `familyhub.dev/service=${name}` })).items;
    return pods.find((p) => p.status?.podIP && !p.metadata.deletionTimestamp && p.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'))?.status.podIP as string | undefined;
  };

  beforeAll(async () => {
    cluster = await startCluster({ audit: false });
    kube = new KubeClient(cluster.cp.kubeConfig);
    const built = await buildProjectImage({ from: 'head' });
    image = built.ref;
    await cluster.node.importImage(built.archive);
    [pg, bao] = await Promise.all([startPostgres({ podAccess: { address: BRIDGE_ADDRESS, cidr: POD_CIDR } }), startOpenBao()]);
    await installCrds(cluster.cp.kubeConfig);
    await installRbac(cluster.cp.kubeConfig);
    // Pods below the restricted profile would be refused by the apiserver.
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } }, { fieldManager: 'e2e-test' });
    await secret(kube, NS, 'pg-admin', { username: pg.user, password: pg.password });
    await secret(kube, NS, 'vault-token', { token: bao.rootToken });
    await apply({
      apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: NS },
      spec: {
        domain: 'family.test', allowedEmailDomains: ['family.test'],
        postgres: { host: BRIDGE_ADDRESS, port: pg.port, database: pg.database, sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
        vault: { address: bao.address, authMethod: 'token', tokenSecretRef: { name: 'vault-token' } },
        identity: { kind: 'oidc-dcr', issuerUrl: 'https://id.family.test' },
        runtime: { image },
      },
    });
    op = await startOperator({
      kubeconfigPath: await cluster.cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
      name: 'operator-service-pods',
      env: { FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_CONTROLLERS: 'service,databaseclaim', FAMILYHUB_DEPENDENCY_RETRY_MS: '2000' },
    });
  }, 600_000);

  afterAll(async () => {
    await op?.stop();
    await cluster?.stop();
    await Promise.allSettled([pg?.stop(), bao?.stop()]);
  }, 120_000);

  it('the app becomes Available from the real rollout and uses its own schema through the mounted file', async () => {
    await apply(service('recipes', { replicas: 2, needs: { database: { enabled: true } } }));
    const s = await waitSvc('recipes', 'Ready', (o) => isReady(o), 180_000);
    expect(condition(s, 'Available')).toMatchObject({ status: 'True', reason: 'Available' });
    expect(s.status.readyReplicas).toBe(2);
    const d = (await kube.get('apps/v1', 'Deployment', NS, 'recipes'))!;
    expect(d.status.availableReplicas).toBe(2);

    const ip = await podIp('recipes');
    expect(ip).toBeTruthy();
    const r = await (await fetch(`http://${ip}:8080/db`)).json() as { user: string; schema: string; visits: number; secretEnv: string[] };
    const claim = (await kube.get(API, 'DatabaseClaim', NS, 'recipes'))!;
    expect(r.schema).toBe(claim.status.schema);
    expect(r.user).toBe((await kube.readSecret(NS, 'recipes-db'))!.username);
    expect(r.visits).toBeGreaterThanOrEqual(1);
    // Credentials arrived as a file, never as an environment variable.
    expect(r.secretEnv).toEqual([]);
  });

  it('a credential rotation rolls the pods with zero failed requests through the Service\'s ClusterIP', async () => {
    const core = (await kube.get('v1', 'Service', NS, 'recipes'))!;
    const url = `http://${core.spec.clusterIP}:8080/db`;
    const before = (await kube.get(API, 'Service', NS, 'recipes'))!.status.credentialsHash;
    const oldUser = (await kube.readSecret(NS, 'recipes-db'))!.username;
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const users = new Set<string>();
    // The Service is Available when its pods are Ready; kube-proxy learns of
    // them a moment later (EndpointSlice, then its rules). The load measures
    // the rotation, so it starts once the ClusterIP answers.
    await waitFor('the ClusterIP answers', async () => (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok, { timeoutMs: 30_000 });
    const load = (async () => {
      while (!stop) {
        try {
          const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
          if (r.ok) { ok++; users.add(((await r.json()) as { user: string }).user); } else failures.push(`${r.status} ${await r.text()}`);
        } catch (err) {
          failures.push(String((err as Error).cause ?? err));
        }
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    try {
      // Served on the old login first, so the rotation happens under load.
      await waitFor('load on the old login', async () => users.has(oldUser!), { timeoutMs: 10_000, intervalMs: 20 });
      await apply(service('recipes', { replicas: 2, needs: { database: { enabled: true, rotateGeneration: 1 } } }));
      await waitSvc('recipes', 'rolled onto the new login', (o) => isReady(o) && o.status.credentialsHash !== before, 180_000);
      await waitFor('old pods gone', async () => (await kube.list('v1', 'Pod', NS, { labelSelector: 'familyhub.dev/service=recipes' })).items.length === 2, { timeoutMs: 90_000 });
      // And still served after they are: 20 more answers.
      const served = ok;
      await waitFor('served after the rollout', async () => ok >= served + 20, { timeoutMs: 10_000, intervalMs: 20 });
    } finally {
      stop = true;
      await load;
    }
    console.log(`rotation under load: ${ok} requests answered, ${failures.length} failed, logins seen: ${users.size}`);
    const newUser = (await kube.readSecret(NS, 'recipes-db'))!.username;
    expect(newUser).not.toBe(oldUser);
    expect(users).toContain(oldUser);
    expect(users).toContain(newUser);
    expect(ok).toBeGreaterThan(50);
    expect(failures).toEqual([]);
  });

  it('a missing image is Degraded with the pod\'s reason, the Route waits for a replica, and both recover when the image appears', async () => {
    const missing = 'localhost/familyhub/not-there:1.0.0';
    await apply({ ...service('broken', {}), spec: { ...service('broken', { needs: { route: {} } }).spec, image: missing } });
    const s = await waitSvc('broken', 'image pull failure', (o) => ['ErrImagePull', 'ImagePullBackOff'].includes(condition(o, 'Available')?.reason ?? ''), 90_000);
    expect(condition(s, 'Degraded')?.status).toBe('True');
    expect(condition(s, 'Available')?.message).toMatch(/pod broken-[a-z0-9-]+: container app (ErrImagePull|ImagePullBackOff)/);
    expect(condition(s, 'RouteReady')?.reason).toBe('WaitingForAvailableReplica');
    expect(await kube.get(API, 'Route', NS, 'broken')).toBeUndefined();
    // The image appears in the node's store under that name: the kubelet's next pull attempt finds it.
    await cluster.node.ctr(['images', 'tag', image, missing]);
    const ok = await waitSvc('broken', 'recovered', (o) => condition(o, 'Available')?.status === 'True' && !!o.status?.routeName, 180_000);
    expect(ok.status.readyReplicas).toBe(1);
    const route = (await kube.get(API, 'Route', NS, 'broken'))!;
    expect(route.spec).toMatchObject({ hostname: 'broken.family.test', backendRef: { name: 'broken', port: 8080 } });
    // No Route controller runs here: the Route's readiness is its controller's to report, not ours.
    expect(condition(ok, 'RouteReady')?.reason).toBe('Pending');
  });
});
