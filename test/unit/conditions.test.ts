import { describe, expect, it } from 'vitest';
import { canonical } from '../../src/core/controller.js';
import { setCondition, sortConditions } from '../../src/core/conditions.js';

describe('conditions', () => {
  it('keeps lastTransitionTime while the status does not flip', () => {
    const t1 = new Date('2026-01-01T00:00:00Z');
    const t2 = new Date('2026-01-02T00:00:00Z');
    let c = setCondition([], { type: 'Ready', status: 'False', reason: 'A', message: 'a' }, t1);
    c = setCondition(c, { type: 'Ready', status: 'False', reason: 'B', message: 'b' }, t2);
    expect(c[0]!.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    expect(c[0]!.reason).toBe('B');
    c = setCondition(c, { type: 'Ready', status: 'True', reason: 'Ok', message: '' }, t2);
    expect(c[0]!.lastTransitionTime).toBe('2026-01-02T00:00:00Z');
  });

  it('sorts Ready, Reconciling, Degraded first so status diffs are stable', () => {
    const list = ['Zeta', 'Degraded', 'Alpha', 'Ready', 'Reconciling'].map((type) => ({ type, status: 'True' as const, reason: 'r', message: 'm' }));
    expect(sortConditions(list).map((c) => c.type)).toEqual(['Ready', 'Reconciling', 'Degraded', 'Alpha', 'Zeta']);
  });

  it('canonical() ignores key order but not values', () => {
    expect(canonical({ a: 1, b: { c: 2, d: 3 } })).toBe(canonical({ b: { d: 3, c: 2 }, a: 1 }));
    expect(canonical({ a: 1 })).not.toBe(canonical({ a: 2 }));
  });
});
