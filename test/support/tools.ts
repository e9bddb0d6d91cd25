// The pinned tools the tests run, by their cached build scripts (a no-op once
// built; under `npm test` the suites that need them wait for the background
// build first, test/support/prebuilt.ts).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../hack/local/manifests.js';

const lines = (script: string, ...args: string[]) =>
  execFileSync('bash', [path.join(repoRoot, script), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n');

/** hack/go/<name>/build.sh: the binary's path (its last line). */
export function goTool(name: string): string {
  return lines(`hack/go/${name}/build.sh`).at(-1)!;
}

/** One binary of hack/node/build.sh <name> (its "<name> <path>" line). */
export function nodeTool(name: string): string {
  const line = lines('hack/node/build.sh', name).find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`hack/node/build.sh ${name} printed no "${name} <path>" line`);
  return line.slice(name.length + 1);
}
