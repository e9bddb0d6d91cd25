import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { checkKey, FilesystemBlobStore } from '../../src/runtime-services/media/blob-store.js';

const fresh = async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'fh-blobs-'));
  const s = new FilesystemBlobStore(root, { fsync: false });
  await s.init();
  return { s, root };
};

describe('filesystem blob store', () => {
  it('makes staged bytes visible only on promote, and never replaces an existing blob', async () => {
    const { s, root } = await fresh();
    const a = await s.stage();
    await a.write(Buffer.from('hello '));
    await a.write(Buffer.from('world'));
    expect(await s.size('k1')).toBeUndefined();
    expect(await a.promote('k1')).toBe(true);
    expect(await text(await s.read('k1'))).toBe('hello world');
    const b = await s.stage();
    await b.write(Buffer.from('other'));
    expect(await b.promote('k1')).toBe(false);
    expect(await text(await s.read('k1'))).toBe('hello world');
    expect(readdirSync(path.join(root, 'staging'))).toEqual([]);
  });

  it('discards staged bytes and serves byte ranges', async () => {
    const { s, root } = await fresh();
    const a = await s.stage();
    await a.write(Buffer.from('0123456789'));
    await a.discard();
    expect(readdirSync(path.join(root, 'staging'))).toEqual([]);
    await s.put('k2', Buffer.from('0123456789'));
    expect(await text(await s.read('k2', { start: 3, end: 5 }))).toBe('345');
    await s.delete('k2');
    expect(await s.size('k2')).toBeUndefined();
    await expect(s.read('k2')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('clears staging left by a crash at start and refuses path-like keys', async () => {
    const { s, root } = await fresh();
    await (await s.stage()).write(Buffer.from('half an upload'));
    await new FilesystemBlobStore(root).init();
    expect(readdirSync(path.join(root, 'staging'))).toEqual([]);
    for (const bad of ['../etc/passwd', 'a/b', '', 'A'.repeat(3), '.hidden']) expect(() => checkKey(bad)).toThrow(/invalid blob key/);
    await expect(s.put('../x', Buffer.from('x'))).rejects.toThrow(/invalid blob key/);
  });
});
