// The README's first command (`npm run dev` = hack/dev.sh → hack/dev.ts)
// brings up the whole local platform and gets a FamilyHub Ready. `--smoke`
// makes it exit once that happened, so this test proves the command works.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { workDir } from '../../hack/local/process.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('npm run dev', () => {
  it('starts control plane, PostgreSQL, Redis, dev IdP and the operator, the sample FamilyHub becomes Ready, and no log holds a secret', async () => {
    const report = path.join(workDir('dev-command'), 'smoke-report.json');
    const child = spawn(process.execPath, ['--import', 'tsx', 'hack/dev.ts', '--smoke'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FAMILYHUB_DEV_SMOKE_REPORT: report },
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(out).toContain('FamilyHub family/home is Ready.');
    expect(code, out).toBe(0);
    const { logs, secrets } = JSON.parse(readFileSync(report, 'utf8')) as { logs: string; secrets: string[] };
    // The operator's own lines are there (it became leader), so an empty capture cannot pass.
    expect(logs).toContain('became leader');
    // The three this command created, plus what the operator issued for the runtime (database logins).
    expect(secrets.length).toBeGreaterThanOrEqual(3);
    for (const v of secrets) {
      expect(logs).not.toContain(v);
      expect(out).not.toContain(v);
    }
  }, 240_000);
});
