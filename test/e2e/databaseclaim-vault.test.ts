// DatabaseClaim end to end: real kube-apiserver, PostgreSQL and OpenBao, the
// operator as a child process. Every proof connects to PostgreSQL with what
// the claim's Secret holds.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../hack/local/process.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { API, condition, isReady, waitForObject } from '../support/kube.js';
import { claim, connectWith, NS, startDbEnv, stopPostgres, type DbEnv } from './databaseclaim-harness.js';

describe('DatabaseClaim with Vault dynamic credentials', () => {
  let env: DbEnv;
  /** every password the test saw in a Secret: none may show up in logs, events or status */
  const seenSecrets = new Set<string>();
  const ref = (name: string) => ({ kind: 'DatabaseClaim', namespace: NS, name });
  type Creds = Record<string, string> & { username: string; password: string; uri: string; lease_expires_at: string };
  const readSecret = async (name: string): Promise<Creds> => {
    const d = ((await env.kube.readSecret(NS, name)) ?? {}) as Creds;
    if (d.password) seenSecrets.add(d.password);
    return d;
  };

  beforeAll(async () => {
    env = await startDbEnv();
    seenSecrets.add(env.db.password);
    seenSecrets.add(env.bao.rootToken);
  });
  afterAll(async () => {
    await env?.stop();
  });

  const short = { defaultTtl: '20s', maxTtl: '60s', rotationGracePeriod: '10s' };

  it('provisions isolated schemas with working credentials', async () => {
    await env.kube.apply(claim('photos', { credentials: short, extensions: ['pgcrypto'] }), { fieldManager: 'e2e-test' });
    await env.kube.apply(claim('recipes', { credentials: short }), { fieldManager: 'e2e-test' });
    const a = await waitForObject(env.kube, ref('photos'), 'Ready', isReady, 90_000);
    const b = await waitForObject(env.kube, ref('recipes'), 'Ready', isReady, 90_000);
    expect(a.status.schema).toBe('fh_family_photos');
    expect(a.status.ownerRole).toBe('fh_family_photos_owner');
    expect(a.status.secretName).toBe('photos-db');
    expect(a.status.credentialsMode).toBe('VaultDynamic');
    expect(a.status.extensions).toEqual(['pgcrypto']);
    expect(Date.parse(a.status.leaseExpiresAt)).toBeGreaterThan(Date.now());
    expect(condition(a, 'VaultReady')?.status).toBe('True');

    const sa = await readSecret('photos-db');
    const sb = await readSecret('recipes-db');
    // The connection facts are the hub's, the login is Vault's, and the URI says the same as the fields.
    expect(sa).toMatchObject({ host: '127.0.0.1', port: String(env.db.port), database: 'postgres', schema: a.status.schema, sslmode: 'disable' });
    expect(sa.username).toMatch(/^v-/);
    expect(sa.password!.length).toBeGreaterThanOrEqual(20);
    expect(sb.username).not.toBe(sa.username);
    expect(sb.password).not.toBe(sa.password);
    const u = new URL(sa.uri!);
    expect({ protocol: u.protocol, user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), host: u.hostname, port: u.port, database: u.pathname, sslmode: u.searchParams.get('sslmode') })
      .toEqual({ protocol: 'postgresql:', user: sa.username, password: sa.password, host: sa.host, port: sa.port, database: `/${sa.database}`, sslmode: 'disable' });
    expect(sa.DATABASE_URL).toBe(sa.uri);
    // A lease of at most maxTtl (60 s) from now.
    expect(Date.parse(sa.lease_expires_at!)).toBeGreaterThan(Date.now());
    expect(Date.parse(sa.lease_expires_at!)).toBeLessThanOrEqual(Date.now() + 61_000);
    const ca = await connectWith(sa);
    const cb = await connectWith(sb);
    try {
      await ca.query('create table albums (id serial primary key, title text)');
      await ca.query("insert into albums (title) values ('summer')");
      expect((await ca.query('select current_schema() as s')).rows[0].s).toBe(a.status.schema);
      expect((await ca.query("select encode(digest('x', 'sha256'), 'hex') as h")).rows[0].h).toHaveLength(64);
      await cb.query('create table dishes (name text)');
      await expect(ca.query(`select * from "${b.status.schema}".dishes`)).rejects.toThrow(/permission denied for schema/);
      await expect(cb.query(`select * from "${a.status.schema}".albums`)).rejects.toThrow(/permission denied for schema/);
      await expect(ca.query('create table public.leak (x int)')).rejects.toThrow(/permission denied for schema public/);
    } finally {
      await ca.end();
      await cb.end();
    }
    // Tables belong to the claim's owner role, not to the short-lived login.
    const owner = await env.admin.query("select tableowner from pg_tables where tablename = 'albums'");
    expect(owner.rows[0].tableowner).toBe('fh_family_photos_owner');
  });

  it('renews and rotates before max TTL; a continuous client never fails to authenticate; old logins are dropped', async () => {
    const first = await readSecret('photos-db');
    const usernames = new Map<string, Set<string>>();
    let authFailures = 0;
    let otherFailures = 0;
    let queries = 0;
    const deadline = Date.now() + 72_000;
    while (Date.now() < deadline) {
      const s = await readSecret('photos-db');
      if (!usernames.has(s.username)) usernames.set(s.username, new Set());
      usernames.get(s.username)!.add(s.lease_expires_at);
      const c = new pg.Client({ connectionString: s.uri });
      try {
        await c.connect();
        await c.query('select count(*) from albums');
        queries++;
      } catch (err) {
        if ((err as { code?: string }).code === '28P01' || /password authentication failed/.test(String(err))) authFailures++;
        else otherFailures++;
      } finally {
        await c.end().catch(() => {});
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(queries).toBeGreaterThan(50);
    expect(authFailures).toBe(0);
    expect(otherFailures).toBe(0);
    expect(usernames.size).toBeGreaterThanOrEqual(2);
    // The first login was renewed at least once before it was rotated away.
    expect(usernames.get(first.username)!.size).toBeGreaterThanOrEqual(2);
    await waitFor('first login dropped from pg_roles', async () => {
      const r = await env.admin.query('select 1 from pg_roles where rolname = $1', [first.username]);
      return r.rowCount === 0;
    }, { timeoutMs: 30_000 });
    const o = await env.kube.get(API, 'DatabaseClaim', NS, 'photos');
    expect(isReady(o!)).toBe(true);
    expect(Date.parse(o!.status.lastRotatedAt)).toBeGreaterThan(Date.now() - 80_000);
  });

  it('rotation restarts only operator-managed consumers, never Argo CD\'s', async () => {
    const deployment = (name: string, labels: Record<string, string>, annotations: Record<string, string> = {}) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: NS, labels, annotations },
      spec: {
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { containers: [{ name: 'app', image: 'example/app:1', envFrom: [{ secretRef: { name: 'recipes-db' } }] }] },
        },
      },
    });
    await env.kube.apply(deployment('ours', { 'app.kubernetes.io/managed-by': 'familyhub-operator' }), { fieldManager: 'e2e-test' });
    await env.kube.apply(deployment('argo', { 'app.kubernetes.io/managed-by': 'familyhub-operator' }, { 'argocd.argoproj.io/tracking-id': 'apps:apps/Deployment:family/argo' }), { fieldManager: 'argocd-controller' });
    const before = await readSecret('recipes-db');
    await env.kube.mergePatch(API, 'DatabaseClaim', NS, 'recipes', { spec: { credentials: { rotateGeneration: 1 } } });
    const o = await waitForObject(env.kube, ref('recipes'), 'rotated', (x) => isReady(x) && x.status.observedRotateGeneration === 1);
    expect(o.status.observedRotateGeneration).toBe(1);
    const after = await readSecret('recipes-db');
    expect(after.username).not.toBe(before.username);
    const ours = await env.kube.get('apps/v1', 'Deployment', NS, 'ours');
    const argo = await env.kube.get('apps/v1', 'Deployment', NS, 'argo');
    const key = 'familyhub.dev/db-credentials.recipes-db';
    expect(ours!.spec.template.metadata.annotations?.[key]).toMatch(/^[0-9a-f]{16}$/);
    expect(argo!.spec.template.metadata.annotations?.[key]).toBeUndefined();
    expect(argo!.metadata.generation).toBe(1);
  });

  it('hostile names are rejected by the schema or safely shortened', async () => {
    for (const schemaName of ['a"; drop schema public cascade; --', "x'y", 'Ünïcode', 'a'.repeat(64)]) {
      await expect(env.kube.apply(claim('hostile', { schemaName }), { fieldManager: 'e2e-test' })).rejects.toThrow(/schemaName/);
    }
    await expect(env.kube.apply(claim('bad;name'), { fieldManager: 'e2e-test' })).rejects.toThrow(/RFC 1123|invalid resource name|may not contain/);
    const longName = `long-${'x'.repeat(195)}`;
    await env.kube.apply(claim(longName, { credentials: { mode: 'Static' } }), { fieldManager: 'e2e-test' });
    const o = await waitForObject(env.kube, ref(longName), 'Ready', isReady, 60_000);
    expect(Buffer.byteLength(o.status.schema)).toBeLessThanOrEqual(63);
    expect(o.status.schema).toMatch(/^fh_family_long_x+_[0-9a-f]{10}$/);
    const r = await env.admin.query('select 1 from pg_namespace where nspname = $1', [o.status.schema]);
    expect(r.rowCount).toBe(1);
    // The Secret name is derived from a 200-character claim name; it must still be valid.
    const s = await readSecret(o.status.secretName);
    const c = await connectWith(s);
    await c.query('create table t (x int)');
    await c.end();
  });

  it('reports Degraded while PostgreSQL is down and recovers on its own', async () => {
    await stopPostgres(env.db);
    const down = await waitForObject(env.kube, ref('recipes'), 'Degraded', (x) => condition(x, 'Degraded')?.status === 'True', 60_000);
    expect(condition(down, 'Degraded')?.reason).toBe('PostgresUnavailable');
    expect(condition(down, 'Degraded')?.message).toMatch(/PostgreSQL 127\.0\.0\.1:\d+\/postgres is not reachable/);
    expect(condition(down, 'PostgresReady')?.status).toBe('False');
    await env.db.restart();
    const up = await waitForObject(env.kube, ref('recipes'), 'Ready again', (x) => isReady(x) && condition(x, 'Degraded')?.status === 'False', 60_000);
    expect(condition(up, 'PostgresReady')?.status).toBe('True');
    const c = await connectWith(await readSecret('recipes-db'));
    await c.query('select * from dishes');
    await c.end();
  });

  it('reports Degraded while OpenBao is down and re-configures it when it returns empty', async () => {
    const before = await readSecret('recipes-db');
    await env.bao.stop();
    const down = await waitForObject(env.kube, ref('recipes'), 'Degraded', (x) => condition(x, 'Degraded')?.status === 'True', 60_000);
    expect(condition(down, 'Degraded')?.reason).toBe('VaultUnavailable');
    expect(condition(down, 'Degraded')?.message).toMatch(/Vault http:\/\/127\.0\.0\.1:\d+ is not reachable/);
    // Dev mode: the restarted server has no mounts, roles or leases.
    await env.bao.restart();
    const up = await waitForObject(env.kube, ref('recipes'), 'Ready again', (x) => isReady(x) && condition(x, 'Degraded')?.status === 'False', 60_000);
    expect(condition(up, 'VaultReady')?.status).toBe('True');
    const after = await readSecret('recipes-db');
    expect(after.username).not.toBe(before.username);
    const c = await connectWith(after);
    await c.query('select * from dishes');
    await c.end();
    // The login Vault forgot is dropped by the operator after the grace period.
    await waitFor('login lost with the Vault restart dropped', async () => {
      const r = await env.admin.query('select 1 from pg_roles where rolname = $1', [before.username]);
      return r.rowCount === 0;
    }, { timeoutMs: 40_000 });
  });

  it('Static mode: generated passwords on two alternating logins; the old one works through the grace period, then is dropped', async () => {
    await env.kube.apply(claim('static', { credentials: { mode: 'Static', rotationGracePeriod: '20s' } }), { fieldManager: 'e2e-test' });
    await waitForObject(env.kube, ref('static'), 'Ready', isReady);
    const s1 = await readSecret('static-db');
    expect(s1.username).toBe('fh_family_static_app');
    (await connectWith(s1)).end();

    await env.kube.mergePatch(API, 'DatabaseClaim', NS, 'static', { spec: { credentials: { rotateGeneration: 1 } } });
    await waitForObject(env.kube, ref('static'), 'rotated', (x) => isReady(x) && x.status.observedRotateGeneration === 1);
    const s2 = await readSecret('static-db');
    expect(s2.username).toBe('fh_family_static_alt');
    expect(s2.password).not.toBe(s1.password);
    await (await connectWith(s2)).end();
    // Pods that have not restarted yet still hold s1: it must keep working during the grace period.
    await (await connectWith(s1)).end();

    await waitFor('superseded static login dropped', async () => (await env.admin.query("select 1 from pg_roles where rolname = 'fh_family_static_app'")).rowCount === 0, { timeoutMs: 90_000 });
    await expect(connectWith(s1)).rejects.toThrow(/password authentication failed/);
    await (await connectWith(s2)).end();

    // The next rotation goes back to the first login, with a new password.
    await env.kube.mergePatch(API, 'DatabaseClaim', NS, 'static', { spec: { credentials: { rotateGeneration: 2 } } });
    await waitForObject(env.kube, ref('static'), 'rotated again', (x) => isReady(x) && x.status.observedRotateGeneration === 2);
    const s3 = await readSecret('static-db');
    expect(s3.username).toBe('fh_family_static_app');
    expect(s3.password).not.toBe(s1.password);
    await (await connectWith(s3)).end();
  });

  it('deletionPolicy Retain keeps schema and data but revokes logins; Delete drops them', async () => {
    await env.kube.apply(claim('keep', { credentials: short, deletionPolicy: 'Retain' }), { fieldManager: 'e2e-test' });
    await env.kube.apply(claim('drop', { credentials: short, deletionPolicy: 'Delete' }), { fieldManager: 'e2e-test' });
    const keep = await waitForObject(env.kube, ref('keep'), 'Ready', isReady, 60_000);
    const drop = await waitForObject(env.kube, ref('drop'), 'Ready', isReady, 60_000);
    for (const [name, o] of [['keep', keep], ['drop', drop]] as const) {
      const c = await connectWith(await readSecret(`${name}-db`));
      await c.query('create table memories (v text)');
      await c.query("insert into memories values ('precious')");
      await c.end();
      expect(o.status.schema).toBe(`fh_family_${name}`);
    }
    const keepLogin = (await readSecret('keep-db')).username;
    // Body-less DELETEs: KubeClient.delete sends a DeleteOptions body without
    // Content-Length, which Node does not frame for DELETE (reported to the lead).
    await env.kube.request('DELETE', env.kube.path(API, 'DatabaseClaim', NS, 'keep'));
    await env.kube.request('DELETE', env.kube.path(API, 'DatabaseClaim', NS, 'drop'));
    await waitFor('claims gone', async () => !(await env.kube.get(API, 'DatabaseClaim', NS, 'keep')) && !(await env.kube.get(API, 'DatabaseClaim', NS, 'drop')), { timeoutMs: 60_000 });
    const kept = await env.admin.query('select v from fh_family_keep.memories');
    expect(kept.rows).toEqual([{ v: 'precious' }]);
    expect((await env.admin.query("select 1 from pg_roles where rolname = 'fh_family_keep_owner'")).rowCount).toBe(1);
    expect((await env.admin.query('select 1 from pg_roles where rolname = $1', [keepLogin])).rowCount).toBe(0);
    expect((await env.admin.query("select 1 from pg_namespace where nspname = 'fh_family_drop'")).rowCount).toBe(0);
    expect((await env.admin.query("select 1 from pg_roles where rolname like 'fh_family_drop%'")).rowCount).toBe(0);
    // No other claim lost anything.
    expect((await env.admin.query('select count(*)::int as n from fh_family_photos.albums')).rows[0].n).toBe(1);
  });

  it('no password or token appears in logs, events or status', async () => {
    expect(seenSecrets.size).toBeGreaterThan(5);
    const logs = env.op.logs();
    expect(logs.length).toBeGreaterThan(1000);
    const events = await env.kube.list('v1', 'Event', NS);
    const claims = await env.kube.list(API, 'DatabaseClaim', NS);
    const published = [logs, JSON.stringify(events.items.map((e: KubeObject) => e.message)), JSON.stringify(claims.items.map((c) => c.status))];
    expect(events.items.some((e: KubeObject) => e.reason === 'CredentialsRotated')).toBe(true);
    for (const s of seenSecrets) {
      for (const text of published) expect(text.includes(s), 'secret value leaked').toBe(false);
    }
  });
});
