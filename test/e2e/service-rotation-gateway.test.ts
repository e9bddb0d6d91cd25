// Credential rotation without downtime, as a family member meets it: a
// Service with a database, an OIDC client and a Route on the real node,
// behind a real Traefik (its Kubernetes Gateway provider sends to the pods'
// EndpointSlice addresses, not the ClusterIP, with Traefik's default 2 s
// reload throttle), every request carrying a dev-IdP bearer token through
// the gateway's forward-auth. Under steady load a database and then an OIDC
// client secret rotation roll the Deployment onto a new pod-template hash;
// not one request may fail, and requests must be served all along.
//
// The app is a plain well-behaved one: on SIGTERM it stops listening and
// exits once its connections are done. That alone is not enough behind a
// gateway that learns of a terminating pod a moment later: the operator's
// preStop delay (src/controllers/service/desired.ts) covers that moment.
// Needs root (skipped otherwise).
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { buildProjectImage } from '../../hack/images/images.js';
import { installGatewayCrds } from '../../hack/local/gateway-crds.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { BRIDGE_ADDRESS, POD_CIDR, startCluster, type Cluster } from '../../hack/local/node.js';
import { startOpenBao, type LocalOpenBao } from '../../hack/local/openbao.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { waitFor } from '../../hack/local/process.js';
import { startTraefik, type Traefik } from '../../hack/local/traefik.js';
import { rotate } from '../../src/cli/rotate.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { registerResource } from '../../src/core/resources.js';
import { startAuthService, type AuthService } from '../support/auth-service.js';
import { gatewayRequest } from '../support/gateway.js';
import { API, condition, isReady, namespace, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { applyTlsSecret, domainCertificate, type TestCertificate } from '../support/tls.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

registerResource({ apiVersion: 'apps/v1', kind: 'ReplicaSet', plural: 'replicasets', namespaced: true });

const NS = 'rotation';
const GW_NS = 'gateway';
const DOMAIN = 'family.test';
const HOST = `recipes.${DOMAIN}`;
const isRoot = process.getuid?.() === 0;
/** Requests in flight at any time. */
const CONCURRENCY = 4;

// Who answered and with which logins: the database user it just logged in
// as (a new connection per request, from the mounted file) and the OIDC
// client id in its mounted Secret.
const APP = `const fs=require('fs'),http=require('http'),os=require('os');
const read=(f)=>fs.readFileSync(f,'utf8');
const srv=http.createServer(async(q,s)=>{
  if(q.url==='/healthz')return s.end('ok');
  const {Client}=require('pg');const c=new Client({connectionString:read(process.env.DATABASE_URL_FILE)});
  try{await c.connect();const r=await c.query('SELECT session_user AS "user"');
    s.setHeader('content-type','application/json');s.end(JSON.stringify({user:r.rows[0].user,client:read(process.env.OIDC_CLIENT_ID_FILE),pod:os.hostname()}));}
  catch(e){s.statusCode=500;s.end(String(e&&e.message))}finally{c.end().catch(()=>{})}
});
srv.listen(Number(process.env.PORT));
process.on('SIGTERM',()=>srv.close(()=>process.exit(0)));`;

interface Answer { user: string; client: string; pod: string }

/** Requests through the gateway, CONCURRENCY at a time, until stopped: every answer and every failure counted. */
class Load {
  ok = 0;
  readonly failures: string[] = [];
  readonly answers: Answer[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[];
  private readonly agent = new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

  constructor(send: (agent: https.Agent) => ReturnType<typeof gatewayRequest>) {
    this.loops = Array.from({ length: CONCURRENCY }, async () => {
      while (!this.stopped) {
        try {
          const r = await send(this.agent);
          if (r.status >= 200 && r.status < 300) {
            this.ok++;
            this.answers.push(r.json<Answer>());
          } else this.failures.push(`${new Date().toISOString()} ${r.status} ${r.body.slice(0, 200)}`);
        } catch (err) {
          this.failures.push(`${new Date().toISOString()} ${String((err as Error).message ?? err)}`);
        }
      }
    });
  }

  /** Resolves once `n` more requests have been answered (an observable, not a pause). */
  async served(n: number, timeoutMs = 60_000): Promise<void> {
    const target = this.ok + n;
    await waitFor(`${n} more requests served through the gateway`, async () => this.ok >= target, { timeoutMs, intervalMs: 50 });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    this.agent.destroy();
  }
}

describe.skipIf(!isRoot)('credential rotation through the gateway under load', () => {
  let cluster: Cluster;
  let kube: KubeClient;
  let pg: LocalPostgres;
  let bao: LocalOpenBao;
  let idp: DevIdp;
  let auth: AuthService;
  let traefik: Traefik;
  let op: RunningOperator;
  let cert: TestCertificate;
  let token = '';
  const t0 = Date.now();
  const step = (m: string) => process.stderr.write(`[service-rotation-gateway] ${m} at ${Math.round((Date.now() - t0) / 1000)} s\n`);
  const send = (agent?: https.Agent) => gatewayRequest({
    port: traefik.httpsPort, host: `${HOST}:${traefik.httpsPort}`, path: '/', tls: { ca: cert.caPem }, agent,
    headers: { authorization: `Bearer ${token}` },
  });

  /** The Deployment's current ReplicaSet hash once the rollout is complete (only its pods left, all ready), else undefined. */
  const settledHash = async (): Promise<string | undefined> => {
    const d = await kube.get('apps/v1', 'Deployment', NS, 'recipes');
    const s = d?.status ?? {};
    const want = d?.spec?.replicas ?? 1;
    if (!d || s.observedGeneration !== d.metadata.generation || s.updatedReplicas !== want || s.availableReplicas !== want || s.replicas !== want) return undefined;
    const revision = d.metadata.annotations?.['deployment.kubernetes.io/revision'];
    const rs = (await kube.list('apps/v1', 'ReplicaSet', NS, { labelSelector: 'familyhub.dev/service=recipes' })).items
      .find((r) => r.metadata.annotations?.['deployment.kubernetes.io/revision'] === revision);
    const hash = rs?.metadata.labels?.['pod-template-hash'] as string | undefined;
    const pods = (await kube.list('v1', 'Pod', NS, { labelSelector: 'familyhub.dev/service=recipes' })).items;
    const current = pods.length === want && pods.every((p) => p.metadata.labels?.['pod-template-hash'] === hash && !p.metadata.deletionTimestamp
      && p.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'));
    return hash && current ? hash : undefined;
  };
  const podNames = async () => (await kube.list('v1', 'Pod', NS, { labelSelector: 'familyhub.dev/service=recipes' })).items.map((p) => p.metadata.name as string);
  const templateHash = async () => (await kube.get('apps/v1', 'Deployment', NS, 'recipes'))!.spec.template.metadata.annotations?.['familyhub.dev/credentials-hash'] as string | undefined;

  /**
   * Runs `trigger` under load and waits, observing, until the Deployment
   * settled on a new ReplicaSet whose template carries a new credentials
   * hash and every old pod is gone; then a few more requests.
   */
  const rotationUnderLoad = async (trigger: () => Promise<unknown>) => {
    const before = { rs: await settledHash(), creds: await templateHash(), pods: await podNames() };
    expect(before.rs, 'the Deployment is settled before the rotation').toBeTruthy();
    const load = new Load(send);
    let during = 0;
    let after: { rs?: string; creds?: string } = {};
    try {
      await load.served(20);
      const start = load.ok;
      await trigger();
      await waitFor('rolled onto a new pod-template hash, old pods gone', async () => {
        const rs = await settledHash();
        if (!rs || rs === before.rs) return false;
        const creds = await templateHash();
        if (creds === before.creds) return false;
        after = { rs, creds };
        return !(await podNames()).some((n) => before.pods.includes(n));
      }, { timeoutMs: 150_000, intervalMs: 250 });
      during = load.ok - start;
      // Past the last old pod's exit: requests still land on the new pods only.
      await load.served(20);
    } finally {
      await load.stop();
    }
    return { before, after, during, load };
  };

  beforeAll(async () => {
    cert = domainCertificate(DOMAIN);
    cluster = await startCluster({ audit: false });
    kube = new KubeClient(cluster.cp.kubeConfig);
    step('cluster up');
    const image = await buildProjectImage({ from: 'head' });
    await cluster.node.importImage(image.archive);
    step('image imported');
    [pg, bao, idp] = await Promise.all([startPostgres({ podAccess: { address: BRIDGE_ADDRESS, cidr: POD_CIDR } }), startOpenBao(), startDevIdp({ allowedDomain: DOMAIN })]);
    // Forward-auth for bearer tokens only (no browser login here): the client settings are never used.
    auth = await startAuthService({
      OIDC_ISSUER_URL: idp.issuer, OIDC_AUDIENCE: 'familyhub', AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
      AUTH_DOMAIN: DOMAIN, AUTH_PUBLIC_URL: `https://auth.${DOMAIN}`, AUTH_CLIENT_ID: 'familyhub-auth', AUTH_COOKIE_SECRET: 'x'.repeat(32),
    });
    await installCrds(cluster.cp.kubeConfig);
    await installGatewayCrds(cluster.cp.kubeConfig, ['gateway-api', 'traefik']);
    await installRbac(cluster.cp.kubeConfig);
    // Traefik's own default throttle, as a production gateway reloads: a terminating pod stays routed that long.
    traefik = await startTraefik(cluster.cp, { throttleMs: 2000 });
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } }, { fieldManager: 'e2e-test' });
    await namespace(kube, GW_NS);
    await applyTlsSecret(kube, GW_NS, cert);
    await secret(kube, NS, 'pg-admin', { username: pg.user, password: pg.password });
    await secret(kube, NS, 'vault-token', { token: bao.rootToken });
    await secret(kube, NS, 'idp-token', { token: idp.initialAccessToken });
    await kube.apply({
      apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: NS },
      spec: {
        domain: DOMAIN, allowedEmailDomains: [DOMAIN],
        postgres: { host: BRIDGE_ADDRESS, port: pg.port, database: pg.database, sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
        vault: { address: bao.address, authMethod: 'token', tokenSecretRef: { name: 'vault-token' } },
        identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
        gateway: {
          gatewayName: 'family', gatewayNamespace: GW_NS, gatewayClassName: 'traefik',
          listeners: { httpPort: traefik.httpPort, httpsPort: traefik.httpsPort }, authService: { url: auth.url },
        },
        runtime: { image: image.ref },
      },
    }, { fieldManager: 'e2e-test' });
    op = await startOperator({
      kubeconfigPath: await cluster.cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
      name: 'operator-service-rotation-gateway',
      env: {
        FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_CONTROLLERS: 'service,databaseclaim,oidcclient,route',
        FAMILYHUB_DEPENDENCY_RETRY_MS: '2000', FAMILYHUB_RECHECK_MS: '2000',
      },
    });
    await kube.apply({
      apiVersion: API, kind: 'Service', metadata: { name: 'recipes', namespace: NS },
      spec: {
        familyHubRef: { name: 'home' }, image: image.ref, port: 8080, replicas: 2, host: HOST, command: ['node', '-e', APP],
        probes: { readiness: { path: '/healthz', periodSeconds: 1 } },
        needs: { database: { enabled: true }, oidc: { enabled: true }, route: {} },
      },
    }, { fieldManager: 'e2e-test' });
    token = await idp.issueAccessToken({ email: `alice@${DOMAIN}`, groups: ['parents'], audience: 'familyhub', expiresInSec: 900 });
    step('host services, Traefik and operator up');
  }, 600_000);

  afterAll(async () => {
    await op?.stop();
    await traefik?.stop();
    await cluster?.stop();
    await Promise.allSettled([pg?.stop(), bao?.stop(), idp?.stop(), auth?.remove()]);
  }, 120_000);

  it('the Service is Ready and served through Traefik only with a token', { timeout: 240_000 }, async () => {
    const s = await waitForObject(kube, { kind: 'Service', namespace: NS, name: 'recipes' }, 'Ready', isReady, 200_000);
    for (const c of ['DatabaseReady', 'IdentityReady', 'Available', 'RouteReady']) expect(condition(s, c), c).toMatchObject({ status: 'True' });
    // Traefik may load the router a moment after the Route reports Ready.
    await waitFor('served through Traefik', async () => (await send()).status === 200, { timeoutMs: 30_000 });
    const r = (await send()).json<Answer>();
    expect(r.user).toBe((await kube.readSecret(NS, 'recipes-db'))!.username);
    expect(r.client).toBe((await kube.readSecret(NS, 'recipes-oidc'))!['client-id']);
    // The gateway, not the app, turns away a request without a token.
    expect((await gatewayRequest({ port: traefik.httpsPort, host: `${HOST}:${traefik.httpsPort}`, tls: { ca: cert.caPem } })).status).toBe(401);
    await waitFor('rollout settled', async () => !!(await settledHash()), { timeoutMs: 60_000 });
    step('Ready through the gateway');
  });

  it('a database credential rotation rolls the pods with zero failed requests through the gateway', { timeout: 240_000 }, async () => {
    const oldUser = (await kube.readSecret(NS, 'recipes-db'))!.username;
    const t = { kube, namespace: NS, namespaceGiven: true };
    const { before, after, during, load } = await rotationUnderLoad(() => rotate(t, 'DatabaseClaim', 'recipes', { wait: false, timeoutMs: 0 }));
    const newUser = (await kube.readSecret(NS, 'recipes-db'))!.username;
    const users = new Set(load.answers.map((a) => a.user));
    step(`database rotation: ${load.ok} answered (${during} during the rollout), ${load.failures.length} failed, ReplicaSet ${before.rs} → ${after.rs}`);
    expect(load.failures, load.failures.slice(0, 10).join('\n')).toEqual([]);
    expect(during).toBeGreaterThanOrEqual(50);
    expect(after.rs).not.toBe(before.rs);
    expect(newUser).not.toBe(oldUser);
    expect(users).toContain(oldUser);
    expect(users).toContain(newUser);
    // The last answers come from the new pods, logged in as the new user.
    expect(load.answers.slice(-10).every((a) => a.user === newUser)).toBe(true);
  });

  it('an OIDC client secret rotation rolls the pods with zero failed requests through the gateway', { timeout: 240_000 }, async () => {
    const oldClient = (await kube.readSecret(NS, 'recipes-oidc'))!['client-id'];
    const oldHash = (await kube.get(API, 'OIDCClient', NS, 'recipes'))!.status.secretHash;
    const t = { kube, namespace: NS, namespaceGiven: true };
    const { before, after, during, load } = await rotationUnderLoad(() => rotate(t, 'OIDCClient', 'recipes', { wait: false, timeoutMs: 0 }));
    const client = (await kube.get(API, 'OIDCClient', NS, 'recipes'))!;
    const newClient = (await kube.readSecret(NS, 'recipes-oidc'))!['client-id'];
    step(`OIDC rotation: ${load.ok} answered (${during} during the rollout), ${load.failures.length} failed, ReplicaSet ${before.rs} → ${after.rs}`);
    expect(load.failures, load.failures.slice(0, 10).join('\n')).toEqual([]);
    expect(during).toBeGreaterThanOrEqual(50);
    expect(client.status.observedRotationGeneration).toBe(1);
    expect(client.status.secretHash).not.toBe(oldHash);
    expect(after.creds).not.toBe(before.creds);
    const clients = new Set(load.answers.map((a) => a.client));
    expect(clients).toContain(oldClient);
    expect(clients).toContain(newClient);
    expect(load.answers.slice(-10).every((a) => a.client === newClient)).toBe(true);
  });
});
