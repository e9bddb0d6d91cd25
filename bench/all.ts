// npm run bench [-- name ...] — runs the benches one after another (never
// two at once: they share the machine's cores with what they measure) and
// collects their JSON results into bench/results/all.json, which
// `npm run bench:readme` turns into the README's table. Each bench's output
// goes to bench/results/<name>.log as well as to the terminal.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadAverage, resultsDir } from './harness.js';
import { repoRoot } from '../hack/local/manifests.js';

// Benches on the shared harness (bench/harness.ts) write bench/results/<name>.json.
const ALL = ['operator', 'databaseclaim', 'audit', 'chat', 'oidcclient', 'media', 'gaming', 'route', 'service', 'node'];
const chosen = process.argv.slice(2).length ? process.argv.slice(2) : (process.env.BENCH_ONLY?.split(',') ?? ALL);

interface Entry {
  name: string;
  exitCode: number | null;
  seconds: number;
  log: string;
  result?: unknown;
  error?: string;
}

function runOne(name: string): Promise<Entry> {
  const log = path.join(resultsDir, `${name}.log`);
  const out = createWriteStream(log);
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), path.join('bench', `${name}.ts`)], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const s of [child.stdout!, child.stderr!]) {
      s.on('data', (d: Buffer) => {
        process.stdout.write(d);
        out.write(d);
      });
    }
    child.on('exit', (code) => {
      out.end();
      const file = path.join(resultsDir, `${name}.json`);
      const entry: Entry = { name, exitCode: code, seconds: Math.round((Date.now() - started) / 1000), log: path.relative(repoRoot, log) };
      // Only a result this run wrote counts; an older file would be a copy.
      if (existsSync(file) && statSync(file).mtimeMs >= started) entry.result = JSON.parse(readFileSync(file, 'utf8'));
      else entry.error = 'wrote no bench/results JSON (not on the shared harness, or failed before finishing)';
      resolve(entry);
    });
  });
}

const started = new Date();
const loadBefore = loadAverage();
const entries: Entry[] = [];
for (const name of chosen) {
  if (!ALL.includes(name)) throw new Error(`unknown bench ${name} (known: ${ALL.join(', ')})`);
  console.log(`\n=== bench:${name} (load average ${loadAverage().join(' ')}) ===`);
  entries.push(await runOne(name));
}
const all = {
  started: started.toISOString(),
  finished: new Date().toISOString(),
  machine: { cpus: os.cpus().length, loadBefore, loadAfter: loadAverage() },
  benches: entries,
};
writeFileSync(path.join(resultsDir, 'all.json'), JSON.stringify(all, null, 2) + '\n');
console.log(`\n${entries.map((e) => `${e.name}: exit ${e.exitCode}, ${e.seconds} s${e.error ? ` (${e.error})` : ''}`).join('\n')}`);
console.log(`wrote bench/results/all.json; run npm run bench:readme to regenerate the README table`);
process.exitCode = entries.every((e) => e.exitCode === 0) ? 0 : 1;
