// Starts the runtime (src/runtime-services/main.ts) as a real child process,
// so tests can SIGKILL it like a crashed pod, and prepares PostgreSQL roles.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { WebSocket } from 'ws';
import { freePort, startProcess, waitFor, workDir, type Managed } from '../../hack/local/process.js';
import type { LocalPostgres } from '../../hack/local/postgres.js';

const MAIN = path.resolve('src/runtime-services/main.ts');
const TSX_LOADER = import.meta.resolve('tsx');

export interface RuntimeProcess {
  proc: Managed;
  port: number;
  url: string;
}

/** Every runtime process this test file spawned (each file has its own module), for the log checks at its end. */
export const spawnedRuntimes: RuntimeProcess[] = [];

/**
 * The labels of `secrets` (label → value) found in the log of any runtime
 * process this file spawned: a suite's last check is that this is empty.
 */
export function secretsInRuntimeLogs(secrets: Record<string, string>): string[] {
  const logs = spawnedRuntimes.map((r) => ({ name: r.proc.name, text: readFileSync(r.proc.logFile, 'utf8') }));
  return Object.entries(secrets).filter(([, v]) => v).flatMap(([label, v]) => logs.filter((l) => l.text.includes(v)).map((l) => `${label} in ${l.name}'s log`));
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
  spawnedRuntimes.push({ proc, port, url });
  if (opts.waitReady ?? true) {
    await waitFor(`${name} ready`, async () => (await fetch(`${url}/ready`)).ok, { proc, timeoutMs: 60_000, intervalMs: 250 });
  }
  return { proc, port, url };
}

/** The password the harness gives a role it creates (a test knows it, so its logs can be searched for it). */
export const rolePassword = (role: string) => `${role}-pw`;

/** A non-superuser role owning its own database, as the service runs in production. */
export async function createAppDatabase(pgInst: LocalPostgres, role: string, database: string): Promise<string> {
  const admin = new pg.Client({ connectionString: pgInst.url });
  await admin.connect();
  try {
    const password = rolePassword(role);
    const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (exists.rowCount === 0) await admin.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${password}'`);
    await admin.query(`CREATE DATABASE ${database} OWNER ${role}`);
    return `postgres://${role}:${password}@127.0.0.1:${pgInst.port}/${database}`;
  } finally {
    await admin.end();
  }
}

async function ensureRole(admin: pg.Client, role: string): Promise<string> {
  const password = rolePassword(role);
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
export async function createAuditDatabase(
  pgInst: LocalPostgres,
  database: string,
  roles = { owner: 'audit_owner', app: 'audit_app' },
  /** Lets the service role create its own schemas (chat beside audit in one database). */
  opts: { appMayCreateSchemas?: boolean } = {},
): Promise<AuditDatabase> {
  const admin = new pg.Client({ connectionString: pgInst.url });
  await admin.connect();
  try {
    const ownerPw = await ensureRole(admin, roles.owner);
    const appPw = await ensureRole(admin, roles.app);
    await admin.query(`CREATE DATABASE ${database} OWNER ${roles.owner}`);
    if (opts.appMayCreateSchemas) await admin.query(`GRANT CREATE ON DATABASE ${database} TO ${roles.app}`);
    const url = (role: string, pw: string) => `postgres://${role}:${pw}@127.0.0.1:${pgInst.port}/${database}`;
    return { ownerUrl: url(roles.owner, ownerPw), appUrl: url(roles.app, appPw), appRole: roles.app };
  } finally {
    await admin.end();
  }
}

export function superuserUrl(pgInst: LocalPostgres, database: string): string {
  return `postgres://${pgInst.user}:${pgInst.password}@127.0.0.1:${pgInst.port}/${database}`;
}

export type Frame = { type: string; [k: string]: unknown };

/** A chat WebSocket client that records every frame it receives. */
export class ChatClient {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      this.frames.push(JSON.parse(d.toString()) as Frame);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static open(url: string, token?: string): ChatClient {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/api/chat/ws`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    ws.on('error', () => {});
    return new ChatClient(ws);
  }

  static async connect(url: string, token: string): Promise<ChatClient> {
    const c = ChatClient.open(url, token);
    await c.next((f) => f.type === 'ready');
    return c;
  }

  send(frame: object): void {
    this.ws.send(JSON.stringify(frame));
  }

  async next(pred: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      if (Date.now() > deadline) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  messages(channel: string): { offset: number; text: string; from: string }[] {
    return this.frames.filter((f) => f.type === 'message' && f.channel === channel) as never;
  }

  async waitMessages(channel: string, n: number, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages(channel).length < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.messages(channel).length} of ${n} messages within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  async join(channel: string, since?: number): Promise<Frame> {
    this.send({ type: 'join', channel, ...(since === undefined ? {} : { since }) });
    return this.next((f) => f.type === 'joined' && f.channel === channel);
  }

  close(): void {
    this.ws.close();
  }
}
