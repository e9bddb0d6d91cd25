// A throwaway S3-compatible server on loopback: versitygw (an S3 gateway onto
// a POSIX directory) built from its pinned Go module by
// hack/go/versitygw/build.sh. Objects end up as plain files under
// <dir>/<bucket>/<key>, so tests can check what was (not) stored.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { freePort, startProcess, tcpOpen, waitFor, workDir, type Managed } from './process.js';

export interface LocalS3 {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** The backing directory: one subdirectory per bucket. */
  dir: string;
  proc: Managed;
  stop(): Promise<void>;
}

export function versitygwBinary(): string {
  const script = path.resolve(import.meta.dirname, '../go/versitygw/build.sh');
  return execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!;
}

export async function startS3(): Promise<LocalS3> {
  const bin = versitygwBinary();
  const base = workDir('s3');
  const dir = path.join(base, 'data');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  // Test-only credentials for a loopback server that lives as long as the test.
  const accessKeyId = 'familyhub-test';
  const secretAccessKey = `local-${port}-secret-key`;
  const proc = startProcess('versitygw', bin, ['--port', `127.0.0.1:${port}`, '--access', accessKeyId, '--secret', secretAccessKey, '--region', 'us-east-1', 'posix', dir], { cwd: base });
  await waitFor('versitygw listening', () => tcpOpen(port), { proc, timeoutMs: 30_000 });
  return { endpoint: `http://127.0.0.1:${port}`, accessKeyId, secretAccessKey, region: 'us-east-1', dir, proc, stop: () => proc.stop() };
}
