// The FamilyHub runs its own runtime as owned Service objects, on the real
// node: the project image, PostgreSQL/Redis on the bridge address, OpenBao
// for the claims' rotated logins, the dev IdP for the auth service's own
// OIDC client. chat and audit come up as real pods (Running, Ready from the
// kubelet's probes against the runtime's /ready), RuntimeReady rolls up
// from their Services, status.endpoints lists them; an audit event on the
// hub's stream lands in PostgreSQL through the audit pod, written by the
// claim's role into the tables the operator migrated. Enabling auth
// registers its OIDC client on auth.<domain>/auth/callback; disabling it
// deletes its Service. Redis requires a password (spec.redis.passwordSecretRef):
// the runtime Services wait for its Secret, then get it mounted as a file
// and log in with it; it shows up in no log. Needs root (skipped otherwise).
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { buildProjectImage } from '../../hack/images/images.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { BRIDGE_ADDRESS, POD_CIDR, startCluster, type Cluster } from '../../hack/local/node.js';
import { startOpenBao, type LocalOpenBao } from '../../hack/local/openbao.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { waitFor } from '../../hack/local/process.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';
import { auditStream } from '../../src/controllers/familyhub/runtime.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { createAuditPublisher } from '../../src/runtime-services/audit-publisher/publisher.js';
import { API, condition, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const NS = 'hub-runtime';
const isRoot = process.getuid?.() === 0;
const REDIS_SECRET = 'redis-auth';

/**
 * Every log file under `dir` (component logs are `<name>.log`; the
 * kubelet's pod logs are all logs). Containerd's task state comes and goes
 * while the walk runs: what vanished held no log.
 */
function logFiles(dir: string, all = false): string[] {
  const out: string[] = [];
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw err;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...logFiles(p, all || e.name === 'pod-logs'));
    else if (e.isFile() && (all || e.name.endsWith('.log'))) out.push(p);
  }
  return out;
}
const holds = (file: string, text: string) => {
  try {
    return readFileSync(file).includes(text);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
};

describe.skipIf(!isRoot)('FamilyHub runtime as owned Services on the real node', () => {
  let cluster: Cluster;
  let kube: KubeClient;
  let db: LocalPostgres;
  let redis: LocalRedis;
  let bao: LocalOpenBao;
  let idp: DevIdp;
  let op: RunningOperator;
  let image: string;
  // base64url: also a valid redis.conf word; the Secret holds it with a trailing newline, as `kubectl create secret --from-file` would.
  const redisPassword = randomBytes(24).toString('base64url');
  /** Every password the suite hands out: none may show up in a log. */
  const passwords = [redisPassword];
  const t0 = Date.now();
  const step = (m: string) => process.stderr.write(`[familyhub-runtime] ${m} at ${Math.round((Date.now() - t0) / 1000)} s\n`);

  const hubSpec = (services: Record<string, unknown>) => ({
    domain: 'family.test', allowedEmailDomains: ['family.test'],
    postgres: { host: BRIDGE_ADDRESS, port: db.port, database: db.database, sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
    redis: { host: BRIDGE_ADDRESS, port: redis.port, passwordSecretRef: { name: REDIS_SECRET } },
    vault: { address: bao.address, authMethod: 'token', tokenSecretRef: { name: 'vault-token' } },
    identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
    runtime: { image, services },
  });
  const applyHub = (services: Record<string, unknown>) =>
    kube.apply({ apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: NS }, spec: hubSpec(services) }, { fieldManager: 'e2e-test' });
  const waitHub = (what: string, pred: (o: KubeObject) => boolean, ms = 240_000) => waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'home' }, what, pred, ms);
  const pods = async (svc: string) => (await kube.list('v1', 'Pod', NS, { labelSelector: `familyhub.dev/service=home-${svc}` })).items;

  /** What a failure prints: every Service's conditions, the pods' states and logs, the operator's last lines. */
  const diagnostics = async () => {
    const svcs = (await kube.list(API, 'Service', NS)).items.map((s) => `${s.metadata.name}: ${JSON.stringify(s.status?.conditions?.map((c: { type: string; status: string; reason: string; message: string }) => [c.type, c.status, c.reason, c.message]))}`);
    const claims = (await kube.list(API, 'DatabaseClaim', NS)).items.map((s) => `claim ${s.metadata.name}: ${JSON.stringify(s.status?.conditions?.map((c: { type: string; status: string; reason: string }) => [c.type, c.status, c.reason]))}`);
    const podLines: string[] = [];
    for (const p of (await kube.list('v1', 'Pod', NS)).items) {
      podLines.push(`pod ${p.metadata.name}: ${p.status?.phase} ${JSON.stringify(p.status?.containerStatuses?.map((c: { ready: boolean; restartCount: number; state: unknown }) => [c.ready, c.restartCount, c.state]))}`);
      podLines.push(await cluster.kubectl(['-n', NS, 'logs', p.metadata.name, '--tail', '8']).catch((e: Error) => `(logs: ${e.message.slice(0, 200)})`));
      podLines.push(await cluster.kubectl(['-n', NS, 'logs', p.metadata.name, '--tail', '8', '--previous']).catch(() => ''));
    }
    return [...svcs, ...claims, ...podLines, '--- operator', op.logs().split('\n').slice(-25).join('\n')].join('\n');
  };

  beforeAll(async () => {
    cluster = await startCluster({ audit: false });
    kube = new KubeClient(cluster.cp.kubeConfig);
    step('cluster up');
    const built = await buildProjectImage({ from: 'head' });
    image = built.ref;
    await cluster.node.importImage(built.archive);
    step('image imported');
    [db, redis, bao, idp] = await Promise.all([
      startPostgres({ podAccess: { address: BRIDGE_ADDRESS, cidr: POD_CIDR } }),
      startRedis({ podAddress: BRIDGE_ADDRESS, password: redisPassword }),
      startOpenBao(),
      startDevIdp({ allowedDomain: 'family.test' }),
    ]);
    await installCrds(cluster.cp.kubeConfig);
    await installRbac(cluster.cp.kubeConfig);
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } }, { fieldManager: 'e2e-test' });
    await secret(kube, NS, 'pg-admin', { username: db.user, password: db.password });
    await secret(kube, NS, 'vault-token', { token: bao.rootToken });
    await secret(kube, NS, 'idp-token', { token: idp.initialAccessToken });
    op = await startOperator({
      kubeconfigPath: await cluster.cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
      name: 'operator-hub-runtime',
      env: { FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_CONTROLLERS: 'familyhub,service,databaseclaim,oidcclient', FAMILYHUB_DEPENDENCY_RETRY_MS: '2000', FAMILYHUB_RECHECK_MS: '2000' },
    });
    step('host services and operator up');
  }, 600_000);

  afterAll(async () => {
    await op?.stop();
    await cluster?.stop();
    await Promise.allSettled([db?.stop(), redis?.stop(), bao?.stop(), idp?.stop()]);
  }, 120_000);

  it('chat and audit run as the hub\'s Services: pods Running and Ready, RuntimeReady=True, endpoints listed', { timeout: 300_000 }, async () => {
    await applyHub({ chat: { enabled: true }, audit: { enabled: true } });
    // No Redis password Secret yet: once the claim's Secret is there, it alone holds the Deployment back (no pod that could only crash-loop).
    const waiting = await waitForObject(kube, { kind: 'Service', namespace: NS, name: 'home-chat' }, `waiting for Secret ${REDIS_SECRET} alone`,
      (o) => condition(o, 'Available')?.reason === 'WaitingForCredentials' && condition(o, 'Available')?.message === `Deployment waits for Secret ${REDIS_SECRET}`, 180_000)
      .catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await diagnostics()}`);
      });
    expect(condition(waiting, 'Available')?.status).toBe('False');
    expect(await kube.get('apps/v1', 'Deployment', NS, 'home-chat')).toBeUndefined();
    step('Deployment waits for the Redis password Secret');
    await secret(kube, NS, REDIS_SECRET, { password: `${redisPassword}\n` });
    let last = '';
    const h = await waitHub('RuntimeReady=True', (o) => {
      last = JSON.stringify(o.status?.conditions ?? []);
      return condition(o, 'RuntimeReady')?.status === 'True' && condition(o, 'Ready')?.status === 'True';
    }, 200_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\nhub conditions: ${last}\n${await diagnostics()}`);
    });
    step('RuntimeReady');
    expect(condition(h, 'RuntimeReady')).toMatchObject({ reason: 'ServicesReady' });
    expect(h.status.services).toEqual(['audit', 'chat']);
    expect(h.status.endpoints).toEqual({ audit: 'https://audit.family.test/', chat: 'https://chat.family.test/' });

    for (const svc of ['chat', 'audit']) {
      const s = (await kube.get(API, 'Service', NS, `home-${svc}`))!;
      // Owned by the hub (controller reference), so it goes with the hub.
      expect(s.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'FamilyHub', name: 'home', uid: h.metadata.uid, controller: true })]);
      expect(s.spec).toMatchObject({ image, host: `${svc}.family.test`, needs: { database: { enabled: true } } });
      const running = (await pods(svc)).filter((p) => p.status?.phase === 'Running' && p.status?.containerStatuses?.every((c: { ready: boolean }) => c.ready));
      // At least the one replica; a second while the Deployment rolls onto the claim Secret's final hash.
      expect(running.length, `${svc} pods`).toBeGreaterThanOrEqual(1);
      // Credentials reached the pod as files only: no env value holds a login.
      const env = running[0]!.spec.containers[0].env as Array<{ name: string; value?: string }>;
      expect(env.find((e) => e.name === 'RUNTIME_SERVICES')?.value).toBe(svc);
      expect(env.filter((e) => /postgres(ql)?:\/\/[^/]*@/.test(e.value ?? '')).map((e) => e.name)).toEqual([]);
      // The Redis password too: a read-only file of the hub's Secret, under the operator's prefix.
      expect(env.find((e) => e.name === 'REDIS_PASSWORD_FILE')?.value).toBe('/var/run/familyhub/redis/password');
      expect(env.filter((e) => (e.value ?? '').includes(redisPassword)).map((e) => e.name)).toEqual([]);
      expect(running[0]!.spec.volumes).toContainEqual(expect.objectContaining({ name: 'redis-credentials', secret: expect.objectContaining({ secretName: REDIS_SECRET }) }));
    }
    // The Secret is read, not taken over.
    expect((await kube.get('v1', 'Secret', NS, REDIS_SECRET))!.metadata.ownerReferences ?? []).toEqual([]);
    // Redis itself says the pods are logged in: their named clients are connected (a client without AUTH could not even name itself).
    const admin0 = new Redis(redis.url, { password: redisPassword, lazyConnect: true });
    await admin0.connect();
    try {
      await waitFor('runtime clients logged in to Redis', async () => {
        const names = new Set([...((await admin0.client('LIST')) as string).matchAll(/ name=(\S+)/g)].map((m) => m[1]));
        return ['chat-commands', 'chat-subscriber', 'audit-reader', 'audit-commands'].every((n) => names.has(n));
      }, { timeoutMs: 30_000, intervalMs: 250 });
    } finally {
      admin0.disconnect();
    }
    // The chat schema is the claim's, and the pods log in with the claim's rotated (Vault-issued) roles.
    const claim = (await kube.get(API, 'DatabaseClaim', NS, 'home-chat'))!;
    expect(claim.status.schema).toBe('chat');
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      const sessions = (await admin.query<{ usename: string; application_name: string }>(
        "SELECT usename, application_name FROM pg_stat_activity WHERE application_name IN ('chat', 'audit-ingest')",
      )).rows;
      const chatUser = (await kube.readSecret(NS, 'home-chat-db'))!.username;
      expect(sessions.filter((s) => s.application_name === 'chat').map((s) => s.usename)).toContain(chatUser);
      expect(sessions.every((s) => s.usename !== db.user)).toBe(true);
    } finally {
      await admin.end();
    }
  });

  it('an audit event on the hub\'s stream is stored by the audit pod, as the claim\'s writer role, not the owner', async () => {
    const client = new Redis(redis.url, { password: redisPassword, lazyConnect: true });
    await client.connect();
    const marker = `e2e-${Date.now()}`;
    try {
      await createAuditPublisher(client, { stream: auditStream({ metadata: { name: 'home', namespace: NS } }), source: 'e2e' })
        .publish({ actor: 'ada@family.test', action: 'chat.message.send', target: `channel/${marker}`, outcome: 'success' });
    } finally {
      client.disconnect();
    }
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await waitFor('audit event in PostgreSQL', async () =>
        (await admin.query('SELECT 1 FROM audit.events WHERE target = $1', [`channel/${marker}`])).rowCount === 1, { timeoutMs: 60_000, intervalMs: 250 });
      const claim = (await kube.get(API, 'DatabaseClaim', NS, 'home-audit'))!;
      const owner = (await admin.query<{ o: string }>("SELECT tableowner AS o FROM pg_tables WHERE schemaname = 'audit' AND tablename = 'events'")).rows[0]!.o;
      // The writer may insert, and is neither the tables' owner nor a member of it.
      expect(owner).not.toBe(claim.status.ownerRole);
      const r = (await admin.query<{ ins: boolean; upd: boolean; member: boolean }>(
        "SELECT has_table_privilege($1, 'audit.events', 'INSERT') AS ins, has_table_privilege($1, 'audit.events', 'UPDATE') AS upd, pg_has_role($1, $2, 'MEMBER') AS member",
        [claim.status.ownerRole, owner],
      )).rows[0]!;
      expect(r).toEqual({ ins: true, upd: false, member: false });
    } finally {
      await admin.end();
    }
  });

  it('a new password in the Secret rolls the pods, and they log in with it', { timeout: 240_000 }, async () => {
    const next = randomBytes(24).toString('base64url');
    passwords.push(next);
    const hashOf = async (svc: string) => (await kube.get('apps/v1', 'Deployment', NS, `home-${svc}`))?.spec.template.metadata.annotations?.['familyhub.dev/credentials-hash'];
    const before = { chat: await hashOf('chat'), audit: await hashOf('audit') };
    expect(before.chat && before.audit).toBeTruthy();
    const admin = new Redis(redis.url, { password: redisPassword, lazyConnect: true });
    await admin.connect();
    try {
      // Both passwords hold while the pods roll (the default user may have several).
      await admin.call('ACL', 'SETUSER', 'default', `>${next}`);
      await secret(kube, NS, REDIS_SECRET, { password: `${next}\n` });
      for (const svc of ['chat', 'audit'] as const) {
        await waitFor(`${svc} rolled onto the new password and available`, async () => {
          const s = await kube.get(API, 'Service', NS, `home-${svc}`);
          const now = await hashOf(svc);
          return now !== before[svc] && s?.status?.credentialsHash === now && condition(s!, 'Available')?.status === 'True';
        }, { timeoutMs: 180_000, intervalMs: 500 }).catch(async (err: Error) => {
          throw new Error(`${err.message}\n${await diagnostics()}`);
        });
      }
      // The old password goes, and every connection made with it: only a client holding the new one can name itself again.
      await admin.call('ACL', 'SETUSER', 'default', `<${redisPassword}`);
      await admin.call('CLIENT', 'KILL', 'TYPE', 'normal');
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await waitFor('runtime clients logged in with the new password', async () => {
        const names = new Set([...((await admin.client('LIST')) as string).matchAll(/ name=(\S+)/g)].map((m) => m[1]));
        return ['chat-commands', 'chat-subscriber', 'audit-reader', 'audit-commands'].every((n) => names.has(n));
      }, { timeoutMs: 60_000, intervalMs: 250 }).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await diagnostics()}`);
      });
    } finally {
      admin.disconnect();
    }
    // The old one is refused now: what the pods log in with is the new one. (A bare socket: ioredis opens with HELLO, which needs AUTH first.)
    const authReply = (pw: string) => new Promise<string>((resolve, reject) => {
      const s = net.connect(redis.port, '127.0.0.1');
      s.setTimeout(5000, () => {
        s.destroy();
        reject(new Error('Redis did not answer AUTH'));
      });
      s.on('connect', () => s.write(`*2\r\n$4\r\nAUTH\r\n$${Buffer.byteLength(pw)}\r\n${pw}\r\n`));
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString());
      });
      s.on('error', reject);
    });
    expect(await authReply(redisPassword)).toMatch(/^-WRONGPASS/);
    expect(await authReply(next)).toBe('+OK\r\n');
  });

  it('auth gets its own OIDC client on auth.<domain>; disabling it deletes its Service', async () => {
    await applyHub({ chat: { enabled: true }, audit: { enabled: true }, auth: { enabled: true } });
    const client = await waitForObject(kube, { kind: 'OIDCClient', namespace: NS, name: 'home-auth' }, 'registered', (o) => condition(o, 'Ready')?.status === 'True', 120_000);
    expect(client.spec.redirectUris).toEqual(['https://auth.family.test/auth/callback']);
    const h = await waitHub('auth listed', (o) => !!o.status?.endpoints?.auth);
    expect(h.status.endpoints.auth).toBe('https://auth.family.test/');
    expect(h.status.services).toEqual(['audit', 'auth', 'chat']);
    // Its pod starts from the mounted client files (id, secret, derived cookie key) and runs.
    await waitFor('auth pod running', async () => (await pods('auth')).some((p) => p.status?.containerStatuses?.[0]?.state?.running), { timeoutMs: 120_000, intervalMs: 500 });

    await applyHub({ chat: { enabled: true }, audit: { enabled: true } });
    await waitFor('auth Service deleted', async () => !(await kube.get(API, 'Service', NS, 'home-auth')), { timeoutMs: 60_000, intervalMs: 250 });
    const after = await waitHub('auth gone from status', (o) => !o.status?.endpoints?.auth && condition(o, 'RuntimeReady')?.status === 'True');
    expect(after.status.services).toEqual(['audit', 'chat']);
  });

  it('the Redis password is in no captured log: pods (every container run, from the kubelet\'s log directory), node, control plane, operator', async () => {
    const files = [...logFiles(cluster.node.dir), ...logFiles(cluster.cp.dir)];
    // The pod logs are there, so the search covers what the runtime wrote.
    expect(files.some((f) => f.includes(`${path.sep}pod-logs${path.sep}${NS}_home-chat-`))).toBe(true);
    for (const pw of passwords) {
      expect(files.filter((f) => holds(f, pw))).toEqual([]);
      expect(op.logs()).not.toContain(pw);
    }
  });
});
