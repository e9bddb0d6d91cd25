// CPU time per process name, read from /proc, so a bench can say where a
// phase spent the machine's cores (apiserver, etcd, PostgreSQL, OpenBao,
// Keycloak, the operator, the bench itself) rather than guess.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export type CpuSample = Map<string, number>;

/**
 * Cumulative user+system CPU milliseconds of every live process, summed by
 * name (comm). `labels` renames known pids (several processes are "node").
 */
export function sampleCpu(labels: Record<number, string> = {}): CpuSample {
  const out: CpuSample = new Map();
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out; // not Linux: the report is simply empty
  }
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    const name = labels[Number(pid)] ?? (Number(pid) === process.pid ? 'bench' : stat.slice(open + 1, close));
    // Fields after the name: state is field 3, utime 14, stime 15 (1-based).
    const rest = stat.slice(close + 2).split(' ');
    const ms = ((Number(rest[11]) + Number(rest[12])) * 1000) / TICKS_PER_SECOND;
    out.set(name, (out.get(name) ?? 0) + ms);
  }
  return out;
}

/**
 * CPU milliseconds spent between two samples per process name, largest
 * first. Processes that exited in between are not counted (their time is
 * gone from /proc), so take samples while the servers are running.
 */
export function cpuBetween(before: CpuSample, after: CpuSample): [string, number][] {
  const rows: [string, number][] = [];
  for (const [name, ms] of after) {
    const d = ms - (before.get(name) ?? 0);
    if (d > 0) rows.push([name, d]);
  }
  return rows.sort((a, b) => b[1] - a[1]);
}

/** One line: "CPU ms per <unit>: kube-apiserver 12.3, node 8.1, ..." for the top processes. */
export function formatCpu(rows: [string, number][], units: number, unit: string, top = 7): string {
  const total = rows.reduce((a, [, ms]) => a + ms, 0);
  const parts = rows.slice(0, top).map(([name, ms]) => `${name} ${(ms / units).toFixed(1)}`);
  return `CPU ms per ${unit}: total ${(total / units).toFixed(1)} = ${parts.join(', ')}`;
}
