// Starts the runtime (src/runtime-services/main.ts) as a real child process,
// so tests can SIGKILL it like a crashed pod, and prepares PostgreSQL roles.
import path from 'node:path';
import pg from 'pg';
import { freePort, startProcess, waitFor, workDir, type Managed } from '../../hack/local/process.js';
import type { LocalPostgres } from '../../hack/local/postgres.js';

const MAIN = path.resolve('src/runtime-services/main.ts');
const TSX_LOADER = import.meta.resolve('tsx');

export interface RuntimeProcess {
  proc: Managed;
  port: number;
  url: string;
}

export async function spawnRuntime(name: string, env: Record<string, string>, opts: { waitReady?: boolean } = {}): Promise<RuntimeProcess> {
  const port = await freePort();
  // node --import tsx (not the tsx CLI): the CLI forks a grandchild that a
  // SIGKILL of the parent would leave running.
  const proc = startProcess(name, process.execPath, ['--import', TSX_LOADER, MAIN], {
    cwd: workDir(name),
    env: { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', REPLICA_ID: name, ...env },
  });
  const url = `http://127.0.0.1:${port}`;
  if (opts.waitReady ?? true) {
    await waitFor(`${name} ready`, async () => (await fetch(`${url}/ready`)).ok, { proc, timeoutMs: 60_000, intervalMs: 250 });
  }
  return { proc, port, url };
}

/** A non-superuser role owning its own database, as the service runs in production. */
export async function createAppDatabase(pgInst: LocalPostgres, role: string, database: string): Promise<string> {
  const admin = new pg.Client({ connectionString: pgInst.url });
  await admin.connect();
  try {
    const password = `${role}-pw`;
    const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (exists.rowCount === 0) await admin.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${password}'`);
    await admin.query(`CREATE DATABASE ${database} OWNER ${role}`);
    return `postgres://${role}:${password}@127.0.0.1:${pgInst.port}/${database}`;
  } finally {
    await admin.end();
  }
}

async function ensureRole(admin: pg.Client, role: string): Promise<string> {
  const password = `${role}-pw`;
  const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
  if (exists.rowCount === 0) await admin.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${password}'`);
  return password;
}

export interface AuditDatabase {
  /** The owner role: owns the database and runs the migrations. */
  ownerUrl: string;
  /** The role the audit service writes with: only the grants the migration gives. */
  appUrl: string;
  appRole: string;
}

/** A database owned by one role and written by another, as the audit service must run. */
export async function createAuditDatabase(pgInst: LocalPostgres, database: string, roles = { owner: 'audit_owner', app: 'audit_app' }): Promise<AuditDatabase> {
  const admin = new pg.Client({ connectionString: pgInst.url });
  await admin.connect();
  try {
    const ownerPw = await ensureRole(admin, roles.owner);
    const appPw = await ensureRole(admin, roles.app);
    await admin.query(`CREATE DATABASE ${database} OWNER ${roles.owner}`);
    const url = (role: string, pw: string) => `postgres://${role}:${pw}@127.0.0.1:${pgInst.port}/${database}`;
    return { ownerUrl: url(roles.owner, ownerPw), appUrl: url(roles.app, appPw), appRole: roles.app };
  } finally {
    await admin.end();
  }
}

export function superuserUrl(pgInst: LocalPostgres, database: string): string {
  return `postgres://${pgInst.user}:${pgInst.password}@127.0.0.1:${pgInst.port}/${database}`;
}
