// A throwaway OpenBao (Vault-compatible) dev server on loopback, built from
// the pinned Go module by hack/controlplane/build.sh. Dev mode keeps state in
// memory: a restart loses mounts, roles and leases, which is exactly the
// outage the operator must recover from by re-configuring.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess, waitFor, withFreePort, workDir, type Managed } from './process.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface LocalOpenBao {
  address: string;
  port: number;
  rootToken: string;
  proc: Managed;
  stop(): Promise<void>;
  /** start again on the same port with the same root token (state is gone: dev mode) */
  restart(): Promise<void>;
}

export function baoBinary(): string {
  const out = execFileSync('bash', [path.join(root, 'hack/controlplane/build.sh'), 'openbao'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return out.trim().split('\n').at(-1)!;
}

export async function startOpenBao(opts: { port?: number } = {}): Promise<LocalOpenBao> {
  const bin = baoBinary();
  return withFreePort(opts.port, async (port) => {
    // A directory per attempt: a retry's log must not show the last attempt's bind error.
    const dir = workDir('openbao');
    const rootToken = `dev-root-${randomBytes(12).toString('hex')}`;
    const address = `http://127.0.0.1:${port}`;
    const launch = () =>
      startProcess('openbao', bin, ['server', '-dev', `-dev-root-token-id=${rootToken}`, `-dev-listen-address=127.0.0.1:${port}`, '-log-level=warn'], {
        cwd: dir,
        // The dev server writes the root token to ~/.vault-token unless told otherwise.
        env: { HOME: dir, BAO_ADDR: address, VAULT_ADDR: address },
      });
    const ready = (proc: Managed) =>
      waitFor('openbao unsealed', async () => {
        const res = await fetch(`${address}/v1/sys/health`);
        // Our root token is known only to our server: on a bind race another OpenBao may answer on the port.
        return res.status === 200 && (await fetch(`${address}/v1/auth/token/lookup-self`, { headers: { 'X-Vault-Token': rootToken } })).ok;
      }, { proc, timeoutMs: 60_000 });
    const inst: LocalOpenBao = {
      address,
      port,
      rootToken,
      proc: launch(),
      async stop() {
        await inst.proc.stop(10_000);
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
