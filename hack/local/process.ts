// Small supervisor for the real servers the tests and `npm run dev` start on
// loopback (etcd, kube-apiserver, PostgreSQL, Redis, OpenBao, IdPs, clamd).
// Each server gets its own working directory and log file so a failing test
// can point at the log instead of swallowing it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface Managed {
  name: string;
  child: ChildProcess;
  logFile: string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL at once: for crash tests. */
  kill(): Promise<void>;
}

export function workDir(prefix: string): string {
  const base = process.env.FAMILYHUB_RUN_DIR ?? path.join(os.tmpdir(), 'familyhub');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(path.join(base, `${prefix}-`));
}

/** Asks the kernel for a free loopback port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** A server failed to start because its port was taken after we picked it (the freePort race). */
export function isBindRace(err: unknown): boolean {
  return /address already in use|port already bound|EADDRINUSE/i.test(String(err));
}

/**
 * Starts a server on a port from freePort(), and on a bind race (another
 * process took the port between freePort() and the server's bind) starts
 * it again on a new port, up to `attempts` times. A fixed port is tried
 * once: the caller asked for exactly that one. `start` must throw when its
 * server exits (waitFor with `proc` does, with the log tail that names the
 * bind error).
 */
export async function withFreePort<T>(fixed: number | undefined, start: (port: number) => Promise<T>, opts: { attempts?: number; pick?: () => Promise<number> } = {}): Promise<T> {
  const attempts = fixed === undefined ? (opts.attempts ?? 3) : 1;
  for (let attempt = 1; ; attempt++) {
    const port = fixed ?? (await (opts.pick ?? freePort)());
    try {
      return await start(port);
    } catch (err) {
      if (attempt >= attempts || !isBindRace(err)) throw err;
    }
  }
}

export function startProcess(
  name: string,
  cmd: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv },
): Managed {
  const logFile = path.join(opts.cwd, `${name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  // Never leave servers behind when the test process dies.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  return {
    name,
    child,
    logFile,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      process.removeListener('exit', reap);
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
      process.removeListener('exit', reap);
    },
  };
}

export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls `check` until it resolves true; fails with the server's log tail. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  opts: { timeoutMs?: number; intervalMs?: number; proc?: Managed } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let lastErr: unknown;
  while (Date.now() < deadline) {
    if (opts.proc && (opts.proc.child.exitCode !== null || opts.proc.child.signalCode !== null)) {
      throw new Error(`${what}: process exited (${opts.proc.child.exitCode ?? opts.proc.child.signalCode}); log ${opts.proc.logFile}:\n${tail(opts.proc.logFile)}`);
    }
    try {
      if (await check()) return;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 200));
  }
  const log = opts.proc ? `\nlog ${opts.proc.logFile}:\n${tail(opts.proc.logFile)}` : '';
  throw new Error(`timed out waiting for ${what}${lastErr ? ` (last error: ${String(lastErr)})` : ''}${log}`);
}

export function tcpOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}
