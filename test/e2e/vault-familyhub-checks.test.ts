// FamilyHub live checks and database-engine configuration against a real
// PostgreSQL and OpenBao, with the hub's Secrets read from a real apiserver.
// The checks are called directly (the claim and core e2e suites run them
// inside the operator) so each failure mode can be staged precisely.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenBao, type LocalOpenBao } from '../../hack/local/openbao.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { KubeClient } from '../../src/core/kube-client.js';
import { namespace, secret, testContext } from '../support/kube.js';
import { defaultConfig } from '../../src/config.js';
import { liveChecks } from '../../src/controllers/familyhub/checks.js';
import { PlatformConnections } from '../../src/platform/connections.js';
import { typedHub } from '../../src/platform/hub.js';
import { VaultClient } from '../../src/vault/client.js';
import { stopPostgres } from './databaseclaim-harness.js';

describe('FamilyHub PostgreSQL and Vault live checks', () => {
  let db: LocalPostgres;
  let bao: LocalOpenBao;
  let cp: ControlPlane;
  let kube: KubeClient;
  const setSecret = (name: string, data: Record<string, string>) => secret(kube, 'family', name, data);
  const platform = new PlatformConnections(defaultConfig().platform);
  const checks = liveChecks(platform);
  const hub = () => typedHub({
    apiVersion: 'familyhub.dev/v1alpha1',
    kind: 'FamilyHub',
    metadata: { name: 'home', namespace: 'family', uid: 'hub-uid' },
    spec: {
      domain: 'family.test',
      allowedEmailDomains: ['family.test'],
      postgres: { host: '127.0.0.1', port: db.port, database: 'postgres', sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
      vault: { address: bao.address, authMethod: 'token', tokenSecretRef: { name: 'vault-token' } },
      identity: { kind: 'oidc-dcr', issuerUrl: 'http://127.0.0.1:1' },
      runtime: { image: 'runtime:dev' },
    },
  });
  const checkPostgres = (h: ReturnType<typeof hub>) => checks.PostgresReady!(h, testContext(kube)) as Promise<NonNullable<Awaited<ReturnType<NonNullable<typeof checks.PostgresReady>>>>>;
  const checkVault = (h: ReturnType<typeof hub>) => checks.VaultReady!(h, testContext(kube));

  beforeAll(async () => {
    [db, bao, cp] = await Promise.all([startPostgres(), startOpenBao(), startControlPlane({ audit: false })]);
    kube = new KubeClient(cp.kubeConfig);
    await namespace(kube, 'family');
    await setSecret('pg-admin', { username: db.user, password: db.password });
    await setSecret('vault-token', { token: bao.rootToken });
  });
  afterAll(async () => {
    await platform.close();
    await Promise.allSettled([db?.stop(), bao?.stop(), cp?.stop()]);
  });

  it('reports both ready and configures database/config for the hub, idempotently', async () => {
    const pgc = await checkPostgres(hub());
    expect(pgc).toMatchObject({ type: 'PostgresReady', status: 'True', reason: 'Connected' });
    expect(pgc.message).toMatch(/server 15\./);
    const vc = await checkVault(hub());
    expect(vc).toMatchObject({ type: 'VaultReady', status: 'True' });
    expect(vc!.message).toMatch(/database engine connection familyhub-family-home configured/);

    const root = new VaultClient({ address: bao.address, auth: { method: 'token', token: bao.rootToken } });
    const cfg = await root.raw('GET', '/database/config/familyhub-family-home');
    expect(cfg.data.plugin_name).toBe('postgresql-database-plugin');
    expect(cfg.data.connection_details.connection_url).toBe(`postgresql://{{username}}:{{password}}@127.0.0.1:${db.port}/postgres?sslmode=disable`);
    expect(JSON.stringify(cfg)).not.toContain(db.password);
    // Same inputs: nothing to write.
    const vault = (await platform.vault(testContext(kube), hub()))!;
    const pg = await platform.postgres(testContext(kube), hub());
    expect(await vault.ensureSecretsEngine('database', 'database')).toBe(false);
    expect(await vault.ensureDatabaseConnection('database', 'familyhub-family-home', {
      pluginName: 'postgresql-database-plugin',
      connectionUrl: cfg.data.connection_details.connection_url,
      username: db.user,
      password: db.password,
      allowedRoles: ['*'],
    }, pg.passwordFingerprint)).toBe(false);
    expect(await platform.configureDatabaseEngine(hub(), vault, pg)).toBe('familyhub-family-home');
  });

  it('names the problem: wrong admin password, bad Vault token, missing Secret', async () => {
    await setSecret('pg-admin', { username: db.user, password: 'wrong-password' });
    const pgc = await checkPostgres(hub());
    expect(pgc).toMatchObject({ status: 'False', reason: 'PostgresAuthFailed' });
    expect(pgc.message).not.toContain('wrong-password');
    await setSecret('pg-admin', { username: db.user, password: db.password });

    await setSecret('vault-token', { token: 'not-a-real-token' });
    const vc = await checkVault(hub());
    expect(vc).toMatchObject({ status: 'False', reason: 'VaultPermissionDenied' });
    await kube.delete('v1', 'Secret', 'family', 'vault-token');
    expect(await checkVault(hub())).toMatchObject({ status: 'False', reason: 'SecretMissing' });
    await setSecret('vault-token', { token: bao.rootToken });
  });

  it('reports outages and recovers when the servers return (OpenBao empty after restart)', async () => {
    await stopPostgres(db);
    const pgDown = await checkPostgres(hub());
    expect(pgDown).toMatchObject({ status: 'False', reason: 'PostgresUnavailable' });
    expect(pgDown.message).toMatch(/PostgreSQL 127\.0\.0\.1:\d+\/postgres is not reachable/);
    await db.restart();
    expect(await checkPostgres(hub())).toMatchObject({ status: 'True' });

    await bao.stop();
    const vDown = await checkVault(hub());
    expect(vDown).toMatchObject({ status: 'False', reason: 'VaultUnavailable' });
    await bao.restart();
    expect(await checkVault(hub())).toMatchObject({ status: 'True' });
    const root = new VaultClient({ address: bao.address, auth: { method: 'token', token: bao.rootToken } });
    const cfg = await root.raw('GET', '/database/config/familyhub-family-home');
    expect(cfg.data.plugin_name).toBe('postgresql-database-plugin');
  });
});
