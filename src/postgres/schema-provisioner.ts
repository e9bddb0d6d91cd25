// Per-claim schema on the shared PostgreSQL: a NOLOGIN owner role, a schema
// it owns that nobody else may use, optional allow-listed extensions, and
// (Static mode) one login role. Each method observes first and only runs DDL
// when something differs, so steady-state reconciles write nothing.
import type pg from 'pg';
import { quoteIdent, quoteLiteral } from './identifiers.js';

export interface ClaimSchema {
  schema: string;
  ownerRole: string;
  extensions: string[];
}

export interface EnsureResult {
  changed: boolean;
  /** extensions present in the claim's schema afterwards */
  extensions: string[];
  /** login roles in the owner role when observed (before any credentials were issued this reconcile) */
  loginMembers: string[];
}

export class SchemaConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaConflictError';
  }
}

interface Observed {
  ownerExists: boolean;
  ownerCanLogin: boolean;
  schemaOwner: string | null;
  publicHasAccess: boolean;
  searchPathSet: boolean;
  extensions: Map<string, string>;
  loginMembers: string[];
}

/** Login roles that are members of the owner role named by the query parameter `ownerParam` ("$1"). */
const loginMembersSql = (ownerParam: string) => `select m.rolname::text as rolname from pg_auth_members am
         join pg_roles o on o.oid = am.roleid join pg_roles m on m.oid = am.member
        where o.rolname = ${ownerParam} and m.rolcanlogin`;

/** How pg_db_role_setting may spell our search_path: PostgreSQL quotes keywords only. */
function searchPathSettings(schema: string): string[] {
  return [`search_path=${schema}`, `search_path=${quoteIdent(schema)}`];
}

export class SchemaProvisioner {
  constructor(private readonly pool: pg.Pool) {}

  /** Ends the pool (waits for queries in flight). */
  async close(): Promise<void> {
    await this.pool.end();
  }

  /** Cheap liveness probe that also proves the admin credentials work. */
  async ping(): Promise<{ serverVersion: string; superuser: boolean }> {
    const r = await this.pool.query<{ v: string; su: boolean }>(
      "select current_setting('server_version') as v, (select rolsuper from pg_roles where rolname = current_user) as su",
    );
    return { serverVersion: r.rows[0]!.v, superuser: r.rows[0]!.su };
  }

  /** Everything ensureClaimSchema compares, in one round trip. */
  private async observe(c: ClaimSchema): Promise<Observed> {
    const r = await this.pool.query<{
      owner_exists: boolean; owner_login: boolean | null; schema_owner: string | null; public_access: boolean | null; search_path: boolean;
      extensions: { extname: string; nspname: string }[] | null; members: string[] | null;
    }>(
      `select exists(select 1 from pg_roles where rolname = $2) as owner_exists,
              (select rolcanlogin from pg_roles where rolname = $2) as owner_login,
              (select pg_get_userbyid(nspowner) from pg_namespace where nspname = $1) as schema_owner,
              (select coalesce(bool_or(a.grantee = 0), false) from pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a where n.nspname = $1) as public_access,
              exists(select 1 from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
                     where r.rolname = $2 and s.setdatabase = 0 and s.setconfig && $3::text[]) as search_path,
              (select json_agg(json_build_object('extname', e.extname, 'nspname', n.nspname))
                 from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = any($4)) as extensions,
              (select array_agg(rolname order by rolname) from (${loginMembersSql('$2')}) lm) as members`,
      [c.schema, c.ownerRole, searchPathSettings(c.schema), c.extensions],
    );
    const row = r.rows[0]!;
    return {
      ownerExists: row.owner_exists,
      ownerCanLogin: !!row.owner_login,
      schemaOwner: row.schema_owner,
      publicHasAccess: !!row.public_access,
      searchPathSet: row.search_path,
      extensions: new Map((row.extensions ?? []).map((e) => [e.extname, e.nspname])),
      loginMembers: row.members ?? [],
    };
  }

  async ensureClaimSchema(c: ClaimSchema): Promise<EnsureResult> {
    const o = await this.observe(c);
    if (o.schemaOwner !== null && o.schemaOwner !== c.ownerRole) {
      // Never take over a schema someone else owns (another claim's schemaName, or an app's own).
      throw new SchemaConflictError(`schema ${c.schema} already exists and is owned by ${o.schemaOwner}, not ${c.ownerRole}`);
    }
    const missingExt = c.extensions.filter((e) => !o.extensions.has(e));
    const elsewhere = c.extensions.filter((e) => o.extensions.has(e) && o.extensions.get(e) !== c.schema);
    if (elsewhere.length) {
      throw new SchemaConflictError(`extension ${elsewhere.join(', ')} is already installed in schema ${o.extensions.get(elsewhere[0]!)}; an extension lives in one schema per database`);
    }
    const result = { extensions: [...c.extensions].sort(), loginMembers: o.loginMembers };
    const upToDate = o.ownerExists && !o.ownerCanLogin && o.schemaOwner === c.ownerRole && !o.publicHasAccess && o.searchPathSet && missingExt.length === 0;
    if (upToDate) return { changed: false, ...result };

    const owner = quoteIdent(c.ownerRole);
    const schema = quoteIdent(c.schema);
    const statements = [
      !o.ownerExists ? `create role ${owner} nologin` : o.ownerCanLogin ? `alter role ${owner} nologin` : undefined,
      // A CREATEROLE admin that is not superuser must be a member to hand the schema over.
      `do $$ begin if not (select rolsuper from pg_roles where rolname = current_user) then execute 'grant ${owner.replace(/'/g, "''")} to current_user'; end if; end $$`,
      `create schema if not exists ${schema} authorization ${owner}`,
      `revoke all on schema ${schema} from public`,
      `grant usage, create on schema ${schema} to ${owner}`,
      `alter role ${owner} set search_path to ${schema}`,
      ...missingExt.map((e) => `create extension if not exists ${quoteIdent(e)} with schema ${schema}`),
    ].filter((x): x is string => x !== undefined);
    // One simple-protocol message: PostgreSQL runs it as a single implicit
    // transaction (all or nothing) in one round trip. Every name in it is
    // quoted by quoteIdent; nothing user-supplied is interpolated otherwise.
    await this.pool.query(statements.join(';\n'));
    return { changed: true, ...result };
  }

  /**
   * Static mode's login role: a member of the owner role whose sessions run
   * as the owner, so every object it creates belongs to the claim, not to a
   * login that will be rotated away. `password` undefined only ensures the
   * role's shape and leaves the current password alone.
   */
  async ensureLoginRole(role: string, c: ClaimSchema, password?: string): Promise<{ changed: boolean }> {
    const r = await this.pool.query<{ login: boolean; member: boolean; cfg: string[] | null }>(
      `select r.rolcanlogin as login,
              pg_has_role(r.oid, (select oid from pg_roles where rolname = $2), 'MEMBER') as member,
              (select s.setconfig from pg_db_role_setting s where s.setrole = r.oid and s.setdatabase = 0) as cfg
         from pg_roles r where r.rolname = $1`,
      [role, c.ownerRole],
    );
    const row = r.rows[0];
    const cfg = row?.cfg ?? [];
    const cfgOk = cfg.includes(`role=${c.ownerRole}`) && searchPathSettings(c.schema).some((w) => cfg.includes(w));
    const shapeOk = !!row && row.login && row.member && cfgOk;
    if (shapeOk && password === undefined) return { changed: false };
    const login = quoteIdent(role);
    const owner = quoteIdent(c.ownerRole);
    await this.inTransaction(async (client) => {
        if (!row) await client.query(`create role ${login} login in role ${owner}`);
        else await client.query(`alter role ${login} login`);
        if (row && !row.member) await client.query(`grant ${owner} to ${login}`);
        if (password !== undefined) await client.query(`alter role ${login} password ${quoteLiteral(password)}`);
        await client.query(`alter role ${login} set role to ${owner}`);
        await client.query(`alter role ${login} set search_path to ${quoteIdent(c.schema)}`);
    });
    return { changed: true };
  }

  async roleExists(role: string): Promise<boolean> {
    const r = await this.pool.query('select 1 from pg_roles where rolname = $1', [role]);
    return r.rowCount === 1;
  }

  /** Login roles that are members of the owner role (Vault-issued and static). */
  async loginMembers(ownerRole: string): Promise<string[]> {
    const r = await this.pool.query<{ rolname: string }>(`${loginMembersSql('$1')} order by 1`, [ownerRole]);
    return r.rows.map((x) => x.rolname);
  }

  /** One transaction on one pooled connection; rolled back on any error. */
  private async inTransaction(fn: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('begin');
      await fn(client);
      await client.query('commit');
    } catch (err) {
      await client.query('rollback').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /** Ends a login: its objects go to the owner, its sessions end, the role goes. */
  async dropLoginRole(role: string, ownerRole: string): Promise<void> {
    if (!(await this.roleExists(role))) return;
    const login = quoteIdent(role);
    await this.pool.query('select pg_terminate_backend(pid) from pg_stat_activity where usename = $1', [role]);
    await this.inTransaction(async (client) => {
        if (await this.roleExists(ownerRole)) await client.query(`reassign owned by ${login} to ${quoteIdent(ownerRole)}`);
        await client.query(`drop owned by ${login}`);
        await client.query(`drop role if exists ${login}`);
    });
  }

  /**
   * deletionPolicy Delete, and only that: drops the schema with its data and
   * every role of the claim. Refuses a schema owned by anybody else.
   */
  async dropClaim(c: { schema: string; ownerRole: string }): Promise<void> {
    const o = await this.pool.query<{ owner: string }>('select pg_get_userbyid(nspowner) as owner from pg_namespace where nspname = $1', [c.schema]);
    const schemaOwner = o.rows[0]?.owner;
    if (schemaOwner !== undefined && schemaOwner !== c.ownerRole) {
      throw new SchemaConflictError(`refusing to drop schema ${c.schema}: it is owned by ${schemaOwner}, not ${c.ownerRole}`);
    }
    for (const m of await this.loginMembers(c.ownerRole)) await this.dropLoginRole(m, c.ownerRole);
    if (schemaOwner !== undefined) await this.pool.query(`drop schema if exists ${quoteIdent(c.schema)} cascade`);
    if (await this.roleExists(c.ownerRole)) {
      const owner = quoteIdent(c.ownerRole);
      await this.pool.query(`drop owned by ${owner}`);
      await this.pool.query(`drop role if exists ${owner}`);
    }
  }
}
