// kubectl-familyhub through the real kubectl plugin mechanism (the kubectl
// built with the node, bin/ on PATH) against a real control plane with the
// operator running as its ServiceAccount under config/rbac, real PostgreSQL
// and the dev IdP; the audit commands against a real audit service process.
// docs/walkthrough.md is executed here too, block by block, so it cannot rot.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { readAuditEvents, startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { waitFor } from '../../hack/local/process.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';
import { KubeClient } from '../../src/core/kube-client.js';
import { registerResource } from '../../src/core/resources.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { createAuditPublisher } from '../../src/runtime-services/audit-publisher/publisher.js';
import { API, condition, isReady, namespace, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { createAuditDatabase, spawnRuntime, superuserUrl, type RuntimeProcess } from './runtime-harness.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// The namespace, hub and domain `npm run dev` creates, so the walkthrough reads the same there.
const NS = 'family';
const DOMAIN = 'home.family.test';
const MAIL = 'family.test';

let cp: ControlPlane;
let kube: KubeClient;
let db: LocalPostgres;
let idp: DevIdp;
let redis: LocalRedis;
let op: RunningOperator;
let saKubeconfig: string;
let kubectl: string;
const work = mkdtempSync(path.join(os.tmpdir(), 'familyhub-cli-'));

interface Run { code: number; stdout: string; stderr: string }

/** Any command with kubectl and bin/ (the plugin) on PATH, as a user's shell would have them. */
function sh(command: string, opts: { env?: Record<string, string | undefined>; cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', command], {
      cwd: opts.cwd ?? work,
      env: { ...process.env, PATH: `${path.join(root, 'bin')}:${path.dirname(kubectl)}:${process.env.PATH}`, KUBECONFIG: cp.kubeconfigPath, ...opts.env },
      timeout: 180_000,
      maxBuffer: 16 * 1024 * 1024,
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }));
  });
}

/** `kubectl familyhub <args>`: kubectl finds bin/kubectl-familyhub on PATH and execs it. */
const plugin = (args: string, opts: { env?: Record<string, string | undefined> } = {}) => sh(`kubectl familyhub ${args}`, opts);

const apply = (o: KubeObject) => kube.apply(o, { fieldManager: 'e2e-test' });

function hub(name: string, spec: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: API, kind: 'FamilyHub', metadata: { name, namespace: NS },
    spec: {
      domain: DOMAIN, allowedEmailDomains: [MAIL],
      postgres: { host: '127.0.0.1', port: db.port, database: 'postgres', sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
      identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
      runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
      ...spec,
    },
  };
}

const operatorEnv = {
  FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_CONTROLLERS: 'familyhub,databaseclaim,oidcclient,service',
  FAMILYHUB_RECHECK_MS: '1000', FAMILYHUB_DEPENDENCY_RETRY_MS: '2000', FAMILYHUB_IDP_RETRY_MS: '2000',
};

/** A login with the credentials in a claim's Secret, as the app would make it. */
async function loginWith(secretName: string): Promise<{ login: string; user: string; password: string }> {
  const s = (await kube.readSecret(NS, secretName))!;
  const c = new pg.Client({ host: s.host, port: Number(s.port), database: s.database, user: s.username, password: s.password });
  await c.connect();
  try {
    const r = await c.query('SELECT current_user AS u');
    // current_user is the claim's owner role the login switches to; the login itself is the Secret's username.
    return { login: s.username!, user: r.rows[0].u, password: s.password! };
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  // The kubectl of the pinned release, built with the node (cached; hack/test.sh builds it first).
  const built = execFileSync('bash', [path.join(root, 'hack/node/build.sh'), 'kubernetes'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  kubectl = built.split('\n').find((l) => l.startsWith('kubectl '))!.slice('kubectl '.length).trim();
  [cp, db, idp, redis] = await Promise.all([startControlPlane(), startPostgres(), startDevIdp({ allowedDomain: MAIL }), startRedis()]);
  kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installRbac(cp.kubeConfig);
  await namespace(kube, NS);
  await secret(kube, NS, 'pg-admin', { username: db.user, password: db.password });
  await secret(kube, NS, 'idp-token', { token: idp.initialAccessToken });
  await apply(hub('home'));
  saKubeconfig = await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
  op = await startOperator({ kubeconfigPath: saKubeconfig, name: 'operator-cli', env: operatorEnv });
  await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'home' }, 'Ready', isReady);
}, 300_000);

afterAll(async () => {
  await op?.stop();
  await Promise.allSettled([cp?.stop(), db?.stop(), idp?.stop(), redis?.stop()]);
});

describe('kubectl familyhub status / rotate / plan', () => {
  it('is found by kubectl as a plugin, and refuses bad usage with exit code 2', async () => {
    const list = await sh('kubectl plugin list');
    expect(list.stdout).toContain(path.join(root, 'bin/kubectl-familyhub'));
    const help = await plugin('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/kubectl familyhub status \[<kind>\/<name>\]/);
    const bad = await plugin('status pod/x');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown kind "pod"/);
    const ctx = await plugin('status --context nowhere');
    expect(ctx.code).toBe(2);
    expect(ctx.stderr).toMatch(/context "nowhere" not found/);
  });

  it('status without a name: every FamilyHub object with Ready and reason, -A and -o json', async () => {
    await apply({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name: 'app', namespace: NS }, spec: { familyHubRef: { name: 'home' }, credentials: { mode: 'Static' } } });
    await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'app' }, 'Ready', isReady);
    const r = await plugin('status -A');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^KIND\s+NAMESPACE\s+NAME\s+READY\s+REASON\s+AGE/m);
    expect(r.stdout).toMatch(/^FamilyHub\s+family\s+home\s+True\s+\S+/m);
    expect(r.stdout).toMatch(/^DatabaseClaim\s+family\s+app\s+True\s+/m);
    expect(r.stdout).not.toMatch(/\u001b\[/); // not a terminal: no colour codes
    const j = JSON.parse((await plugin(`status -n ${NS} -o json`)).stdout);
    expect(j.rows).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'DatabaseClaim', namespace: NS, name: 'app', ready: 'True' })]));
  });

  it('status dbc/<name>: the claim\'s conditions and its Secret as a child, no credential in the output', async () => {
    const r = await plugin(`status dbc/app -n ${NS}`);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^DatabaseClaim family\/app\s+Ready=True/);
    expect(r.stdout).toMatch(/│\s+CONDITION\s+STATUS\s+REASON\s+AGE\s+MESSAGE/);
    expect(r.stdout).toMatch(/│\s+PostgresReady\s+True\s+/);
    expect(r.stdout).toMatch(/│\s+schema: \S+/);
    expect(lines).toContain('└─ Secret app-db');
    const password = (await kube.readSecret(NS, 'app-db'))!.password!;
    expect(r.stdout).not.toContain(password);

    const j = JSON.parse((await plugin(`status databaseclaim/app -n ${NS} -o json`)).stdout);
    expect(j.node).toMatchObject({ kind: 'DatabaseClaim', name: 'app', namespace: NS });
    expect(j.node.conditions.find((c: { type: string }) => c.type === 'Ready').status).toBe('True');
    expect(j.node.children).toEqual([expect.objectContaining({ kind: 'Secret', name: 'app-db', children: [] })]);
    expect(JSON.stringify(j)).not.toContain(password);

    // The context's namespace is the default, as with kubectl.
    const cfg = parse(readFileSync(cp.kubeconfigPath, 'utf8'));
    const base = cfg.contexts[0].context;
    cfg.contexts.push({ name: 'family', context: { ...base, namespace: NS } });
    const file = path.join(work, 'kubeconfig-family');
    writeFileSync(file, stringify(cfg), { mode: 0o600 });
    const viaContext = await plugin('status dbc/app --context family', { env: { KUBECONFIG: file } });
    expect(viaContext.code).toBe(0);
    expect(viaContext.stdout.split('\n')[0]).toMatch(/^DatabaseClaim family\/app\s+Ready=True/);
  });

  it('rotate dbc/<name>: a new password that logs in to PostgreSQL', async () => {
    const before = await loginWith('app-db');
    const r = await plugin(`rotate dbc/app -n ${NS} --timeout 90s`);
    expect(r.stderr).toMatch(/waiting for DatabaseClaim family\/app to issue credentials for generation 1/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^DatabaseClaim family\/app: new credentials for generation 1 in Secret app-db \(rotated at \S+; via DatabaseClaim app \(spec.credentials.rotateGeneration\)\)$/m);
    const claim = (await kube.get(API, 'DatabaseClaim', NS, 'app'))!;
    expect(claim.spec.credentials.rotateGeneration).toBe(1);
    expect(claim.status.observedRotateGeneration).toBe(1);
    const after = await loginWith('app-db');
    expect(after.password).not.toBe(before.password);
    expect(after.login).not.toBe(before.login); // Static mode alternates between its two logins
    expect(after.user).toBe(before.user); // both act as the claim's owner role
    expect(r.stdout + r.stderr).not.toContain(after.password);

    // --no-wait returns at once with the bumped generation.
    const quick = JSON.parse((await plugin(`rotate dbc/app -n ${NS} --no-wait -o json`)).stdout);
    expect(quick).toMatchObject({ kind: 'DatabaseClaim', name: 'app', generation: 2, done: false });
    await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'app' }, 'generation 2 issued', (o) => isReady(o) && o.status?.observedRotateGeneration === 2);
  });

  it('rotate oidc/<name>: a new client secret from the IdP', async () => {
    await apply({ apiVersion: API, kind: 'OIDCClient', metadata: { name: 'web', namespace: NS }, spec: { familyHubRef: { name: 'home' }, redirectUris: [`https://web.${DOMAIN}/oauth2/callback`] } });
    await waitForObject(kube, { kind: 'OIDCClient', namespace: NS, name: 'web' }, 'Ready', isReady);
    const before = (await kube.readSecret(NS, 'web-oidc'))!;
    const r = await plugin(`rotate oidc/web -n ${NS}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/OIDCClient family\/web: new credentials for generation 1 in Secret web-oidc/);
    const after = (await kube.readSecret(NS, 'web-oidc'))!;
    expect(after['client-secret']).not.toBe(before['client-secret']);
    expect(r.stdout + r.stderr).not.toContain(after['client-secret']!);
  });

  it('plan <file>: a Service\'s dry run and the children it would get; nothing is written', async () => {
    const file = path.join(work, 'planned.yaml');
    writeFileSync(file, stringify({
      apiVersion: API, kind: 'Service', metadata: { name: 'planned' },
      spec: { familyHubRef: { name: 'home' }, image: 'registry.family.test/planned:1.0.0', port: 8080, host: `planned.${DOMAIN}`, needs: { database: { enabled: true }, oidc: { enabled: true }, route: {} } },
    }));
    const from = readAuditEvents(cp.auditLogPath).length;
    const r = await plugin(`plan ${file} -n ${NS}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Service family\/planned$/m);
    expect(r.stdout).toMatch(/^Service\s+planned\s+Create\s*$/m);
    expect(r.stdout).toMatch(/^DatabaseClaim\s+planned\s+Create\s*$/m);
    expect(r.stdout).toMatch(/^OIDCClient\s+planned\s+Create\s*$/m);
    expect(r.stdout).toMatch(/^Deployment\s+planned\s+Waiting\s+created once the database and OIDC Secrets exist$/m);
    expect(r.stdout).toMatch(/^Route\s+planned\s+Waiting\s+created once a replica is available$/m);
    expect(r.stdout).toMatch(/Nothing was written/);
    // Nothing exists afterwards, and the apiserver saw only a dry run for it.
    expect(await kube.get(API, 'Service', NS, 'planned')).toBeUndefined();
    expect(await kube.get(API, 'DatabaseClaim', NS, 'planned')).toBeUndefined();
    const writes = (readAuditEvents(cp.auditLogPath).slice(from) as Array<{ verb: string; requestURI?: string; objectRef?: { resource?: string; name?: string } }>)
      .filter((e) => !['get', 'list', 'watch'].includes(e.verb) && e.objectRef?.name === 'planned');
    expect(writes.length).toBeGreaterThan(0);
    for (const w of writes) expect(w.requestURI).toMatch(/[?&]dryRun=All/);
  });

  it('plan shows an update by field, a refused spec with the apiserver\'s message, and a child name someone else holds', async () => {
    const file = path.join(work, 'several.yaml');
    const svc = (name: string, spec: Record<string, unknown>) => ({ apiVersion: API, kind: 'Service', metadata: { name, namespace: NS }, spec: { familyHubRef: { name: 'home' }, port: 8080, host: `${name}.${DOMAIN}`, ...spec } });
    // As `kubectl apply --server-side` would (field manager "kubectl"), so the plan's dry run owns the same fields.
    await kube.apply(svc('existing', { image: 'registry.family.test/existing:1.0.0' }) as KubeObject, { fieldManager: 'kubectl', force: false });
    await waitFor('Deployment existing created', async () => !!(await kube.get('apps/v1', 'Deployment', NS, 'existing')));
    await apply({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name: 'taken', namespace: NS }, spec: { familyHubRef: { name: 'home' } } });
    writeFileSync(file, [
      svc('existing', { image: 'registry.family.test/existing:2.0.0' }),
      svc('leaky', { image: 'x:1', env: [{ name: 'DB_PASSWORD', value: 'hunter2' }] }),
      svc('taken', { image: 'x:1', needs: { database: { enabled: true } } }),
    ].map((o) => stringify(o)).join('---\n'));
    const r = await plugin(`plan ${file}`);
    expect(r.code).toBe(1); // kubectl would refuse one, the operator another
    expect(r.stdout).toMatch(/^Service\s+existing\s+Update\s+spec\.image\s*$/m);
    expect(r.stdout).toMatch(/^Deployment\s+existing\s+Exists\s+owned by this Service/m);
    expect(r.stdout).toMatch(/^Service\s+leaky\s+Refused\s+.*env: names that look like credentials/m);
    expect(r.stdout).toMatch(/^DatabaseClaim\s+taken\s+Conflict\s+DatabaseClaim family\/taken exists and is not managed by this Service/m);
    expect((await kube.get(API, 'Service', NS, 'existing'))!.spec.image).toBe('registry.family.test/existing:1.0.0');
    expect(await kube.get(API, 'Service', NS, 'leaky')).toBeUndefined();
    await kube.delete(API, 'Service', NS, 'existing');
    await kube.delete(API, 'DatabaseClaim', NS, 'taken');
  });

  it('plan of a Route: the dry run, a hostname outside the hub\'s domain, and a host+path an older Route holds', async () => {
    const route = (name: string, hostname: string) => ({ apiVersion: API, kind: 'Route', metadata: { name, namespace: NS }, spec: { familyHubRef: { name: 'home' }, hostname, backendRef: { name, port: 8080 } } });
    await apply(route('older', `photos.${DOMAIN}`) as KubeObject);
    const file = path.join(work, 'routes.yaml');
    writeFileSync(file, [route('fresh', `fresh.${DOMAIN}`), route('outside', 'photos.elsewhere.example'), route('second', `photos.${DOMAIN}`)].map((o) => stringify(o)).join('---\n'));
    const r = await plugin(`plan ${file}`);
    expect(r.code).toBe(1);
    const section = (name: string) => r.stdout.split(/\n(?=Route family\/)/).find((b) => b.startsWith(`Route family/${name}\n`))!;
    expect(section('fresh')).toMatch(/^Route\s+fresh\s+Create\s*$/m);
    expect(section('fresh')).toMatch(/^HTTPRoute\s+fresh\s+Waiting\s+/m);
    expect(section('fresh')).not.toMatch(/Refused|Conflict/);
    expect(section('outside')).toMatch(/^Route\s+outside\s+Refused\s+hostname photos\.elsewhere\.example is outside the hub's domain home\.family\.test \(HostnameOutsideDomain\)$/m);
    expect(section('second')).toMatch(/^Route\s+second\s+Conflict\s+Route family\/older already serves photos\.home\.family\.test\/; the older Route keeps it/m);
    for (const n of ['fresh', 'outside', 'second']) expect(await kube.get(API, 'Route', NS, n)).toBeUndefined();
    await kube.delete(API, 'Route', NS, 'older');
  });
});

/**
 * docs/walkthrough.md, executed: ```yaml file=<name> blocks are written to
 * a directory, each ```sh block is run there, and an
 * <!-- expect: /regex/ --> comment after a block is matched against its
 * output (exit code 0 unless <!-- exit: N -->).
 */
interface Step { kind: 'file'; name: string; text: string }
interface Command { kind: 'sh'; command: string; expect: RegExp[]; exit: number }

function walkthroughSteps(markdown: string): Array<Step | Command> {
  const steps: Array<Step | Command> = [];
  const re = /```(\w+)([^\n]*)\n([\s\S]*?)```|<!--\s*(expect|exit):\s*([\s\S]*?)\s*-->/g;
  for (const m of markdown.matchAll(re)) {
    if (m[4]) {
      const last = steps.at(-1);
      if (!last || last.kind !== 'sh') throw new Error(`walkthrough: "${m[0]}" follows no command`);
      if (m[4] === 'exit') last.exit = Number(m[5]);
      else {
        const rx = /^\/(.*)\/([a-z]*)$/s.exec(m[5]!);
        if (!rx) throw new Error(`walkthrough: expect needs /regex/, got ${m[5]}`);
        last.expect.push(new RegExp(rx[1]!, rx[2]!.includes('m') ? rx[2] : `${rx[2]}m`));
      }
      continue;
    }
    const [lang, info, body] = [m[1]!, m[2]!, m[3]!];
    const file = /\bfile=(\S+)/.exec(info)?.[1];
    if (file) steps.push({ kind: 'file', name: file, text: body });
    else if (lang === 'sh') steps.push({ kind: 'sh', command: body.trim(), expect: [], exit: 0 });
  }
  return steps;
}

describe('docs/walkthrough.md, step by step', () => {
  it('runs every step of the walkthrough as written and gets what it says', async () => {
    const steps = walkthroughSteps(readFileSync(path.join(root, 'docs/walkthrough.md'), 'utf8'));
    const commands = steps.filter((s): s is Command => s.kind === 'sh');
    expect(commands.length).toBeGreaterThanOrEqual(6);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'familyhub-walkthrough-'));
    let passwordBefore: string | undefined;
    for (const s of steps) {
      if (s.kind === 'file') {
        writeFileSync(path.join(dir, s.name), s.text);
        continue;
      }
      // The password before the rotation is one PostgreSQL accepts, not merely a present key.
      if (/familyhub rotate dbc\//.test(s.command)) passwordBefore = (await loginWith('recipes-db')).password;
      // set -e: a block of several commands fails at the first that fails.
      const r = await sh(`set -e\n${s.command}`, { cwd: dir });
      const out = `${r.stdout}${r.stderr}`;
      expect({ command: s.command, code: r.code, out: r.code === s.exit ? '' : out }).toEqual({ command: s.command, code: s.exit, out: '' });
      for (const rx of s.expect) expect(out, `${s.command}: ${rx}`).toMatch(rx);
      // What each step claims, checked beside its output.
      if (/familyhub plan /.test(s.command)) expect(await kube.get(API, 'Service', NS, 'recipes')).toBeUndefined();
    }
    // The end state the walkthrough promises on a plain control plane.
    const svc = (await kube.get(API, 'Service', NS, 'recipes'))!;
    expect(condition(svc, 'DatabaseReady')?.status).toBe('True');
    expect(condition(svc, 'IdentityReady')?.status).toBe('True');
    expect(await kube.get('apps/v1', 'Deployment', NS, 'recipes')).toBeTruthy();
    expect(passwordBefore, 'the walkthrough rotates dbc/recipes').toEqual(expect.any(String));
    const now = await loginWith('recipes-db');
    expect(now.password).not.toBe(passwordBefore);
    expect((await kube.get(API, 'Service', NS, 'recipes'))!.spec.needs.database.rotateGeneration).toBe(1);
  });
});

describe('kubectl familyhub audit (real audit service)', () => {
  let runtime: RuntimeProcess;
  let token: string;
  const STREAM = 'e2e:audit:cli';

  beforeAll(async () => {
    const adb = await createAuditDatabase(db, 'audit_cli');
    runtime = await spawnRuntime('audit-cli', {
      RUNTIME_SERVICES: 'audit', DATABASE_URL: adb.appUrl, AUDIT_OWNER_DATABASE_URL: adb.ownerUrl, REDIS_URL: redis.url,
      OIDC_ISSUER_URL: idp.issuer, OIDC_AUDIENCE: 'audit', AUTH_ALLOWED_EMAIL_DOMAINS: MAIL, AUTH_ADMIN_ROLE: 'admins', AUDIT_STREAM: STREAM,
    });
    const conn = new Redis(redis.url);
    try {
      const publisher = createAuditPublisher(conn, { stream: STREAM, source: 'e2e' });
      for (let i = 0; i < 30; i++) {
        await publisher.publish({ actor: i % 3 ? `bob@${MAIL}` : `alice@${MAIL}`, action: i % 2 ? 'chat.message.send' : 'chat.member.add', target: `chat/channel/c${i % 4}`, outcome: 'success' });
      }
    } finally {
      conn.disconnect();
    }
    const app = new pg.Pool({ connectionString: adb.appUrl });
    try {
      await waitFor('30 events stored', async () => Number((await app.query('SELECT last_seq FROM audit.chain_head')).rows[0]?.last_seq ?? 0) === 30, { timeoutMs: 30_000 });
    } finally {
      await app.end();
    }
    token = await idp.issueAccessToken({ email: `alice@${MAIL}`, groups: ['admins'], audience: 'audit', expiresInSec: 600 });
  }, 120_000);

  afterAll(async () => {
    await runtime?.proc.stop();
  });

  it('audit verify: an intact chain, then the first tampered row with exit code 1', async () => {
    const env = { FAMILYHUB_TOKEN: token };
    const ok = await plugin(`audit verify --url ${runtime.url}`, { env });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^ok: the audit chain is intact, 30 rows checked, seq 1\.\.30$/m);
    const j = JSON.parse((await plugin(`audit verify --url ${runtime.url}/api/audit -o json`, { env })).stdout);
    expect(j).toMatchObject({ ok: true, checkedRows: 30, headSeq: '30' });

    const noToken = await plugin(`audit verify --url ${runtime.url}`, { env: { FAMILYHUB_TOKEN: undefined } });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/needs an admin access token: set FAMILYHUB_TOKEN or pass --token-file/);
    const kid = await idp.issueAccessToken({ email: `charlie@${MAIL}`, groups: ['kids'], audience: 'audit', expiresInSec: 300 });
    const tokenFile = path.join(work, 'kid-token');
    writeFileSync(tokenFile, kid, { mode: 0o600 });
    const forbidden = await plugin(`audit verify --url ${runtime.url} --token-file ${tokenFile}`, { env: { FAMILYHUB_TOKEN: undefined } });
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toMatch(/HTTP 403 \(the token lacks the admin role\)/);

    // A superuser can bypass the triggers; the chain is what catches it.
    const su = new pg.Client({ connectionString: superuserUrl(db, 'audit_cli') });
    await su.connect();
    try {
      await su.query('SET session_replication_role = replica');
      await su.query(`UPDATE audit.events SET actor = 'mallory@outsider.example' WHERE seq = 17`);
    } finally {
      await su.end();
    }
    const broken = await plugin(`audit verify --url ${runtime.url}`, { env });
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/^BROKEN: first row that does not fit: seq 17 \(event \S+\): row content does not match row_hash$/m);
    expect(broken.stdout).toMatch(/16 rows verified before it/);
  });

  it('audit tail --actor/--action: the matching events, oldest first', async () => {
    const env = { FAMILYHUB_TOKEN: token };
    const r = await plugin(`audit tail --url ${runtime.url} --actor alice@${MAIL} --action chat.member.add --limit 3`, { env });
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^SEQ\s+OCCURRED\s+ACTOR\s+ACTION\s+TARGET\s+OUTCOME$/);
    // alice is every third event, chat.member.add every even one: seq 1, 7, 13, 19, 25 → the newest three.
    expect(rows.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['13', '19', '25']);
    for (const l of rows.slice(1)) expect(l).toMatch(new RegExp(`alice@${MAIL}\\s+chat\\.member\\.add\\s+chat/channel/c\\d\\s+success$`));
    const j = JSON.parse((await plugin(`audit tail --url ${runtime.url} --action chat.message.send --limit 500 -o json`, { env })).stdout);
    expect(j).toHaveLength(15);
    expect(j.every((e: { action: string }) => e.action === 'chat.message.send')).toBe(true);
  });

  it('audit tail -f: prints events as they are stored, until interrupted', async () => {
    const child = spawn('kubectl', ['familyhub', 'audit', 'tail', '-f', '--url', runtime.url, '--actor', `dora@${MAIL}`, '-o', 'json'], {
      env: { ...process.env, PATH: `${path.join(root, 'bin')}:${path.dirname(kubectl)}:${process.env.PATH}`, KUBECONFIG: cp.kubeconfigPath, FAMILYHUB_TOKEN: token },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    try {
      await waitFor('tail -f following', async () => err.includes('following new events'), { timeoutMs: 30_000 });
      expect(out).toBe(''); // dora has no events yet
      const conn = new Redis(redis.url);
      try {
        const publisher = createAuditPublisher(conn, { stream: STREAM, source: 'e2e' });
        for (const action of ['media.upload', 'media.delete']) await publisher.publish({ actor: `dora@${MAIL}`, action, target: 'media/blob/b1', outcome: 'success' });
      } finally {
        conn.disconnect();
      }
      await waitFor('both new events followed', async () => (out.match(/"actor": ?"dora@/g) ?? []).length === 2, { timeoutMs: 30_000 });
      const lines = out.trim().split('\n').filter((l) => l.startsWith('{'));
      expect(lines.map((l) => JSON.parse(l).action)).toEqual(['media.upload', 'media.delete']);
    } finally {
      child.kill('SIGINT');
    }
    const code = await new Promise<number | null>((res) => (child.exitCode !== null ? res(child.exitCode) : child.once('exit', (c) => res(c))));
    expect(code).toBe(0);
  });
});

registerResource({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', plural: 'validatingwebhookconfigurations', namespaced: false });

describe('kubectl familyhub doctor', () => {
  const doctor = () => plugin('doctor');

  it('passes on a healthy cluster: CRDs current, a fresh leader, no webhooks, hubs Ready', async () => {
    const r = await doctor();
    expect(r.code, r.stdout).toBe(0);
    for (const k of ['familyhubs', 'services', 'oidcclients', 'databaseclaims', 'routes']) expect(r.stdout).toMatch(new RegExp(`^ok\\s+crds\\s+${k}\\.familyhub\\.dev: installed and current`, 'm'));
    expect(r.stdout).toMatch(/^ok\s+leader\s+Lease familyhub-system\/familyhub-operator: leader \S+, renewed \d+\.\ds ago/m);
    expect(r.stdout).toMatch(/^ok\s+webhooks\s+admission: no admission webhook intercepts familyhub\.dev objects/m);
    expect(r.stdout).toMatch(/^ok\s+familyhub\s+FamilyHub family\/home: Ready/m);
    expect(r.stdout).toMatch(/^no problems found$/m);
  });

  it('fails on a stale CRD, a webhook on familyhub.dev and a hub whose dependency is missing, naming the fix', async () => {
    const crdName = 'routes.familyhub.dev';
    const crd = (await kube.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, crdName))!;
    await kube.request('PATCH', kube.path('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, crdName), {
      body: [{ op: 'add', path: '/spec/versions/0/schema/openAPIV3Schema/description', value: `${crd.spec.versions[0].schema.openAPIV3Schema.description ?? ''} (an older release)` }],
      contentType: 'application/json-patch+json',
    });
    await kube.apply({
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name: 'leftover' },
      webhooks: [{
        name: 'leftover.example.org', failurePolicy: 'Ignore', sideEffects: 'None', admissionReviewVersions: ['v1'],
        clientConfig: { url: 'https://127.0.0.1:9/validate' },
        rules: [{ apiGroups: ['familyhub.dev'], apiVersions: ['*'], resources: ['*'], operations: ['CREATE', 'UPDATE'] }],
      }],
    }, { fieldManager: 'e2e-test' });
    await apply(hub('broken', { postgres: { host: '127.0.0.1', port: db.port, database: 'postgres', sslMode: 'disable', adminCredentialsSecretRef: { name: 'nope' } } }));
    await waitForObject(kube, { kind: 'FamilyHub', namespace: NS, name: 'broken' }, 'PostgresReady=False', (o) => condition(o, 'PostgresReady')?.status === 'False' && o.status?.observedGeneration === 1);

    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^FAIL\s+crds\s+routes\.familyhub\.dev: installed but differs from this version's CRD \(installed schema \w+, expected \w+\)\n\s+fix: re-apply the CRDs/m);
    expect(r.stdout).toMatch(/^ok\s+crds\s+services\.familyhub\.dev: installed and current/m);
    expect(r.stdout).toMatch(/^FAIL\s+webhooks\s+ValidatingWebhookConfiguration leftover \(leftover\.example\.org\): intercepts familyhub\.dev objects\n\s+fix: the operator needs no webhook/m);
    expect(r.stdout).toMatch(/^FAIL\s+familyhub\s+FamilyHub family\/broken PostgresReady: False SecretMissing: .*Secret family\/nope not found\n\s+fix: check spec\.postgres/m);
    expect(r.stdout).toMatch(/^ok\s+familyhub\s+FamilyHub family\/home: Ready/m);
    expect(r.stdout).toMatch(/^\d+ problems found$/m);
    const j = JSON.parse((await plugin('doctor -o json')).stdout);
    expect(j.ok).toBe(false);

    await installCrds(cp.kubeConfig);
    await kube.delete('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'leftover');
    await kube.delete(API, 'FamilyHub', NS, 'broken');
    await waitFor('broken hub finalized', async () => !(await kube.get(API, 'FamilyHub', NS, 'broken')), { timeoutMs: 30_000 });
    expect((await doctor()).code).toBe(0);
  });

  it('fails while the operator is stopped (no leader) and passes again once it runs', async () => {
    await op.stop(); // SIGTERM: the leader releases its Lease
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^FAIL\s+leader\s+Lease familyhub-system\/familyhub-operator: no leader: the Lease has no holder/m);
    expect(r.stdout).toMatch(/^1 problem found$/m);

    op = await startOperator({ kubeconfigPath: saKubeconfig, name: 'operator-cli-2', env: operatorEnv });
    let last: Run | undefined;
    await waitFor('doctor passes with the new leader', async () => (last = await doctor()).code === 0, { timeoutMs: 60_000, intervalMs: 1000 })
      .catch((e: Error) => {
        throw new Error(`${e.message}\n${last?.stdout}`);
      });
    expect(last!.stdout).toMatch(/^ok\s+leader\s+Lease familyhub-system\/familyhub-operator: leader /m);
  });

  it('fails while the leader is hung (Lease not renewed) and passes once another operator takes over', async () => {
    // A short lease, so "not renewed within its duration" is seconds away.
    const short = { ...operatorEnv, FAMILYHUB_LEASE_DURATION_MS: '3s', FAMILYHUB_RENEW_DEADLINE_MS: '2s', FAMILYHUB_RETRY_PERIOD_MS: '500' };
    await op.stop();
    op = await startOperator({ kubeconfigPath: saKubeconfig, name: 'operator-cli-3', env: short });
    await waitFor('doctor passes', async () => (await doctor()).code === 0, { timeoutMs: 60_000, intervalMs: 1000 });
    op.proc.child.kill('SIGSTOP');
    let last: Run | undefined;
    try {
      await waitFor('doctor sees a stale leader', async () => (last = await doctor()).code === 1, { timeoutMs: 60_000, intervalMs: 1000 });
    } finally {
      await op.kill(); // SIGKILL reaches a stopped process
    }
    expect(last!.stdout).toMatch(/^FAIL\s+leader\s+Lease familyhub-system\/familyhub-operator: leader \S+ last renewed \d+s ago, lease 3s: the leader is gone or cannot reach the apiserver$/m);
    op = await startOperator({ kubeconfigPath: saKubeconfig, name: 'operator-cli-4', env: short });
    await waitFor('doctor passes with the new leader', async () => (last = await doctor()).code === 0, { timeoutMs: 60_000, intervalMs: 1000 });
  });
});
