// A throwaway Redis server (Debian's redis-server) on a loopback port, with
// no persistence: the tests that need durability test PostgreSQL, not Redis.
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startProcess, waitFor, withFreePort, workDir, type Managed } from './process.js';

/**
 * True once the Redis answering on `port` is the process `pid`. An open
 * port alone is not enough: on a bind race it belongs to whoever took it
 * (possibly another test's Redis) while our redis-server exits.
 */
function answersAs(port: number, pid: number | undefined, password?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    // RESP array form, so the password is one bulk string whatever it holds.
    const auth = password ? `*2\r\n$4\r\nAUTH\r\n$${Buffer.byteLength(password)}\r\n${password}\r\n` : '';
    s.on('connect', () => s.write(`${auth}INFO server\r\n`));
    s.on('data', (d) => {
      got += d.toString();
      const m = /process_id:(\d+)\r\n/.exec(got);
      if (m) done(Number(m[1]) === pid);
    });
    s.on('error', () => done(false));
  });
}

export interface LocalRedis {
  host: string;
  port: number;
  /** Without the password (see `password`): a URL is too easily logged. */
  url: string;
  /** Set when started with one: clients must AUTH with it. */
  password?: string;
  proc: Managed;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

/**
 * `podAddress`: also listen on the node's bridge address so pods reach it
 * (hack/local/node.ts). Protected mode is then off: it refuses every
 * non-loopback client of a password-less Redis, which is all the pods.
 * `password`: every client must AUTH with it (requirepass). It goes in a
 * config file, not on the command line, where ps and logs would show it.
 */
export async function startRedis(opts: { port?: number; podAddress?: string; password?: string } = {}): Promise<LocalRedis> {
  return withFreePort(opts.port, async (port) => {
    // A directory per attempt: a retry's log must not show the last attempt's bind error.
    const dir = workDir('redis');
    const conf: string[] = [];
    if (opts.password) {
      // redis.conf would need quoting for anything else; test passwords are random base64url/hex.
      if (!/^[A-Za-z0-9._~+/=-]+$/.test(opts.password)) throw new Error('startRedis: password must be of [A-Za-z0-9._~+/=-]');
      const file = path.join(dir, 'auth.conf');
      writeFileSync(file, `requirepass ${opts.password}\n`, { mode: 0o600 });
      conf.push(file);
    }
    const args = [...conf, '--port', String(port), '--bind', '127.0.0.1', ...(opts.podAddress ? [opts.podAddress, '--protected-mode', 'no'] : []), '--save', '', '--appendonly', 'no', '--dir', dir];
    const launch = () => startProcess('redis', 'redis-server', args, { cwd: dir });
    const inst: LocalRedis = {
      host: '127.0.0.1',
      port,
      url: `redis://127.0.0.1:${port}`,
      ...(opts.password ? { password: opts.password } : {}),
      proc: launch(),
      stop: () => inst.proc.stop(),
      async restart() {
        inst.proc = launch();
        await waitFor('redis', () => answersAs(port, inst.proc.child.pid, opts.password), { proc: inst.proc });
      },
    };
    try {
      await waitFor('redis', () => answersAs(port, inst.proc.child.pid, opts.password), { proc: inst.proc });
    } catch (err) {
      await inst.proc.stop();
      throw err;
    }
    return inst;
  });
}
