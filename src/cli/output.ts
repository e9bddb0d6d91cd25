// Terminal rendering for the CLI: tables, trees, condition colours. Colour
// only on a TTY (and never with NO_COLOR), so piped output and test
// assertions see plain text.

export interface Style {
  good(s: string): string;
  bad(s: string): string;
  warn(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

const wrap = (code: string) => (s: string) => `\u001b[${code}m${s}\u001b[0m`;
const plain = (s: string) => s;

export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Style {
  const on = !!stream.isTTY && env.NO_COLOR === undefined && env.TERM !== 'dumb';
  return on
    ? { good: wrap('32'), bad: wrap('31'), warn: wrap('33'), dim: wrap('2'), bold: wrap('1') }
    : { good: plain, bad: plain, warn: plain, dim: plain, bold: plain };
}

export const noStyle: Style = { good: plain, bad: plain, warn: plain, dim: plain, bold: plain };

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
const width = (s: string) => s.replace(ANSI, '').length;

/** Left-aligned columns separated by two spaces (kubectl's layout); the last column is not padded. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => width(r[i] ?? ''))));
  return all
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - width(c)))).join('  ').trimEnd())
    .join('\n');
}

export interface TreeNode {
  /** First line of the node. */
  label: string;
  /** Lines printed under the label, before the children (conditions, facts). */
  details?: string[];
  children?: TreeNode[];
}

/** Box-drawing tree, like `cmctl status` / `tree`: details indented under their node. */
export function renderTree(root: TreeNode): string {
  const out: string[] = [root.label];
  const walk = (node: TreeNode, prefix: string) => {
    const kids = node.children ?? [];
    for (const d of node.details ?? []) out.push(`${prefix}${kids.length ? '│ ' : '  '} ${d}`);
    kids.forEach((k, i) => {
      const last = i === kids.length - 1;
      out.push(`${prefix}${last ? '└─' : '├─'} ${k.label}`);
      walk(k, prefix + (last ? '   ' : '│  '));
    });
  };
  walk(root, '');
  return out.join('\n');
}

/** "3m", "2h", "5d": kubectl's AGE column. */
export function age(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

export interface ConditionLike {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

/** Conditions whose True is bad news (kstatus' abnormal-true types and ours). */
const NEGATIVE = new Set(['Degraded', 'Reconciling', 'Stalled', 'ReplicaFailure', 'Drifted']);

export function conditionHealthy(c: ConditionLike): boolean | undefined {
  if (c.status === 'Unknown') return undefined;
  const isTrue = c.status === 'True';
  // A Deployment's Progressing=True is normal; only its reason tells trouble.
  if (c.type === 'Progressing') return c.reason !== 'ProgressDeadlineExceeded';
  return NEGATIVE.has(c.type) ? !isTrue : isTrue;
}

export function paintStatus(c: ConditionLike, st: Style): string {
  const h = conditionHealthy(c);
  return h === undefined ? st.warn(c.status) : h ? st.good(c.status) : st.bad(c.status);
}

/** One line per condition: type, status, reason, age, message (shortened to one line). */
export function conditionLines(conds: ConditionLike[], st: Style, now = Date.now()): string[] {
  if (!conds.length) return [st.dim('no conditions yet (not reconciled)')];
  const rows = conds.map((c) => [
    c.type,
    paintStatus(c, st),
    c.reason ?? '',
    age(c.lastTransitionTime, now),
    oneLine(c.message ?? ''),
  ]);
  return table(['CONDITION', 'STATUS', 'REASON', 'AGE', 'MESSAGE'], rows).split('\n').map((l, i) => (i === 0 ? st.dim(l) : l));
}

export function oneLine(s: string, max = 160): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
