import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../src/core/workqueue.js';

describe('WorkQueue', () => {
  it('deduplicates keys that are already queued', async () => {
    const q = new WorkQueue({ name: 't1' });
    q.add('a');
    q.add('a');
    q.add('b');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  it('never hands one key to two workers; a key added while processing runs once more after done', async () => {
    const q = new WorkQueue({ name: 't2' });
    q.add('a');
    const k = await q.get();
    q.add('a');
    q.add('a');
    expect(q.length).toBe(0);
    q.done(k!);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe('a');
  });

  it('backs off exponentially per key and forgets on success', () => {
    const q = new WorkQueue({ name: 't3', baseDelayMs: 100, maxDelayMs: 1000 });
    expect([q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a')]).toEqual([100, 200, 400, 800, 1000]);
    expect(q.addRateLimited('b')).toBe(100);
    q.forget('a');
    expect(q.retries('a')).toBe(0);
    q.shutdown();
  });

  it('addAfter keeps the earliest pending delay', async () => {
    const q = new WorkQueue({ name: 't4' });
    q.addAfter('a', 5000);
    q.addAfter('a', 20);
    await new Promise((r) => setTimeout(r, 60));
    expect(q.length).toBe(1);
    q.shutdown();
    expect(await q.get()).toBe('a');
  });

  it('wakes a waiting worker and releases waiters on shutdown', async () => {
    const q = new WorkQueue({ name: 't5' });
    const waiting = q.get();
    q.add('x');
    expect(await waiting).toBe('x');
    const idle = q.get();
    q.shutdown();
    expect(await idle).toBeUndefined();
  });
});
