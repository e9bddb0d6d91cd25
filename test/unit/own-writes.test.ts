import { describe, expect, it } from 'vitest';
import { OwnWrites } from '../../src/core/own-writes.js';

describe('OwnWrites', () => {
  it('recognises every version we wrote, including one delivered after a later write', () => {
    const w = new OwnWrites();
    w.record('claim', '10'); // finalizer patch
    w.record('claim', '12'); // status apply
    expect(w.pending('claim')).toBe(true);
    expect(w.isOwn('claim', '10')).toBe(true); // lagging event of the first write
    expect(w.pending('claim')).toBe(true); // '12' not delivered yet
    expect(w.isOwn('claim', '12')).toBe(true);
    expect(w.pending('claim')).toBe(false);
  });

  it('gives several handlers of one event the same answer', () => {
    const w = new OwnWrites();
    w.record('s', '5');
    expect(w.isOwn('s', '5')).toBe(true);
    expect(w.isOwn('s', '5')).toBe(true);
  });

  it('does not claim versions written by others', () => {
    const w = new OwnWrites();
    w.record('s', '5');
    expect(w.isOwn('s', '6')).toBe(false);
    expect(w.isOwn('other', '5')).toBe(false);
    expect(w.isOwn('s', undefined)).toBe(false);
    expect(w.pending('s')).toBe(true);
  });

  it('does not wait for an event of a write that changed nothing (the cache already holds its version)', () => {
    const w = new OwnWrites();
    w.record('s', '7');
    expect(w.pending('s', '6')).toBe(true);
    expect(w.pending('s', '7')).toBe(false);
  });

  it('stops treating a write as pending once it is old (its event may have been skipped by a relist)', () => {
    let now = 0;
    const w = new OwnWrites(() => now);
    w.record('s', '5');
    now = 59_000;
    expect(w.pending('s')).toBe(true);
    now = 61_000;
    expect(w.pending('s')).toBe(false);
  });

  it('forgets objects whose writes are all old, so the map does not grow without bound', () => {
    let now = 0;
    const w = new OwnWrites(() => now);
    for (let i = 0; i < 100; i++) w.record(`obj-${i}`, '1');
    now = 120_000;
    w.record('fresh', '2');
    expect(w.size).toBe(1);
  });
});
