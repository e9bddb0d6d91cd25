// The README's first command (`npm run dev` = hack/dev.sh → hack/dev.ts)
// brings up the whole local platform and gets a FamilyHub Ready. `--smoke`
// makes it exit once that happened, so this test proves the command works.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('npm run dev', () => {
  it('starts control plane, PostgreSQL, Redis, dev IdP and the operator, and the sample FamilyHub becomes Ready', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'hack/dev.ts', '--smoke'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(out).toContain('FamilyHub family/home is Ready.');
    expect(code, out).toBe(0);
  }, 240_000);
});
