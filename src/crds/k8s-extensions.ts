// Kubernetes-only schema facts (CEL rules, list semantics) that zod has no
// vocabulary for. They ride on the zod definition object itself, because
// `.describe()`, `.min()` and friends copy `_def` into a new instance: a
// WeakMap keyed by schema instance would lose them on the next chained call.
// The CRD generator reads them back in zod-to-json-schema's postProcess hook.
import { z } from 'zod';

/** One `x-kubernetes-validations` entry. */
export interface CelRule<T> {
  /** CEL expression evaluated by the apiserver with `self` bound to this node. */
  rule: string;
  /** Shown to the user on failure; must name the field it is about. */
  message: string;
  /** JSONPath (relative to this node) the apiserver reports the error at. */
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
  /**
   * The same rule in TypeScript so zod rejects what the apiserver rejects.
   * Required unless the rule is a transition rule (uses `oldSelf`), which
   * needs the previous object and so only the apiserver can evaluate.
   */
  check?: (value: T) => boolean;
}

export interface K8sExtensions {
  validations?: Array<Omit<CelRule<never>, 'check'>>;
  listType?: 'atomic' | 'set' | 'map';
  listMapKeys?: string[];
}

const KEY = 'familyhubK8s';

type WithExtensions = { [KEY]?: K8sExtensions };

/** Reads the Kubernetes extensions stored on a zod definition (used by the generator). */
export function k8sExtensionsOf(def: unknown): K8sExtensions | undefined {
  return (def as WithExtensions | undefined)?.[KEY];
}

function annotate<S extends z.ZodTypeAny>(schema: S, ext: K8sExtensions): S {
  const prev = k8sExtensionsOf(schema._def) ?? {};
  const merged: K8sExtensions = {
    ...prev,
    ...ext,
    validations: [...(prev.validations ?? []), ...(ext.validations ?? [])],
  };
  const Ctor = schema.constructor as new (def: unknown) => S;
  return new Ctor({ ...schema._def, [KEY]: merged });
}

/**
 * zod still runs refinements when a child already failed (e.g. a malformed
 * duration); a check that throws on such input is reported by that child's
 * own issue, not twice.
 */
function passes<T>(check: (v: T) => boolean, value: T): boolean {
  try {
    return check(value);
  } catch {
    return true;
  }
}

const usesOldSelf = (rule: string) => /\boldSelf\b/.test(rule);

/**
 * Attaches CEL rules to a schema. Non-transition rules also become zod
 * refinements, so a spec that parses with zod is one the apiserver accepts.
 */
export function withCel<S extends z.ZodTypeAny>(schema: S, rules: CelRule<z.output<S>>[]): z.ZodEffects<S> {
  for (const r of rules) {
    if (usesOldSelf(r.rule) && r.check) throw new Error(`transition rule "${r.rule}" cannot have a TypeScript check: zod never sees the old object`);
    if (!usesOldSelf(r.rule) && !r.check) throw new Error(`CEL rule "${r.rule}" needs a TypeScript twin (check) so zod and the apiserver agree`);
  }
  const refined = schema.superRefine((value, ctx) => {
    for (const r of rules) {
      if (r.check && !passes(r.check, value)) {
        const path = r.fieldPath ? r.fieldPath.replace(/^\./, '').split('.') : [];
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: r.message, path });
      }
    }
  });
  return annotate(refined, { validations: rules.map(({ check: _check, ...cel }) => cel) });
}

/**
 * `x-kubernetes-list-type: set`: unique scalars, merged as a set by
 * server-side apply. The apiserver rejects duplicates, so zod does too.
 */
export function asSet<S extends z.ZodArray<z.ZodTypeAny>>(schema: S, field: string): z.ZodEffects<S> {
  const unique = schema.superRefine((items, ctx) => {
    const seen = new Set<unknown>();
    items.forEach((item: unknown, i: number) => {
      if (seen.has(item)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${field}: duplicate value ${JSON.stringify(item)}`, path: [i] });
      seen.add(item);
    });
  });
  return annotate(unique, { listType: 'set' });
}

/**
 * `x-kubernetes-list-type: map` keyed by `keys`: one item per key, merged
 * item by item by server-side apply. Duplicated keys are rejected.
 */
export function asMap<S extends z.ZodArray<z.ZodObject<z.ZodRawShape>>>(schema: S, field: string, keys: string[]): z.ZodEffects<S> {
  const unique = schema.superRefine((items, ctx) => {
    const seen = new Set<string>();
    items.forEach((item: Record<string, unknown>, i: number) => {
      const key = JSON.stringify(keys.map((k) => item[k]));
      if (seen.has(key)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${field}: duplicate entry for ${keys.join('/')} ${key}`, path: [i] });
      seen.add(key);
    });
  });
  return annotate(unique, { listType: 'map', listMapKeys: keys });
}

/** A JS regex source as a single-quoted CEL string literal (CEL unescapes backslashes once). */
export const celRegex = (pattern: string) => `'${pattern.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
