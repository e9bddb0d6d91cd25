import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { asMap, asSet, celRegex, withCel } from '../../src/crds/k8s-extensions.js';
import { toOpenApi } from '../../src/crds/to-crd.js';

const rule = { rule: 'self.a <= self.b', message: 'a must not exceed b', fieldPath: '.a', check: (v: { a: number; b: number }) => v.a <= v.b };
const pair = z.object({ a: z.number().int().describe('A.'), b: z.number().int().describe('B.') });

describe('k8s schema extensions', () => {
  it('keep CEL rules through describe/optional/default chained afterwards', () => {
    const schema = z.object({ p: withCel(pair, [rule]).describe('Pair.').default({ a: 1, b: 2 }).optional() }).describe('Root.');
    const json = toOpenApi(schema, 'test') as { properties: { p: Record<string, unknown> } };
    expect(json.properties.p['x-kubernetes-validations']).toEqual([{ rule: 'self.a <= self.b', message: 'a must not exceed b', fieldPath: '.a' }]);
    expect(json.properties.p.default).toEqual({ a: 1, b: 2 });
  });

  it('makes zod enforce the same rule, reported at fieldPath', () => {
    const res = withCel(pair, [rule]).safeParse({ a: 3, b: 2 });
    expect(res.success).toBe(false);
    expect(res.error?.issues[0]).toMatchObject({ path: ['a'], message: 'a must not exceed b' });
    expect(withCel(pair, [rule]).safeParse({ a: 2, b: 2 }).success).toBe(true);
  });

  it('refuses a CEL rule without a TypeScript twin, and a transition rule with one', () => {
    expect(() => withCel(pair, [{ rule: 'self.a > 0', message: 'a must be positive' }])).toThrow(/needs a TypeScript twin/);
    expect(() => withCel(pair, [{ rule: 'self == oldSelf', message: 'pair is immutable', check: () => true }])).toThrow(/transition rule/);
    expect(() => withCel(pair, [{ rule: 'self == oldSelf', message: 'pair is immutable' }])).not.toThrow();
  });

  it('marks sets and maps and rejects duplicates in zod like the apiserver', () => {
    const set = asSet(z.array(z.string().describe('S.')), 'tags').describe('Tags.');
    expect(toOpenApi(set, 't')['x-kubernetes-list-type']).toBe('set');
    expect(set.safeParse(['a', 'a']).error?.issues[0]?.message).toContain('tags: duplicate value "a"');
    const map = asMap(z.array(z.object({ name: z.string().describe('N.') }).describe('E.')), 'env', ['name']).describe('Env.');
    expect(toOpenApi(map, 'm')).toMatchObject({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] });
    expect(map.safeParse([{ name: 'X' }, { name: 'X' }]).success).toBe(false);
  });

  it('quotes regexes for CEL string literals', () => {
    expect(celRegex("^a\\.b'c$")).toBe("'^a\\\\.b\\'c$'");
  });

  it('refuses schemas that would not be structural or lack descriptions', () => {
    expect(() => toOpenApi(z.object({ u: z.union([z.string(), z.number()]).describe('U.') }).describe('R.'), 'x')).toThrow(/anyOf/);
    expect(() => toOpenApi(z.object({ n: z.string() }).describe('R.'), 'x')).toThrow(/x\.n: missing description/);
  });
});
