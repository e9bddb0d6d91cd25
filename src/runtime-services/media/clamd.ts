// clamd INSTREAM client. The upload is framed to clamd while it streams in
// (<uint32 BE length><bytes>…, then a zero length), so scanning costs no
// second read. Every failure to get a verdict — refused connection, timeout,
// a closed socket, an "ERROR" reply — is a ScanUnavailableError: the caller
// must refuse the upload (fail closed), never treat it as clean.
import net from 'node:net';

export class ScanUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScanUnavailableError';
  }
}

export type ScanVerdict = { clean: true } | { clean: false; signature: string };

export interface ClamdOptions {
  host: string;
  port: number;
  connectTimeoutMs: number;
  /** No progress (a write draining or the verdict arriving) for this long → unavailable. */
  idleTimeoutMs: number;
}

/** One INSTREAM session; write chunks in order, then `finish()` for the verdict. */
export interface ScanSession {
  write(chunk: Buffer): Promise<void>;
  finish(): Promise<ScanVerdict>;
  /** Drops the connection (upload aborted); never throws. */
  abort(): void;
}

export function parseReply(reply: string): ScanVerdict {
  // `stream: OK` / `stream: <name> FOUND` / `<message> ERROR`
  const text = reply.replace(/\0+$/, '').trim();
  if (/^stream: OK$/.test(text)) return { clean: true };
  const found = /^stream: (.+) FOUND$/.exec(text);
  if (found) return { clean: false, signature: found[1]! };
  throw new ScanUnavailableError(`clamd answered ${JSON.stringify(text.slice(0, 200))}`);
}

const MAX_FRAME = 1 << 20;

export function openScan(opts: ClamdOptions): Promise<ScanSession> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: opts.host, port: opts.port });
    let reply = '';
    let failure: ScanUnavailableError | undefined;
    let onReply: ((r: string) => void) | undefined;
    let onFail: ((e: Error) => void) | undefined;
    let connected = false;
    const fail = (msg: string) => {
      failure ??= new ScanUnavailableError(msg);
      sock.destroy();
      if (!connected) {
        clearTimeout(connectTimer);
        reject(failure);
      }
      onFail?.(failure);
    };
    const connectTimer = setTimeout(() => {
      fail(`clamd at ${opts.host}:${opts.port} did not accept a connection within ${opts.connectTimeoutMs} ms`);
    }, opts.connectTimeoutMs);
    sock.setNoDelay(true);
    sock.on('data', (d) => {
      reply += d.toString('latin1');
      // clamd answers early (and closes) when the stream exceeds StreamMaxLength.
      if (reply.includes('\0')) onReply?.(reply);
    });
    sock.on('error', (err) => fail(`clamd at ${opts.host}:${opts.port}: ${err.message}`));
    sock.on('close', () => {
      if (reply.includes('\0')) onReply?.(reply);
      else fail(`clamd at ${opts.host}:${opts.port} closed the connection before a verdict`);
    });
    sock.setTimeout(opts.idleTimeoutMs, () => fail(`clamd at ${opts.host}:${opts.port} made no progress for ${opts.idleTimeoutMs} ms`));
    sock.once('connect', () => {
      connected = true;
      clearTimeout(connectTimer);
      sock.write('zINSTREAM\0');
      const writeRaw = (buf: Buffer) =>
        new Promise<void>((res, rej) => {
          if (failure) return rej(failure);
          if (reply.includes('\0')) {
            // A reply before the end means clamd stopped reading (size limit).
            return rej(new ScanUnavailableError(`clamd stopped the stream: ${reply.replace(/\0+$/, '').trim()}`));
          }
          if (sock.write(buf)) return res();
          const onDrain = () => {
            onFail = undefined;
            res();
          };
          onFail = (e) => {
            sock.off('drain', onDrain);
            rej(e);
          };
          sock.once('drain', onDrain);
        });
      resolve({
        async write(chunk) {
          for (let off = 0; off < chunk.length; off += MAX_FRAME) {
            const part = chunk.subarray(off, Math.min(chunk.length, off + MAX_FRAME));
            const head = Buffer.allocUnsafe(4);
            head.writeUInt32BE(part.length, 0);
            // One write per frame keeps the syscall count down for small chunks.
            await writeRaw(part.length < 64 * 1024 ? Buffer.concat([head, part]) : head);
            if (part.length >= 64 * 1024) await writeRaw(part);
          }
        },
        finish() {
          return new Promise<ScanVerdict>((res, rej) => {
            const settle = (r: string) => {
              onReply = undefined;
              onFail = undefined;
              sock.end();
              try {
                res(parseReply(r));
              } catch (err) {
                rej(err);
              }
            };
            onFail = rej;
            if (failure) return rej(failure);
            onReply = settle;
            if (reply.includes('\0')) return settle(reply);
            sock.write(Buffer.alloc(4));
          });
        },
        abort() {
          failure ??= new ScanUnavailableError('scan aborted');
          sock.destroy();
        },
      });
    });
  });
}

/** PING → PONG, for readiness. */
export async function pingClamd(opts: ClamdOptions): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const sock = net.connect({ host: opts.host, port: opts.port });
    let buf = '';
    sock.setTimeout(opts.connectTimeoutMs, () => {
      sock.destroy();
      reject(new Error(`clamd at ${opts.host}:${opts.port} did not answer PING within ${opts.connectTimeoutMs} ms`));
    });
    sock.on('connect', () => sock.write('zPING\0'));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (!buf.includes('\0')) return;
      sock.end();
      if (buf.startsWith('PONG')) resolve();
      else reject(new Error(`clamd at ${opts.host}:${opts.port} answered ${JSON.stringify(buf.slice(0, 100))} to PING`));
    });
    sock.on('error', (err) => reject(new Error(`clamd at ${opts.host}:${opts.port}: ${err.message}`)));
  });
}
