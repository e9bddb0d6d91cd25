// When is a child "up to date"? Every field we set is there with our value
// (server defaults may add more) — except that the apiserver rewrites
// quantities into its canonical form (1000m → 1, 1024Mi → 1Gi), so those
// compare by value; a literal compare would write the Deployment on every
// resync.
import { isSubset } from '../../core/children.js';
import type { KubeObject } from '../../core/reconciler.js';
import { quantityValue } from './desired.js';

function sameQuantities(want: Record<string, string> | undefined, have: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!want) return want;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(want)) {
    const h = have?.[k];
    out[k] = h !== undefined && quantityValue(h) !== undefined && quantityValue(h) === quantityValue(v) ? h : v;
  }
  return out;
}

/** `want` with each quantity replaced by the current spelling when the values are equal. */
function alignQuantities(want: KubeObject, current: KubeObject): KubeObject {
  const w = structuredClone(want);
  const wSpec = w.spec?.template?.spec;
  const cSpec = current.spec?.template?.spec;
  if (!wSpec || !cSpec) return w;
  for (const c of wSpec.containers ?? []) {
    const have = (cSpec.containers ?? []).find((x: { name: string }) => x.name === c.name);
    if (c.resources && have?.resources) {
      c.resources = { ...c.resources, requests: sameQuantities(c.resources.requests, have.resources.requests), limits: sameQuantities(c.resources.limits, have.resources.limits) };
    }
  }
  for (const v of wSpec.volumes ?? []) {
    const have = (cSpec.volumes ?? []).find((x: { name: string }) => x.name === v.name);
    if (v.emptyDir?.sizeLimit && have?.emptyDir?.sizeLimit) v.emptyDir.sizeLimit = sameQuantities({ s: v.emptyDir.sizeLimit }, { s: have.emptyDir.sizeLimit })!.s;
  }
  return w;
}

/** Default ensureOwned compare, quantities by value. */
export function deploymentUpToDate(current: KubeObject, want: KubeObject): boolean {
  const { metadata: _m, apiVersion: _a, kind: _k, status: _s, ...fields } = alignQuantities(want, current);
  return isSubset(fields, current);
}

/** Field paths (at most `max`) where `after` differs from `before`, for a plan summary. */
export function changedPaths(before: unknown, after: unknown, at = '', max = 16, out: string[] = []): string[] {
  if (out.length >= max) return out;
  if (Array.isArray(after) && Array.isArray(before) && after.length === before.length) {
    after.forEach((v, i) => changedPaths(before[i], v, `${at}[${i}]`, max, out));
    return out;
  }
  if (after && before && typeof after === 'object' && typeof before === 'object' && !Array.isArray(after) && !Array.isArray(before)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    for (const k of [...keys].sort()) changedPaths((before as Record<string, unknown>)[k], (after as Record<string, unknown>)[k], at ? `${at}.${k}` : k, max, out);
    return out;
  }
  if (JSON.stringify(before) !== JSON.stringify(after) && out.length < max) out.push(at || '.');
  return out;
}
