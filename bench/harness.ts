// What every bench shares so that none can flatter: the sides run in a fixed
// alternating order (baseline → system → reference → … → baseline), a
// ratio is computed per round against the baselines that bracket it and
// reported as min/median/max, the load average is recorded around every
// run (a busy machine says so), and the result is written as JSON to
// bench/results/<name>.json, which `npm run bench:readme` turns into the
// README's table — figures are regenerated, never copied by hand.
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const resultsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');

export type Load = [one: number, five: number, fifteen: number];

export const loadAverage = (): Load => os.loadavg().map((x) => Number(x.toFixed(2))) as Load;

export interface Spread {
  min: number;
  median: number;
  max: number;
  n: number;
}

export function spread(xs: number[]): Spread {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return { min: NaN, median: NaN, max: NaN, n: 0 };
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  const r = (x: number) => Number(x.toPrecision(4));
  return { min: r(s[0]!), median: r(median), max: r(s.at(-1)!), n: s.length };
}

export const fmtSpread = (s: Spread, digits = 2): string =>
  s.n === 0 ? 'n/a' : s.n === 1 || s.min === s.max ? s.median.toFixed(digits) : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;

/** Nearest-rank percentile of unsorted samples. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export interface Run {
  side: string;
  /** Which repetition; the first side gets one more run, closing the last round. */
  round: number;
  /** Free-form group (e.g. "8 in flight") so one bench can hold a curve. */
  group: string;
  /** The figure the ratios use; larger is better (a rate). */
  value: number;
  unit: string;
  seconds: number;
  load: { before: Load; after: Load };
  extra: Record<string, unknown>;
}

export interface RatioResult extends Spread {
  numerator: string;
  denominator: string;
  group: string;
  meaning: string;
  perRound: number[];
}

/** What a side's run returns: its rate plus anything worth keeping. */
export interface SideResult {
  value: number;
  extra?: Record<string, unknown>;
}

export class Bench {
  readonly started = new Date();
  readonly loadBefore = loadAverage();
  readonly runs: Run[] = [];
  readonly ratios: Record<string, RatioResult> = {};
  readonly figures: Record<string, unknown> = {};
  readonly checks: Record<string, { ok: boolean; detail: string }> = {};
  readonly notes: string[] = [];
  /** Groups whose rate is not in the bench's unit (one bench, two figures: MiB/s and images/s). */
  private readonly groupUnits: Record<string, string> = {};

  constructor(readonly name: string, readonly unit: string, readonly conditions: Record<string, unknown>) {
    console.log(`bench:${name} ${JSON.stringify(conditions)}; load average ${this.loadBefore.join(' ')}`);
  }

  /** The unit of `group`'s rates when it is not the bench's own; set before its first run. */
  unitOf(group: string, unit: string): void {
    this.groupUnits[group] = unit;
  }

  /** Times one side, recording the load average around it. */
  async run(side: string, round: number, group: string, fn: () => Promise<SideResult>): Promise<Run> {
    const before = loadAverage();
    const t = performance.now();
    const r = await fn();
    return this.record(side, round, group, r.value, (performance.now() - t) / 1000, before, r.extra);
  }

  /**
   * Records a side a bench timed itself (its set-up does not fit in one
   * function, e.g. minutes of rollouts on the node): `value` as for run(),
   * `loadBefore` taken when its clock started, the load after taken now.
   */
  record(side: string, round: number, group: string, value: number, seconds: number, loadBefore: Load, extra: Record<string, unknown> = {}): Run {
    const unit = this.groupUnits[group] ?? this.unit;
    const run: Run = { side, round, group, value, unit, seconds: Number(seconds.toFixed(2)), load: { before: loadBefore, after: loadAverage() }, extra };
    this.runs.push(run);
    console.log(`  [${group}] round ${round} ${side.padEnd(10)} ${value.toFixed(1)} ${unit}  (${run.seconds} s, load ${loadBefore[0]} → ${run.load.after[0]})`);
    return run;
  }

  /**
   * Runs `rounds` rounds of the sides in the given order, then the first
   * side once more, so every round of the others is bracketed by two runs
   * of the first (the baseline): a machine that got busier or quieter
   * during the run moves both brackets, not only one side.
   */
  async rounds(rounds: number, group: string, sides: [string, (round: number) => Promise<SideResult>][]): Promise<void> {
    for (let r = 0; r < rounds; r++) for (const [side, fn] of sides) await this.run(side, r, group, () => fn(r));
    const [first, fn] = sides[0]!;
    await this.run(first, rounds, group, () => fn(rounds));
  }

  /**
   * numerator/denominator per round of `group`; when the denominator is the
   * bracketing side (it has one more run), each round uses the mean of the
   * runs before and after it.
   */
  ratio(key: string, numerator: string, denominator: string, group: string, meaning: string): RatioResult {
    const of = (side: string) => this.runs.filter((r) => r.side === side && r.group === group).sort((a, b) => a.round - b.round);
    const num = of(numerator);
    const den = of(denominator);
    const perRound = num.map((n) => {
      const d = den.filter((x) => x.round === n.round || (den.length > num.length && x.round === n.round + 1));
      const dv = d.reduce((a, x) => a + x.value, 0) / d.length;
      return Number((n.value / dv).toFixed(3));
    });
    const out: RatioResult = { ...spread(perRound), numerator, denominator, group, meaning, perRound };
    this.ratios[key] = out;
    console.log(`  ratio ${key} [${group}]: ${fmtSpread(out)} — ${meaning}`);
    return out;
  }

  /** A pass/fail condition the bench itself verifies (a failed one fails the bench). */
  check(key: string, ok: boolean, detail: string): void {
    this.checks[key] = { ok, detail };
    console.log(`  check ${key}: ${ok ? 'ok' : 'FAILED'} — ${detail}`);
    if (!ok) process.exitCode = 1;
  }

  /** Rates of one side in one group as a spread. */
  sideSpread(side: string, group: string): Spread {
    return spread(this.runs.filter((r) => r.side === side && r.group === group).map((r) => r.value));
  }

  /** Writes bench/results/<name>.json and prints where. */
  finish(): string {
    const loadAfter = loadAverage();
    const out = {
      name: this.name,
      unit: this.unit,
      started: this.started.toISOString(),
      finished: new Date().toISOString(),
      machine: { cpus: os.cpus().length, loadBefore: this.loadBefore, loadAfter },
      conditions: this.conditions,
      ratios: this.ratios,
      figures: this.figures,
      checks: this.checks,
      ok: Object.values(this.checks).every((c) => c.ok),
      notes: this.notes,
      runs: this.runs,
    };
    mkdirSync(resultsDir, { recursive: true });
    const file = path.join(resultsDir, `${this.name}.json`);
    writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
    console.log(`bench:${this.name} done; load average ${this.loadBefore.join(' ')} → ${loadAfter.join(' ')}; ${file}`);
    return file;
  }
}

/** BENCH_ROUNDS (default `dflt`): how many rounds of the alternating order. */
export const roundsFromEnv = (dflt: number): number => Math.max(1, Number(process.env.BENCH_ROUNDS ?? dflt));

/**
 * `npm run build`, so the compiled operator runs as the image runs it. tsc
 * still emits when another file in the shared tree has a type error; then
 * the emitted JavaScript is used and the bench's notes say so, naming the
 * files, rather than the bench refusing to run.
 */
export function buildOperator(bench: Bench): void {
  const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
  const started = Date.now();
  try {
    execFileSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const out = String((err as { stdout?: Buffer }).stdout ?? '');
    const files = [...new Set([...out.matchAll(/^(\S+\.ts)\(\d+,\d+\): error/gm)].map((m) => m[1]))];
    const emitted = statSync(path.join(root, 'dist/main.js'), { throwIfNoEntry: false });
    if (!files.length || !emitted || emitted.mtimeMs < started) throw err;
    bench.notes.push(`npm run build reported type errors in ${files.join(', ')}; the JavaScript tsc emitted was used`);
    console.warn(`build: type errors in ${files.join(', ')}; using the emitted JavaScript`);
  }
}
