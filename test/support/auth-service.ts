// Runs the platform's auth service (the runtime with RUNTIME_SERVICES=auth)
// as a real process bound to a host-side veth address, so it can be both the
// gateway's forward-auth address and an EndpointSlice endpoint (the apiserver
// refuses loopback ones) for the login host.
import path from 'node:path';
import { freePort, startProcess, waitFor, workDir, type Managed } from '../../hack/local/process.js';
import { createNetnsLink, type NetnsLink } from '../../hack/local/netns-backend.js';

const MAIN = path.resolve('src/runtime-services/main.ts');
const TSX_LOADER = import.meta.resolve('tsx');

export interface AuthService {
  address: string;
  port: number;
  url: string;
  proc: Managed;
  logs(): string;
  start(): Promise<void>;
  stop(): Promise<void>;
  remove(): Promise<void>;
}

/** `envFor` adds settings that depend on the address the service gets (e.g. a certificate for it). */
export async function startAuthService(env: Record<string, string>, envFor?: (address: string) => Record<string, string>): Promise<AuthService> {
  const link: NetnsLink = createNetnsLink();
  env = { ...env, ...envFor?.(link.hostAddress) };
  const port = await freePort();
  const dir = workDir('auth-service');
  const url = `http://${link.hostAddress}:${port}`;
  let proc!: Managed;
  const start = async () => {
    proc = startProcess('auth', process.execPath, ['--import', TSX_LOADER, MAIN], {
      cwd: dir,
      env: { RUNTIME_SERVICES: 'auth', HOST: link.hostAddress, PORT: String(port), LOG_LEVEL: 'info', REPLICA_ID: 'auth-e2e', ...env },
    });
    await waitFor('auth service ready', async () => (await fetch(`${url}/ready`)).ok, { proc, timeoutMs: 60_000, intervalMs: 250 });
  };
  await start();
  const { readFileSync } = await import('node:fs');
  return {
    address: link.hostAddress,
    port,
    url,
    get proc() { return proc; },
    logs: () => readFileSync(proc.logFile, 'utf8'),
    start,
    stop: () => proc.stop(5000),
    async remove() {
      await proc.stop(5000);
      link.remove();
    },
  };
}
