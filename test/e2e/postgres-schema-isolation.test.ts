// The schema provider against a real PostgreSQL: isolation between claims is
// proven by connecting as each claim's login role, not by reading catalogs.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { adminPool, closeAdminPools } from '../../src/postgres/admin-pool.js';
import { claimIdentifiers } from '../../src/postgres/identifiers.js';
import { SchemaConflictError, SchemaProvisioner } from '../../src/postgres/schema-provisioner.js';

describe('PostgreSQL schema provisioning', () => {
  let db: LocalPostgres;
  let prov: SchemaProvisioner;
  let admin: pg.Pool;
  const a = claimIdentifiers('family', 'photos');
  const b = claimIdentifiers('family', 'recipes');
  const pwA = randomBytes(18).toString('base64url');
  const pwB = randomBytes(18).toString('base64url');

  const connectAs = async (user: string, password: string) => {
    const c = new pg.Client({ host: db.host, port: db.port, database: 'postgres', user, password });
    await c.connect();
    return c;
  };

  beforeAll(async () => {
    db = await startPostgres();
    admin = adminPool({ host: db.host, port: db.port, database: 'postgres', sslMode: 'disable', user: db.user, password: db.password });
    prov = new SchemaProvisioner(admin);
  });
  afterAll(async () => {
    await closeAdminPools();
    await db?.stop();
  });

  it('creates schema, NOLOGIN owner and login roles; a second ensure changes nothing', async () => {
    expect((await prov.ensureClaimSchema({ ...a, extensions: [] })).changed).toBe(true);
    expect((await prov.ensureClaimSchema({ ...a, extensions: [] })).changed).toBe(false);
    await prov.ensureClaimSchema({ ...b, extensions: [] });
    expect((await prov.ensureLoginRole(a.staticLoginRole, { ...a, extensions: [] }, pwA)).changed).toBe(true);
    expect((await prov.ensureLoginRole(a.staticLoginRole, { ...a, extensions: [] })).changed).toBe(false);
    await prov.ensureLoginRole(b.staticLoginRole, { ...b, extensions: [] }, pwB);
    const r = await admin.query('select rolname, rolcanlogin from pg_roles where rolname = $1', [a.ownerRole]);
    expect(r.rows).toEqual([{ rolname: a.ownerRole, rolcanlogin: false }]);
    // NOLOGIN and no password: refused at authentication.
    await expect(connectAs(a.ownerRole, 'x')).rejects.toThrow(/password authentication failed|not permitted to log in/);
  });

  it('a claim works in its own schema, cannot touch another claim\'s schema, and cannot create in public', async () => {
    const ca = await connectAs(a.staticLoginRole, pwA);
    const cb = await connectAs(b.staticLoginRole, pwB);
    try {
      await ca.query('create table notes (id serial primary key, body text)');
      await ca.query("insert into notes (body) values ('hello')");
      const where = await ca.query("select schemaname, tableowner from pg_tables where tablename = 'notes'");
      // Unqualified names land in the claim's schema and belong to the owner role, not the login.
      expect(where.rows).toEqual([{ schemaname: a.schema, tableowner: a.ownerRole }]);
      await cb.query('create table secrets (v text)');
      await expect(ca.query(`select * from "${b.schema}".secrets`)).rejects.toThrow(/permission denied for schema/);
      await expect(ca.query(`create table "${b.schema}".intruder (x int)`)).rejects.toThrow(/permission denied for schema/);
      await expect(cb.query(`select * from "${a.schema}".notes`)).rejects.toThrow(/permission denied for schema/);
      await expect(ca.query('create table public.leak (x int)')).rejects.toThrow(/permission denied for schema public/);
      // Even RESET ROLE does not open another claim's schema.
      await ca.query('reset role');
      await expect(ca.query(`select * from "${b.schema}".secrets`)).rejects.toThrow(/permission denied/);
    } finally {
      await ca.end();
      await cb.end();
    }
  });

  it('refuses to take over a schema owned by someone else', async () => {
    // Another claim's derived schema cannot even be named (fh_ is reserved)...
    expect(() => claimIdentifiers('other', 'thief', b.schema)).toThrow(/reserved/);
    // ...and a schema someone else owns is never adopted or dropped.
    await admin.query('create role legacy_owner nologin');
    await admin.query('create schema legacy authorization legacy_owner');
    await admin.query('create table legacy.secrets (v text)');
    const thief = claimIdentifiers('other', 'thief', 'legacy');
    await expect(prov.ensureClaimSchema({ ...thief, extensions: [] })).rejects.toThrow(SchemaConflictError);
    await expect(prov.dropClaim(thief)).rejects.toThrow(SchemaConflictError);
    const still = await admin.query("select count(*)::int as n from pg_tables where schemaname = any($1) and tablename = 'secrets'", [['legacy', b.schema]]);
    expect(still.rows[0].n).toBe(2);
  });

  it('installs an extension into the claim schema', async () => {
    const c = claimIdentifiers('family', 'crypto');
    const res = await prov.ensureClaimSchema({ ...c, extensions: ['pgcrypto'] });
    expect(res.extensions).toEqual(['pgcrypto']);
    const r = await admin.query("select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace where extname = 'pgcrypto'");
    expect(r.rows[0].nspname).toBe(c.schema);
    expect((await prov.ensureClaimSchema({ ...c, extensions: ['pgcrypto'] })).changed).toBe(false);
  });

  it('hostile names are created verbatim-safe and cannot inject', async () => {
    const h = claimIdentifiers('family', `robert'); drop table notes; --${'x'.repeat(200)}`);
    await prov.ensureClaimSchema({ ...h, extensions: [] });
    const r = await admin.query('select nspname from pg_namespace where nspname = $1', [h.schema]);
    expect(r.rowCount).toBe(1);
    const notes = await admin.query(`select count(*)::int as n from "${a.schema}".notes`);
    expect(notes.rows[0].n).toBe(1);
    await prov.dropClaim(h);
  });

  it('dropLoginRole reassigns objects to the owner; dropClaim removes schema and roles', async () => {
    const ca = await connectAs(a.staticLoginRole, pwA);
    await ca.query('reset role');
    await ca.query('create table mine (x int)');
    await ca.end();
    await prov.dropLoginRole(a.staticLoginRole, a.ownerRole);
    expect(await prov.roleExists(a.staticLoginRole)).toBe(false);
    const owner = await admin.query(`select tableowner from pg_tables where schemaname = $1 and tablename = 'mine'`, [a.schema]);
    expect(owner.rows[0].tableowner).toBe(a.ownerRole);
    await prov.dropClaim(a);
    expect(await prov.roleExists(a.ownerRole)).toBe(false);
    expect((await admin.query('select 1 from pg_namespace where nspname = $1', [a.schema])).rowCount).toBe(0);
    // The other claim is untouched.
    expect((await admin.query(`select count(*)::int as n from "${b.schema}".secrets`)).rows[0].n).toBe(0);
  });
});
