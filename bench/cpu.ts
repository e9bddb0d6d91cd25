// CPU time per process name, read from /proc, so a bench can say where a
// phase spent the machine's cores (apiserver, etcd, PostgreSQL, OpenBao,
// Keycloak, the operator, the bench itself) rather than guess.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** Per pid: its display name and cumulative user+system CPU milliseconds. */
export type CpuSample = Map<number, { name: string; ms: number }>;

/** Kernel worker threads rename themselves with the job at hand; one bucket for all of them. */
function displayName(comm: string): string {
  return /^kworker\//.test(comm) ? 'kernel workers' : comm;
}

/** A process's name and cumulative user+system CPU milliseconds, from /proc/<pid>/stat; undefined once it is gone. */
function readStat(pid: number): { comm: string; ms: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = stat.lastIndexOf(')');
  // Fields after the name: state is field 3, utime 14, stime 15 (1-based).
  const rest = stat.slice(close + 2).split(' ');
  return { comm: stat.slice(stat.indexOf('(') + 1, close), ms: ((Number(rest[11]) + Number(rest[12])) * 1000) / TICKS_PER_SECOND };
}

/** Cumulative user+system CPU milliseconds of one process (NaN when it is not running). */
export function cpuMsOf(pid: number | undefined): number {
  return (pid ? readStat(pid)?.ms : undefined) ?? NaN;
}

/**
 * Cumulative CPU of every live process. `labels` renames known pids
 * (several processes are "node"); this process is "bench".
 */
export function sampleCpu(labels: Record<number, string> = {}): CpuSample {
  const out: CpuSample = new Map();
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out; // not Linux: the report is simply empty
  }
  for (const p of pids) {
    const stat = readStat(Number(p));
    if (!stat) continue; // exited while we looked
    const pid = Number(p);
    out.set(pid, { name: labels[pid] ?? (pid === process.pid ? 'bench' : displayName(stat.comm)), ms: stat.ms });
  }
  return out;
}

/**
 * CPU milliseconds spent between two samples, summed by name, largest first.
 * Compared per pid, so a process that renamed itself is not counted twice;
 * processes that exited in between are not counted (their time is gone from
 * /proc), so take samples while the servers are running.
 */
export function cpuBetween(before: CpuSample, after: CpuSample): [string, number][] {
  const byName = new Map<string, number>();
  for (const [pid, a] of after) {
    const d = a.ms - (before.get(pid)?.ms ?? 0);
    if (d > 0) byName.set(a.name, (byName.get(a.name) ?? 0) + d);
  }
  return [...byName].sort((a, b) => b[1] - a[1]);
}

/** One line: "CPU ms per <unit>: total 70.5 = kube-apiserver 12.3, node 8.1, ..." for the top processes. */
export function formatCpu(rows: [string, number][], units: number, unit: string, top = 7): string {
  const total = rows.reduce((a, [, ms]) => a + ms, 0);
  const parts = rows.slice(0, top).map(([name, ms]) => `${name} ${(ms / units).toFixed(1)}`);
  return `CPU ms per ${unit}: total ${(total / units).toFixed(1)} = ${parts.join(', ')}`;
}
