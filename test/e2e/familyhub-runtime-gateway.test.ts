// The FamilyHub with chat, audit and auth behind a real gateway, as a family
// meets it: the hub's runtime Services as pods on the real node, their
// Routes served by a real Traefik (its forward-auth asks the hub's own auth
// pod — no gateway.authService in the spec), a browser login through the
// dev IdP, chat over WebSocket through the gateway, and the audit events of
// those chats in PostgreSQL, written by the audit pod.
//
// Reaching host services: PostgreSQL, Redis and OpenBao listen on the CNI
// bridge address. The dev IdP's issuer must stay http://127.0.0.1:<port>
// (plain HTTP is allowed for loopback only), and a pod's loopback is its
// own: the host forwards the bridge's <port> to the IdP, and each pod's
// 127.0.0.1:<port> to the bridge (forwardPodLoopback), so tokens carry one
// issuer everywhere. Traefik runs on the host with the node's cluster DNS,
// as a gateway pod would resolve the auth Service. Needs root.
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { WebSocket, type ClientOptions } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { buildProjectImage } from '../../hack/images/images.js';
import { installGatewayCrds } from '../../hack/local/gateway-crds.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import {
  BRIDGE_ADDRESS, POD_CIDR, clusterResolvConf, exposeLoopbackToPods, forwardPodLoopback, startCluster, type Cluster,
} from '../../hack/local/node.js';
import { startOpenBao, type LocalOpenBao } from '../../hack/local/openbao.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { tail, waitFor } from '../../hack/local/process.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';
import { startTraefik, type Traefik } from '../../hack/local/traefik.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { Browser } from '../support/browser.js';
import { gatewayRequest, getObject } from '../support/gateway.js';
import { API, condition, namespace, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { applyTlsSecret, domainCertificate, type TestCertificate } from '../support/tls.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const NS = 'hub-gateway';
const GW_NS = 'gateway';
const DOMAIN = 'family.test';
const isRoot = process.getuid?.() === 0;

type Frame = Record<string, any>;

/** A chat client speaking to chat.<domain> through the gateway (TLS with SNI, the test CA). */
class GatewayChat {
  readonly frames: Frame[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly upgradeRefused: Promise<number>;
  private readonly ws: WebSocket;

  constructor(port: number, ca: string, token?: string) {
    this.ws = new WebSocket(`wss://127.0.0.1:${port}/api/chat/ws`, {
      headers: { host: `chat.${DOMAIN}:${port}`, ...(token ? { authorization: `Bearer ${token}` } : {}) },
      ca,
      // Passed through to tls.connect (ws's types leave it out): SNI is the name, the address is the gateway's.
      servername: `chat.${DOMAIN}`,
    } as ClientOptions);
    this.ws.on('message', (d) => this.frames.push(JSON.parse(d.toString()) as Frame));
    this.ws.on('error', () => {});
    this.opened = new Promise((resolve) => this.ws.once('open', () => resolve()));
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.upgradeRefused = new Promise((resolve) => this.ws.on('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      req.destroy();
    }));
  }

  send(frame: object): void {
    this.ws.send(JSON.stringify(frame));
  }

  async next(pred: (f: Frame) => boolean, timeoutMs = 15_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      if (Date.now() > deadline) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  close(): void {
    this.ws.close();
  }
}

describe.skipIf(!isRoot)('FamilyHub runtime behind a real gateway, with login', () => {
  let cluster: Cluster;
  let kube: KubeClient;
  let db: LocalPostgres;
  let redis: LocalRedis;
  let bao: LocalOpenBao;
  let idp: DevIdp;
  let traefik: Traefik;
  let op: RunningOperator;
  let cert: TestCertificate;
  let idpBridge: { stop(): Promise<void> } | undefined;
  let podLoopback: ReturnType<typeof forwardPodLoopback> | undefined;
  const t0 = Date.now();
  const step = (m: string) => process.stderr.write(`[familyhub-runtime-gateway] ${m} at ${Math.round((Date.now() - t0) / 1000)} s\n`);
  const origin = (host: string) => `https://${host}.${DOMAIN}:${traefik.httpsPort}`;
  const https = (host: string, opts: { path?: string; method?: string; headers?: Record<string, string>; body?: string } = {}) =>
    gatewayRequest({ port: traefik.httpsPort, host: `${host}.${DOMAIN}:${traefik.httpsPort}`, tls: { ca: cert.caPem }, ...opts });
  const tokens: Record<string, string> = {};

  const diagnostics = async () => {
    const lines: string[] = [];
    for (const kind of ['Service', 'Route', 'DatabaseClaim', 'OIDCClient']) {
      for (const o of (await kube.list(API, kind, NS)).items) {
        lines.push(`${kind} ${o.metadata.name}: ${JSON.stringify(o.status?.conditions?.map((c: { type: string; status: string; reason: string; message: string }) => [c.type, c.status, c.reason, c.message]))}`);
      }
    }
    const slices = await kube.request<{ items: any[] }>('GET', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`);
    for (const e of slices.items) {
      lines.push(`endpointslice ${e.metadata.name}: ${JSON.stringify(e.endpoints?.map((x: { addresses: string[]; conditions: unknown }) => [x.addresses, x.conditions]))}`);
    }
    for (const p of (await kube.list('v1', 'Pod', NS)).items) {
      lines.push(`pod ${p.metadata.name} ${p.status?.podIP}: ${p.status?.phase} ${JSON.stringify(p.status?.containerStatuses?.map((c: { ready: boolean; restartCount: number; state: unknown }) => [c.ready, c.restartCount, c.state]))}`);
      lines.push(await cluster.kubectl(['-n', NS, 'logs', p.metadata.name, '--tail', '8']).catch((e: Error) => `(logs: ${e.message.slice(0, 200)})`));
    }
    // Whether kube-proxy translates the auth Service's ClusterIP (Traefik's forward-auth goes through it).
    const nat = execFileSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`${NS}/home-auth`));
    lines.push('--- kube-proxy rules for home-auth', ...nat.slice(0, 6), '--- kube-proxy', tail(cluster.node.proxy.logFile, 8));
    return [...lines, `--- pod loopback forwarders: ${podLoopback?.namespaces().length}`, '--- traefik', await traefik.diagnostics(NS), traefik.logs().split('\n').slice(-10).join('\n'), '--- operator', op.logs().split('\n').slice(-25).join('\n')].join('\n');
  };

  beforeAll(async () => {
    cert = domainCertificate(DOMAIN);
    cluster = await startCluster({ audit: false });
    kube = new KubeClient(cluster.cp.kubeConfig);
    step('cluster up');
    const built = await buildProjectImage({ from: 'head' });
    await cluster.node.importImage(built.archive);
    step('image imported');
    [db, redis, bao, idp] = await Promise.all([
      startPostgres({ podAccess: { address: BRIDGE_ADDRESS, cidr: POD_CIDR } }),
      startRedis({ podAddress: BRIDGE_ADDRESS }),
      startOpenBao(),
      startDevIdp({ allowedDomain: DOMAIN }),
    ]);
    idpBridge = await exposeLoopbackToPods(idp.port);
    podLoopback = forwardPodLoopback([idp.port]);
    await installCrds(cluster.cp.kubeConfig);
    await installGatewayCrds(cluster.cp.kubeConfig, ['gateway-api', 'traefik']);
    await installRbac(cluster.cp.kubeConfig);
    traefik = await startTraefik(cluster.cp, { resolvConf: clusterResolvConf(GW_NS) });
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } }, { fieldManager: 'e2e-test' });
    await namespace(kube, GW_NS);
    await applyTlsSecret(kube, GW_NS, cert);
    await secret(kube, NS, 'pg-admin', { username: db.user, password: db.password });
    await secret(kube, NS, 'vault-token', { token: bao.rootToken });
    await secret(kube, NS, 'idp-token', { token: idp.initialAccessToken });
    op = await startOperator({
      kubeconfigPath: await cluster.cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
      name: 'operator-hub-gateway',
      env: {
        FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_CONTROLLERS: 'familyhub,service,databaseclaim,oidcclient,route',
        FAMILYHUB_DEPENDENCY_RETRY_MS: '2000', FAMILYHUB_RECHECK_MS: '2000',
      },
    });
    await kube.apply({
      apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: NS },
      spec: {
        domain: DOMAIN, allowedEmailDomains: [DOMAIN],
        postgres: { host: BRIDGE_ADDRESS, port: db.port, database: db.database, sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
        redis: { host: BRIDGE_ADDRESS, port: redis.port },
        vault: { address: bao.address, authMethod: 'token', tokenSecretRef: { name: 'vault-token' } },
        identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
        // No authService: the hub's own auth Service is the default.
        gateway: {
          gatewayName: 'family', gatewayNamespace: GW_NS, gatewayClassName: 'traefik',
          listeners: { httpPort: traefik.httpPort, httpsPort: traefik.httpsPort },
        },
        runtime: { image: built.ref, services: { chat: { enabled: true }, audit: { enabled: true }, auth: { enabled: true } } },
      },
    }, { fieldManager: 'e2e-test' });
    step('host services, Traefik and operator up');
    const issue = (email: string, groups: string[]) => idp.issueAccessToken({ email, groups, audience: 'familyhub', expiresInSec: 900 });
    [tokens.alice, tokens.bob] = await Promise.all([issue(`alice@${DOMAIN}`, ['parents']), issue(`bob@${DOMAIN}`, ['parents'])]);
  }, 900_000);

  afterAll(async () => {
    await op?.stop();
    await podLoopback?.stop();
    await traefik?.stop();
    await cluster?.stop();
    await Promise.allSettled([db?.stop(), redis?.stop(), bao?.stop(), idp?.stop(), idpBridge?.stop()]);
  }, 120_000);

  it('chat, audit and auth: pods Running, Routes Ready through Traefik, RuntimeReady=True; forward-auth goes to the hub\'s own auth Service, the spec untouched', { timeout: 420_000 }, async () => {
    let last = '';
    const h = await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'home' }, 'RuntimeReady=True', (o) => {
      last = JSON.stringify(o.status?.conditions ?? []);
      return condition(o, 'RuntimeReady')?.status === 'True' && condition(o, 'Ready')?.status === 'True';
    }, 360_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\nhub conditions: ${last}\n${await diagnostics()}`);
    });
    step('RuntimeReady');
    expect(condition(h, 'RuntimeReady')).toMatchObject({ reason: 'ServicesReady' });
    expect(h.status.endpoints).toEqual({ audit: `${origin('audit')}/`, auth: `${origin('auth')}/`, chat: `${origin('chat')}/` });
    // Derived, never written: the spec still names no auth service.
    expect(h.spec.gateway.authService).toBeUndefined();

    for (const svc of ['audit', 'auth', 'chat']) {
      const s = (await kube.get(API, 'Service', NS, `home-${svc}`))!;
      expect(condition(s, 'RouteReady')?.status, svc).toBe('True');
      const r = (await kube.get(API, 'Route', NS, `home-${svc}`))!;
      // The platform hostname is the hub's own Service's to claim.
      expect(condition(r, 'HostnameAccepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
      expect(condition(r, 'GatewayAccepted')?.status).toBe('True');
      expect(r.spec.hostname).toBe(`${svc}.${DOMAIN}`);
      const pods = (await kube.list('v1', 'Pod', NS, { labelSelector: `familyhub.dev/service=home-${svc}` })).items;
      expect(pods.some((p) => p.status?.phase === 'Running' && p.status?.containerStatuses?.every((c: { ready: boolean }) => c.ready)), `${svc} pod`).toBe(true);
      // Written once, complete: the first Deployment already had the children's facts (schema, client id), so no second rollout.
      const sets = await kube.request<{ items: KubeObject[] }>('GET', `/apis/apps/v1/namespaces/${NS}/replicasets`, { query: { labelSelector: `familyhub.dev/service=home-${svc}` } });
      expect(sets.items.map((r) => r.metadata.annotations?.['deployment.kubernetes.io/revision']), `${svc} ReplicaSets`).toEqual(['1']);
    }
    const mw = (await getObject(kube, { apiVersion: 'traefik.io/v1alpha1', kind: 'Middleware', namespace: NS, name: 'home-chat-auth' }))!;
    expect(new URL(mw.spec.forwardAuth.address).origin).toBe(`http://home-auth.${NS}.svc:8080`);
    // The auth service's own Route has nothing in front of it.
    expect(await getObject(kube, { apiVersion: 'traefik.io/v1alpha1', kind: 'Middleware', namespace: NS, name: 'home-auth-auth' })).toBeUndefined();
  });

  // The hub's defaults (no identity.defaultScopes): the auth pod asks for the scopes its OIDCClient was
  // registered with, which the dev IdP (oidc-provider) holds it to — one more (groups) and it refuses the login.
  it('browser login through the dev IdP: chat.<domain> sends to the auth pod, the IdP, back to the callback; the session opens chat and audit', { timeout: 120_000 }, async () => {
    const browser = new Browser({
      domain: DOMAIN, gatewayPort: traefik.httpsPort, ca: cert.caPem,
      rewrite: (u) => {
        if (u.origin === idp.issuer && u.pathname === '/auth') u.searchParams.set('login_hint', 'alice');
        return u;
      },
    });
    const target = `${origin('chat')}/health`;
    // Traefik may still be loading the chat router a moment after Ready.
    let seen = '';
    await waitFor('chat routed', async () => {
      const r = await browser.get(target);
      // Headers too: who answered (Traefik, the auth pod, a backend) is the first question when this times out.
      seen = `${r.status} ${JSON.stringify(r.headers)} ${r.body.slice(0, 200)}`;
      return r.status === 302;
    }, { timeoutMs: 30_000 }).catch(async (err: Error) => {
      throw new Error(`${err.message}; last answer: ${seen}\n${await diagnostics()}`);
    });
    const first = await browser.get(target);
    const login = new URL(first.headers.location as string);
    expect(login.origin).toBe(origin('auth'));
    expect(login.searchParams.get('rd')).toBe(target);

    const { res, hops } = await browser.navigate(target);
    expect(hops.some((x) => x.url.startsWith(`${idp.issuer}/auth`))).toBe(true);
    // The callback was answered by the auth pod, which redeemed the code at the IdP from inside the cluster.
    const callback = hops.find((x) => x.url.startsWith(`${origin('auth')}/auth/callback?`));
    // The auth pod's answer and its log (login callback rejected: why, which token endpoint) when it refuses.
    if (callback?.status !== 302) expect.fail(`callback answered ${callback?.status}: ${res.body.slice(0, 300)}\n${await diagnostics()}`);
    expect(res.status, `${res.status} ${res.body.slice(0, 200)}`).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
    expect(browser.cookieNames(`audit.${DOMAIN}`)).toContain('familyhub_session');
    expect((await browser.get(`${origin('audit')}/health`)).status).toBe(200);
    // Without the session: sent to the login, never through.
    expect((await new Browser({ domain: DOMAIN, gatewayPort: traefik.httpsPort, ca: cert.caPem }).get(target)).status).toBe(302);
  });

  let channel = '';
  const texts = [`hello from alice ${Date.now()}`, `and back from bob ${Date.now()}`];

  it('chat over WebSocket through the gateway with dev-IdP tokens: a direct channel, messages both ways; no token is refused at the gateway', { timeout: 120_000 }, async () => {
    const created = await https('chat', {
      path: '/api/chat/direct', method: 'POST',
      headers: { authorization: `Bearer ${tokens.alice}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email: `bob@${DOMAIN}` }),
    });
    if (created.status !== 201) expect.fail(`POST /api/chat/direct answered ${created.status} ${JSON.stringify(created.headers)} ${created.body.slice(0, 200)}\n${await diagnostics()}`);
    channel = (JSON.parse(created.body) as { id: string }).id;

    const alice = new GatewayChat(traefik.httpsPort, cert.caPem, tokens.alice);
    const bob = new GatewayChat(traefik.httpsPort, cert.caPem, tokens.bob);
    try {
      expect((await alice.next((f) => f.type === 'ready')).user).toBe(`alice@${DOMAIN}`);
      expect((await bob.next((f) => f.type === 'ready')).user).toBe(`bob@${DOMAIN}`);
      alice.send({ type: 'join', channel });
      bob.send({ type: 'join', channel });
      await alice.next((f) => f.type === 'joined' && f.channel === channel);
      await bob.next((f) => f.type === 'joined' && f.channel === channel);
      alice.send({ type: 'send', channel, text: texts[0], ref: 'a1' });
      await alice.next((f) => f.type === 'ack' && f.ref === 'a1');
      expect((await bob.next((f) => f.type === 'message' && f.text === texts[0])).from).toBe(`alice@${DOMAIN}`);
      bob.send({ type: 'send', channel, text: texts[1], ref: 'b1' });
      expect((await alice.next((f) => f.type === 'message' && f.text === texts[1])).from).toBe(`bob@${DOMAIN}`);
    } finally {
      alice.close();
      bob.close();
    }

    // Without a token the upgrade never reaches chat: the gateway's forward-auth answers 401.
    const anonymous = new GatewayChat(traefik.httpsPort, cert.caPem);
    expect(await anonymous.upgradeRefused).toBe(401);
  });

  it('the audit events of those chats are in PostgreSQL, stored by the audit pod', { timeout: 90_000 }, async () => {
    expect(channel).not.toBe('');
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      let rows: Array<{ actor: string; action: string }> = [];
      await waitFor('chat audit events stored', async () => {
        rows = (await admin.query<{ actor: string; action: string }>(
          'SELECT actor, action FROM audit.events WHERE target = $1 ORDER BY actor, action', [`chat/channel/${channel}`],
        )).rows;
        return rows.filter((r) => r.action === 'chat.message.send').length >= 2;
      }, { timeoutMs: 60_000, intervalMs: 250 });
      // Each message once, by who sent it (the identity chat took from the token), and the channel's creation.
      expect(rows.filter((r) => r.action === 'chat.message.send').map((r) => r.actor)).toEqual([`alice@${DOMAIN}`, `bob@${DOMAIN}`]);
      expect(rows.filter((r) => r.action === 'chat.channel.create').map((r) => r.actor)).toEqual([`alice@${DOMAIN}`]);
      // Written through the audit pod's claim login, not by the test or the admin.
      const writers = (await admin.query<{ usename: string }>("SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'audit-ingest'")).rows.map((r) => r.usename);
      expect(writers).toContain((await kube.readSecret(NS, 'home-audit-db'))!.username);
    } finally {
      await admin.end();
    }
  });

  it('no access token, client secret or database password in the operator\'s, Traefik\'s or a runtime pod\'s log', async () => {
    const logs = [op.logs(), traefik.logs()];
    for (const p of (await kube.list('v1', 'Pod', NS)).items) logs.push(await cluster.kubectl(['-n', NS, 'logs', p.metadata.name, '--all-containers']).catch(() => ''));
    const secrets = [...Object.values(tokens)];
    const names = [
      ...(await Promise.all(['home-chat', 'home-audit'].map(async (n) => (await kube.get(API, 'DatabaseClaim', NS, n))!.status.secretName as string))),
      (await kube.get(API, 'OIDCClient', NS, 'home-auth'))!.status.secretName as string,
    ];
    for (const name of names) {
      const s = await kube.readSecret(NS, name);
      for (const k of ['password', 'client-secret']) if (s?.[k]) secrets.push(s[k]!);
    }
    expect(secrets.length).toBeGreaterThanOrEqual(5);
    const all = logs.join('\n');
    for (const s of secrets) expect(all.includes(s)).toBe(false);
  });
});
