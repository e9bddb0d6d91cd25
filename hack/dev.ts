// `npm run dev`: the whole platform on this machine, no Docker needed —
// a real control plane (etcd, kube-apiserver, kube-controller-manager),
// PostgreSQL, Redis, the development IdP and, when built, OpenBao; the CRDs
// and RBAC installed; a FamilyHub wired to all of them; and the operator
// running as its ServiceAccount in the foreground. `--smoke` exits 0 once
// the FamilyHub is Ready (used by the tests to prove this command works).
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startControlPlane } from './local/controlplane.js';
import { installCrds, installRbac, repoRoot } from './local/manifests.js';
import { startPostgres } from './local/postgres.js';
import { startRedis } from './local/redis.js';
import { waitFor } from './local/process.js';
import { startDevIdp } from './dev-idp/provider.js';
import { KubeClient } from '../src/core/kube-client.js';

const smoke = process.argv.includes('--smoke');
const NS = 'family';
const say = (msg: string) => process.stdout.write(`[dev] ${msg}\n`);

const cp = await startControlPlane();
say(`control plane up: ${cp.server}`);
await installCrds(cp.kubeConfig);
await installRbac(cp.kubeConfig);
const pg = await startPostgres();
const redis = await startRedis();
const idp = await startDevIdp({ allowedDomain: 'family.test' });
say(`PostgreSQL ${pg.host}:${pg.port}, Redis ${redis.url}, dev IdP ${idp.issuer}`);

const kube = new KubeClient(cp.kubeConfig);
const apply = (o: any) => kube.apply(o, { fieldManager: 'familyhub-dev' });
const secret = (name: string, data: Record<string, string>) =>
  apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) });
await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
await secret('postgres-admin', { username: pg.user, password: pg.password });
await secret('idp-initial-access-token', { token: idp.initialAccessToken });
await apply({
  apiVersion: 'familyhub.dev/v1alpha1',
  kind: 'FamilyHub',
  metadata: { name: 'home', namespace: NS },
  spec: {
    domain: 'home.family.test',
    allowedEmailDomains: ['family.test'],
    postgres: { host: pg.host, port: pg.port, database: pg.database, sslMode: 'disable', adminCredentialsSecretRef: { name: 'postgres-admin' } },
    redis: { host: redis.host, port: redis.port },
    identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-initial-access-token' } },
    runtime: { image: 'familyhub-runtime:dev', services: { chat: { enabled: true }, audit: { enabled: true } } },
  },
});

const saKubeconfig = await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
const adminKubeconfig = path.join(repoRoot, '.familyhub-kubeconfig');
writeFileSync(adminKubeconfig, `# written by npm run dev\n` + readFileSync(cp.kubeconfigPath, 'utf8'), { mode: 0o600 });
const loader = pathToFileURL(path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href;
const operator = spawn(process.execPath, ['--import', loader, path.join(repoRoot, 'src/main.ts')], {
  env: { ...process.env, KUBECONFIG: saKubeconfig, FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_METRICS_PORT: '0' },
  stdio: smoke ? 'ignore' : 'inherit',
});

let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    operator.kill('SIGTERM');
    await new Promise((r) => (operator.exitCode !== null ? r(null) : operator.once('exit', r)));
    await idp.stop();
    await redis.stop();
    await pg.stop();
    await cp.stop();
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

await waitFor('FamilyHub home Ready', async () => {
  const hub = await kube.get('familyhub.dev/v1alpha1', 'FamilyHub', NS, 'home');
  return !!hub?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
}, { timeoutMs: 120_000 }).catch(async (err) => {
  say(String(err));
  await shutdown(1);
});
say('FamilyHub family/home is Ready.');
say(`kubectl access: export KUBECONFIG=${adminKubeconfig}  (kubectl get familyhub -A)`);
if (smoke) await shutdown(0);
say('operator running; Ctrl-C stops everything.');
