import { describe, expect, it } from 'vitest';
import { OwnWrites } from '../../src/core/own-writes.js';

describe('OwnWrites', () => {
  it('recognises every version we wrote, including one delivered after a later write', () => {
    const w = new OwnWrites();
    w.record('claim', '10', 'a'); // finalizer patch
    w.record('claim', '12', 'a'); // status apply
    expect(w.pending('claim')).toBe(true);
    w.delivered('claim', '10'); // lagging event of the first write
    expect(w.isOwn('claim', '10', 'a')).toBe(true);
    expect(w.pending('claim')).toBe(true); // '12' not delivered yet
    w.delivered('claim', '12');
    expect(w.isOwn('claim', '12', 'a')).toBe(true);
    expect(w.pending('claim')).toBe(false);
  });

  it('gives several handlers of one event the same answer', () => {
    const w = new OwnWrites();
    w.record('s', '5', 'a');
    expect(w.isOwn('s', '5', 'a')).toBe(true);
    expect(w.isOwn('s', '5', 'a')).toBe(true);
  });

  it('does not claim versions written by others', () => {
    const w = new OwnWrites();
    w.record('s', '5', 'a');
    expect(w.isOwn('s', '6', 'a')).toBe(false);
    expect(w.isOwn('other', '5', 'a')).toBe(false);
    expect(w.isOwn('s', undefined, 'a')).toBe(false);
    expect(w.pending('s')).toBe(true);
  });

  it('does not wait for an event of a write that changed nothing (the cache already holds its version)', () => {
    const w = new OwnWrites();
    w.record('s', '7', 'a');
    expect(w.pending('s', '6')).toBe(true);
    expect(w.pending('s', '7')).toBe(false);
  });

  it('stops treating a write as pending once it is old (its event may have been skipped by a relist)', () => {
    let now = 0;
    const w = new OwnWrites(() => now);
    w.record('s', '5', 'a');
    now = 59_000;
    expect(w.pending('s')).toBe(true);
    now = 61_000;
    expect(w.pending('s')).toBe(false);
  });

  it('forgets objects whose writes are all old, so the map does not grow without bound', () => {
    let now = 0;
    const w = new OwnWrites(() => now);
    for (let i = 0; i < 100; i++) w.record(`obj-${i}`, '1', 'a');
    now = 120_000;
    w.record('fresh', '2', 'a');
    expect(w.size).toBe(1);
  });
});

describe('OwnWrites per writer', () => {
  it('suppresses only the writer\'s own echo: another controller watching the object still sees it', () => {
    const w = new OwnWrites();
    w.record('oidc/photos', '7', 'oidcclient'); // the OIDCClient controller's status write
    expect(w.isOwn('oidc/photos', '7', 'oidcclient')).toBe(true);
    expect(w.isOwn('oidc/photos', '7', 'service')).toBe(false); // the owning Service must react
  });

  it('treats a delivered version as no longer pending, whoever wrote it', () => {
    const w = new OwnWrites();
    w.record('s', '3', 'a');
    w.record('s', '4', 'b');
    w.delivered('s', '4');
    expect(w.pending('s')).toBe(false);
    expect(w.isOwn('s', '4', 'b')).toBe(true);
  });
});
