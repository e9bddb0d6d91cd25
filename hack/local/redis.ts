// A throwaway Redis server (Debian's redis-server) on a loopback port, with
// no persistence: the tests that need durability test PostgreSQL, not Redis.
import net from 'node:net';
import { startProcess, waitFor, withFreePort, workDir, type Managed } from './process.js';

/**
 * True once the Redis answering on `port` is the process `pid`. An open
 * port alone is not enough: on a bind race it belongs to whoever took it
 * (possibly another test's Redis) while our redis-server exits.
 */
function answersAs(port: number, pid: number | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.on('connect', () => s.write('INFO server\r\n'));
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
  url: string;
  proc: Managed;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

/**
 * `podAddress`: also listen on the node's bridge address so pods reach it
 * (hack/local/node.ts). Protected mode is then off: it refuses every
 * non-loopback client of a password-less Redis, which is all the pods.
 */
export async function startRedis(opts: { port?: number; podAddress?: string } = {}): Promise<LocalRedis> {
  return withFreePort(opts.port, async (port) => {
    // A directory per attempt: a retry's log must not show the last attempt's bind error.
    const dir = workDir('redis');
    const args = ['--port', String(port), '--bind', '127.0.0.1', ...(opts.podAddress ? [opts.podAddress, '--protected-mode', 'no'] : []), '--save', '', '--appendonly', 'no', '--dir', dir];
    const launch = () => startProcess('redis', 'redis-server', args, { cwd: dir });
    const inst: LocalRedis = {
      host: '127.0.0.1',
      port,
      url: `redis://127.0.0.1:${port}`,
      proc: launch(),
      stop: () => inst.proc.stop(),
      async restart() {
        inst.proc = launch();
        await waitFor('redis', () => answersAs(port, inst.proc.child.pid), { proc: inst.proc });
      },
    };
    try {
      await waitFor('redis', () => answersAs(port, inst.proc.child.pid), { proc: inst.proc });
    } catch (err) {
      await inst.proc.stop();
      throw err;
    }
    return inst;
  });
}
