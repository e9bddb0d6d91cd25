// The freePort race: a port freePort() returned can be taken by another
// process before our server binds it. withFreePort (used by the PostgreSQL,
// Redis and OpenBao starters) must start again on a new port then, and
// only then. The "server" here is a real child process that binds a port.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, isBindRace, startProcess, waitFor, withFreePort, workDir } from '../../hack/local/process.js';

const SERVER = "const s = require('net').createServer(); s.on('error', (e) => { console.error(String(e)); process.exit(1); }); s.listen(Number(process.argv[1]), '127.0.0.1', () => console.log('listening'));";

let blocker: net.Server;
let taken: number;
const started: { stop(): Promise<void> }[] = [];

/** Starts the child on `port`; resolves once it listens, throws (with its log) if it exits. */
async function startServer(port: number): Promise<number> {
  const dir = workDir('port-race');
  const proc = startProcess('server', process.execPath, ['-e', SERVER, String(port)], { cwd: dir });
  started.push(proc);
  await waitFor(`server on ${port}`, async () => (await import('node:fs')).readFileSync(proc.logFile, 'utf8').includes('listening'), { proc, timeoutMs: 10_000, intervalMs: 20 });
  return port;
}

beforeAll(async () => {
  blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  taken = (blocker.address() as net.AddressInfo).port;
});
afterAll(async () => {
  blocker.close();
  await Promise.all(started.map((p) => p.stop()));
});

describe('withFreePort', () => {
  it('starts again on a new port when the picked one was taken meanwhile', async () => {
    const picked: number[] = [];
    const pick = async () => {
      const p = picked.length === 0 ? taken : await freePort();
      picked.push(p);
      return p;
    };
    const port = await withFreePort(undefined, startServer, { pick });
    expect(picked[0]).toBe(taken);
    expect(picked).toHaveLength(2);
    expect(port).toBe(picked[1]);
    expect(port).not.toBe(taken);
  });

  it('tries a fixed port once and reports the bind error', async () => {
    let calls = 0;
    const err = await withFreePort(taken, async (p) => {
      calls++;
      return startServer(p);
    }).then(() => undefined, (e: unknown) => e);
    expect(calls).toBe(1);
    expect(String(err)).toMatch(/EADDRINUSE/);
    expect(isBindRace(err)).toBe(true);
  });

  it('does not retry a failure that is not a bind race', async () => {
    let calls = 0;
    await expect(withFreePort(undefined, async () => {
      calls++;
      throw new Error('initdb: permission denied');
    })).rejects.toThrow('initdb: permission denied');
    expect(calls).toBe(1);
  });

  it('gives up after the attempts it was given', async () => {
    let calls = 0;
    await expect(withFreePort(undefined, async () => {
      calls++;
      return startServer(taken);
    }, { attempts: 3 })).rejects.toThrow(/EADDRINUSE/);
    expect(calls).toBe(3);
  });
});
