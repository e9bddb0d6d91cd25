// A throwaway clamd (Debian's clamav-daemon) on a loopback TCP port with a
// tiny local signature database. freshclam cannot reach its mirrors here, and
// tests only need a known detection, so the database is the EICAR test file's
// signatures in ClamAV's own text formats (.ndb body pattern, .hdb MD5) —
// the same bytes every antivirus vendor publishes for exactly this purpose.
import { writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, startProcess, waitFor, workDir, type Managed } from './process.js';

export interface LocalClamd {
  host: string;
  port: number;
  proc: Managed;
  stop(): Promise<void>;
  /** Start again on the same port (outage tests). */
  restart(): Promise<void>;
}

// 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE' in hex: present in the EICAR file and
// unlikely anywhere else, so the .ndb rule only fires on the test file.
const NDB = 'Eicar-Test-Body:0:*:45494341522d5354414e444152442d414e544956495255532d544553542d46494c45\n';
// MD5 and size of the canonical 68-byte EICAR file.
const HDB = '44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n';

export interface ClamdOptions {
  port?: number;
  /** clamd's StreamMaxLength; larger INSTREAM uploads are cut off by clamd. */
  streamMaxBytes?: number;
  maxThreads?: number;
}

/** PING → PONG over the TCP socket: the database is loaded once clamd answers. */
export async function clamdPing(port: number, host = '127.0.0.1', timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    let buf = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.on('connect', () => s.write('zPING\0'));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\0')) done(buf.startsWith('PONG'));
    });
    s.on('error', () => done(false));
    s.on('close', () => done(buf.startsWith('PONG')));
  });
}

export async function startClamd(opts: ClamdOptions = {}): Promise<LocalClamd> {
  const dir = workDir('clamd');
  const dbDir = path.join(dir, 'db');
  mkdirSync(dbDir, { recursive: true });
  writeFileSync(path.join(dbDir, 'familyhub-test.ndb'), NDB);
  writeFileSync(path.join(dbDir, 'familyhub-test.hdb'), HDB);
  const port = opts.port ?? (await freePort());
  const streamMax = opts.streamMaxBytes ?? 256 * 1024 * 1024;
  const conf = path.join(dir, 'clamd.conf');
  writeFileSync(
    conf,
    [
      `DatabaseDirectory ${dbDir}`,
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      'Foreground yes',
      `LogFile ${path.join(dir, 'clamd-scan.log')}`,
      `PidFile ${path.join(dir, 'clamd.pid')}`,
      `TemporaryDirectory ${dir}`,
      // Only our own database: without this clamd also wants the official ones.
      'OfficialDatabaseOnly no',
      // The database never changes while a test runs; skip the periodic reload check.
      'SelfCheck 0',
      `StreamMaxLength ${streamMax}`,
      `MaxScanSize ${streamMax}`,
      `MaxFileSize ${streamMax}`,
      `MaxThreads ${opts.maxThreads ?? 8}`,
      'ReadTimeout 30',
      'CommandReadTimeout 10',
      'IdleTimeout 30',
      'ExtendedDetectionInfo no',
      // ClamAV 1.x decodes images to compute fuzzy hashes (used by phishing
      // signatures we do not load): a 144-megapixel PNG bomb then held a scan
      // for ~10 s. Decoding untrusted pixels is the media service's job, behind
      // its own pixel limit.
      'ScanImageFuzzyHash no',
      '',
    ].join('\n'),
  );
  const launch = () => startProcess('clamd', 'clamd', ['--config-file', conf, '--foreground'], { cwd: dir });
  const inst: LocalClamd = {
    host: '127.0.0.1',
    port,
    proc: launch(),
    stop: () => inst.proc.stop(),
    async restart() {
      inst.proc = launch();
      await waitFor('clamd answering PING', () => clamdPing(port), { proc: inst.proc, timeoutMs: 60_000 });
    },
  };
  await waitFor('clamd answering PING', () => clamdPing(port), { proc: inst.proc, timeoutMs: 60_000 });
  return inst;
}
