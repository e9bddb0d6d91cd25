// A throwaway Redis server (Debian's redis-server) on a loopback port, with
// no persistence: the tests that need durability test PostgreSQL, not Redis.
import { freePort, startProcess, tcpOpen, waitFor, workDir, type Managed } from './process.js';

export interface LocalRedis {
  host: string;
  port: number;
  url: string;
  proc: Managed;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

/** `podAddress`: also listen on the node's bridge address so pods reach it (hack/local/node.ts). */
export async function startRedis(opts: { port?: number; podAddress?: string } = {}): Promise<LocalRedis> {
  const dir = workDir('redis');
  const port = opts.port ?? (await freePort());
  const args = ['--port', String(port), '--bind', '127.0.0.1', ...(opts.podAddress ? [opts.podAddress] : []), '--save', '', '--appendonly', 'no', '--dir', dir];
  const launch = () => startProcess('redis', 'redis-server', args, { cwd: dir });
  const inst: LocalRedis = {
    host: '127.0.0.1',
    port,
    url: `redis://127.0.0.1:${port}`,
    proc: launch(),
    stop: () => inst.proc.stop(),
    async restart() {
      inst.proc = launch();
      await waitFor('redis', () => tcpOpen(port), { proc: inst.proc });
    },
  };
  await waitFor('redis', () => tcpOpen(port), { proc: inst.proc });
  return inst;
}
