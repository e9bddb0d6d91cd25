// Condition bookkeeping in the kstatus shape: lastTransitionTime changes only
// when status flips, so re-asserting the same condition is not a change (and
// therefore not a write).
import type { Condition } from './reconciler.js';

export function setCondition(list: Condition[], next: Condition, now = new Date()): Condition[] {
  const out = list.filter((c) => c.type !== next.type);
  const prev = list.find((c) => c.type === next.type);
  const lastTransitionTime = prev && prev.status === next.status && prev.lastTransitionTime ? prev.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  out.push({ ...next, lastTransitionTime });
  return out;
}

export function getCondition(list: Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}

/** Order conditions: Ready first, then the core ones, then the rest by type. */
export function sortConditions(list: Condition[]): Condition[] {
  const rank = (t: string) => (t === 'Ready' ? 0 : t === 'Reconciling' ? 1 : t === 'Degraded' ? 2 : 3);
  return [...list].sort((a, b) => rank(a.type) - rank(b.type) || a.type.localeCompare(b.type));
}
