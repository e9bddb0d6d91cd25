// Connections built from credentials are closed when the credentials change
// and the number kept is bounded.
import { describe, expect, it } from 'vitest';
import { CredentialCache } from '../../src/platform/credential-cache.js';

describe('CredentialCache', () => {
  const tracked = (max: number) => {
    const closed: string[] = [];
    const cache = new CredentialCache<string>(max, (v) => void closed.push(v));
    return { cache, closed };
  };

  it('reuses an entry for the same credentials and closes it when the holder moves on (rotation)', () => {
    const { cache, closed } = tracked(8);
    expect(cache.get('hub-a', 'pw1', () => 'pool-1')).toBe('pool-1');
    expect(cache.get('hub-a', 'pw1', () => 'never')).toBe('pool-1');
    expect(cache.get('hub-a', 'pw2', () => 'pool-2')).toBe('pool-2');
    expect(closed).toEqual(['pool-1']);
    expect(cache.size).toBe(1);
  });

  it('keeps an entry another holder still uses', () => {
    const { cache, closed } = tracked(8);
    cache.get('hub-a', 'shared', () => 'pool');
    cache.get('hub-b', 'shared', () => 'never');
    cache.get('hub-a', 'other', () => 'pool-a2');
    expect(closed).toEqual([]);
    cache.drop('hub-b');
    expect(closed).toEqual(['pool']);
  });

  it('is bounded: the least recently used entry is closed first', () => {
    const { cache, closed } = tracked(2);
    cache.get('h1', 'k1', () => 'v1');
    cache.get('h2', 'k2', () => 'v2');
    cache.get('h1', 'k1', () => 'never'); // k1 now most recent
    cache.get('h3', 'k3', () => 'v3');
    expect(closed).toEqual(['v2']);
    expect(cache.size).toBe(2);
    // h2 lost its entry: asking again builds a new one.
    expect(cache.get('h2', 'k2', () => 'v2b')).toBe('v2b');
  });
});
