// Shared set-up for the DatabaseClaim e2e files: a real control plane, a real
// PostgreSQL and OpenBao, a FamilyHub pointing at both, and the operator as a
// child process under the RBAC of config/rbac.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { startOpenBao, type LocalOpenBao } from '../../hack/local/openbao.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { API, namespace, secret } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';

export const NS = 'family';

export interface DbEnv {
  cp: ControlPlane;
  kube: KubeClient;
  db: LocalPostgres;
  bao: LocalOpenBao;
  op: RunningOperator;
  admin: pg.Pool;
  stop(): Promise<void>;
}

export function claim(name: string, spec: Record<string, unknown> = {}, meta: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: API,
    kind: 'DatabaseClaim',
    metadata: { name, namespace: NS, ...meta },
    spec: { familyHubRef: { name: 'home' }, ...spec },
  };
}

export async function startDbEnv(opts: { vault?: boolean; env?: Record<string, string> } = {}): Promise<DbEnv> {
  const [cp, db, bao] = await Promise.all([startControlPlane(), startPostgres(), opts.vault === false ? undefined : startOpenBao()]);
  const kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installRbac(cp.kubeConfig);
  await namespace(kube, NS);
  await secret(kube, NS, 'pg-admin', { username: db.user, password: db.password });
  if (bao) await secret(kube, NS, 'vault-token', { token: bao.rootToken });
  await kube.apply({
    apiVersion: API,
    kind: 'FamilyHub',
    metadata: { name: 'home', namespace: NS },
    spec: {
      domain: 'home.example.org',
      allowedEmailDomains: ['example.org'],
      postgres: { host: '127.0.0.1', port: db.port, database: 'postgres', sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' }, allowedExtensions: ['pgcrypto'] },
      ...(bao ? { vault: { address: bao.address, authMethod: 'token', tokenSecretRef: { name: 'vault-token' } } } : {}),
      identity: { kind: 'oidc-dcr', issuerUrl: 'http://127.0.0.1:9999' },
      runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
    },
  }, { fieldManager: 'e2e-test' });
  const saKubeconfig = await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
  const op = await startOperator({
    kubeconfigPath: saKubeconfig,
    name: 'operator-db',
    env: {
      FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system',
      FAMILYHUB_CONTROLLERS: 'databaseclaim',
      FAMILYHUB_RESYNC_MS: '3000',
      FAMILYHUB_DEPENDENCY_RETRY_MS: '2000',
      ...opts.env,
    },
  });
  const admin = new pg.Pool({ connectionString: db.url, max: 2 });
  admin.on('error', () => {});
  return {
    cp, kube, db, bao: bao!, op, admin,
    async stop() {
      await admin.end().catch(() => {});
      await op?.stop();
      await Promise.allSettled([cp?.stop(), db?.stop(), bao?.stop()]);
    },
  };
}

/** Connects with exactly what the claim's Secret says. */
export async function connectWith(data: Record<string, string>): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: data.uri });
  await c.connect();
  return c;
}

/**
 * Stops PostgreSQL and waits for the postmaster itself: the managed child is
 * runuser, which can exit before the server behind it, and a restart while
 * the old postmaster still holds postmaster.pid fails.
 */
export async function stopPostgres(db: LocalPostgres): Promise<void> {
  const pidFile = path.join(db.dataDir, 'postmaster.pid');
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').split('\n')[0]) : undefined;
  await db.stop();
  if (!pid) return;
  await waitFor('postmaster gone', async () => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }, { timeoutMs: 30_000 });
}
