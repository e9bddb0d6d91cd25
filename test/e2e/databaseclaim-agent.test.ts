// VaultAgent mode end to end: the operator provisions the Vault database
// role, a policy and a kubernetes-auth role; the "pod" (this test, holding a
// real ServiceAccount token from the apiserver) logs in to OpenBao itself,
// which verifies the token with the apiserver's TokenReview API.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../hack/local/process.js';
import { VaultClient } from '../../src/vault/client.js';
import { API, isReady, waitForObject } from '../support/kube.js';
import { claim, connectWith, NS, startDbEnv, type DbEnv } from './databaseclaim-harness.js';

describe('DatabaseClaim in VaultAgent mode', () => {
  let env: DbEnv;
  let root: VaultClient;
  // Every secret this suite created or was handed, grepped for in the operator's log at the end.
  const secrets: string[] = [];

  const saToken = async (name: string) => {
    await env.kube.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: NS } }, { fieldManager: 'e2e-test' });
    const r = await env.kube.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts/${name}/token`, {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 600 } },
    });
    secrets.push(r.status.token as string);
    return r.status.token as string;
  };
  const bao = async (method: string, p: string, token?: string, body?: unknown) => {
    const res = await fetch(`${env.bao.address}/v1/${p}`, {
      method,
      headers: { ...(token ? { 'X-Vault-Token': token } : {}), 'Content-Type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as any };
  };

  beforeAll(async () => {
    env = await startDbEnv();
    root = new VaultClient({ address: env.bao.address, auth: { method: 'token', token: env.bao.rootToken } });
    // Cluster-admin's part, not the operator's: point Vault's kubernetes auth at this apiserver.
    await root.ensureAuthMethod('kubernetes', 'kubernetes');
    await root.raw('POST', '/auth/kubernetes/config', {
      kubernetes_host: env.cp.server,
      kubernetes_ca_cert: readFileSync(path.join(env.cp.dir, 'ca.crt'), 'utf8'),
      token_reviewer_jwt: env.cp.adminToken,
    });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('lets exactly the claim\'s ServiceAccount fetch working credentials for its schema', async () => {
    await env.kube.apply(claim('gallery', { credentials: { mode: 'VaultAgent', defaultTtl: '2m', maxTtl: '10m' } }), { fieldManager: 'e2e-test' });
    const o = await waitForObject(env.kube, { kind: 'DatabaseClaim', namespace: NS, name: 'gallery' }, 'Ready', isReady, 90_000);
    expect(o.status.credentialsMode).toBe('VaultAgent');
    const s = (await env.kube.readSecret(NS, 'gallery-db'))!;
    expect(s.password).toBeUndefined();
    expect(s.username).toBeUndefined();
    expect(s).toMatchObject({ vault_role: 'fh-family-gallery', vault_creds_path: 'database/creds/fh-family-gallery', vault_auth_path: 'auth/kubernetes/login', schema: 'fh_family_gallery' });

    const login = await bao('POST', s.vault_auth_path!, undefined, { role: s.vault_role, jwt: await saToken('gallery') });
    expect(login.status).toBe(200);
    const appToken = login.body.auth.client_token as string;
    const creds = await bao('GET', s.vault_creds_path!, appToken);
    expect(creds.status).toBe(200);
    secrets.push(appToken, creds.body.data.password);
    const uri = `postgresql://${encodeURIComponent(creds.body.data.username)}:${encodeURIComponent(creds.body.data.password)}@${s.host}:${s.port}/${s.database}?sslmode=${s.sslmode}`;
    const c = await connectWith({ uri });
    await c.query('create table pictures (id int)');
    expect((await c.query("select schemaname, tableowner from pg_tables where tablename = 'pictures'")).rows[0])
      .toEqual({ schemaname: 'fh_family_gallery', tableowner: 'fh_family_gallery_owner' });
    await c.end();

    // Its token reads nothing else.
    expect((await bao('GET', 'database/creds/some-other-role', appToken)).status).toBe(403);
    // Another ServiceAccount in the same namespace cannot use the role.
    const intruder = await bao('POST', s.vault_auth_path!, undefined, { role: s.vault_role, jwt: await saToken('intruder') });
    expect(intruder.status).toBeGreaterThanOrEqual(400);

    // Deleting the claim removes the Vault role and policy and revokes the app's lease.
    await env.kube.request('DELETE', env.kube.path(API, 'DatabaseClaim', NS, 'gallery'));
    await waitFor('claim gone', async () => !(await env.kube.get(API, 'DatabaseClaim', NS, 'gallery')), { timeoutMs: 60_000 });
    expect((await bao('GET', 'auth/kubernetes/role/fh-family-gallery', env.bao.rootToken)).status).toBe(404);
    expect((await bao('GET', 'sys/policies/acl/fh-family-gallery', env.bao.rootToken)).status).toBe(404);
    const left = await env.admin.query('select 1 from pg_roles where rolname = $1', [creds.body.data.username]);
    expect(left.rowCount).toBe(0);
    // Retain (default): the data stays.
    expect((await env.admin.query('select count(*)::int as n from fh_family_gallery.pictures')).rows[0].n).toBe(0);
  });

  it('the operator can itself log in with kubernetes auth and logs in again when its Vault token is revoked', async () => {
    await root.ensurePolicy('familyhub-operator', 'path "database/*" { capabilities = ["create", "read", "update", "delete", "list"] }\npath "sys/mounts" { capabilities = ["read"] }\n');
    await root.raw('POST', '/auth/kubernetes/role/familyhub-operator', {
      bound_service_account_names: ['familyhub-operator'], bound_service_account_namespaces: ['familyhub-system'], token_policies: ['familyhub-operator'], token_ttl: 300,
    });
    const r = await env.kube.request('POST', '/api/v1/namespaces/familyhub-system/serviceaccounts/familyhub-operator/token', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 600 } },
    });
    secrets.push(r.status.token as string);
    let logins = 0;
    const op = new VaultClient({
      address: env.bao.address,
      auth: { method: 'kubernetes', role: 'familyhub-operator', mountPath: 'kubernetes', jwt: () => { logins++; return r.status.token as string; } },
    });
    expect(await op.ensureSecretsEngine('database', 'database')).toBe(false);
    await op.checkAuth();
    expect(logins).toBe(1);
    // Outside its policy: refused, with the status code kept for the caller.
    await expect(op.raw('GET', '/sys/policies/acl/familyhub-operator')).rejects.toMatchObject({ statusCode: 403 });
    // Someone revokes the operator's token: the next call logs in again and succeeds.
    await op.raw('POST', '/auth/token/revoke-self');
    expect(await op.ensureSecretsEngine('database', 'database')).toBe(false);
    expect(logins).toBeGreaterThanOrEqual(3);
    // A token for another ServiceAccount cannot take the operator's role.
    const other = await saToken('not-the-operator');
    const bad = new VaultClient({ address: env.bao.address, auth: { method: 'kubernetes', role: 'familyhub-operator', mountPath: 'kubernetes', jwt: () => other } });
    await expect(bad.checkAuth()).rejects.toThrow(/kubernetes login/);
  });

  it('never logs a secret it created or was handed', () => {
    const logs = env.op.logs();
    expect(logs.length).toBeGreaterThan(0);
    expect(secrets.length).toBeGreaterThanOrEqual(4);
    for (const v of [...secrets, env.bao.rootToken, env.cp.adminToken, env.db.password]) {
      expect(v.length).toBeGreaterThan(8);
      expect(logs).not.toContain(v);
    }
  });
});
