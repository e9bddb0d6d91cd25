import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromKubeconfigFile } from '../../src/core/kube-access.js';

function kubeconfig(dir: string, user: string): string {
  const file = path.join(dir, 'kubeconfig');
  writeFileSync(file, `apiVersion: v1
kind: Config
current-context: c
contexts: [{ name: c, context: { cluster: k, user: u } }]
clusters: [{ name: k, cluster: { server: "https://127.0.0.1:6443", certificate-authority: ca.crt } }]
users: [{ name: u, user: ${user} }]
`);
  writeFileSync(path.join(dir, 'ca.crt'), 'CA-PEM');
  return file;
}

describe('kubeconfig loading without @kubernetes/client-node', () => {
  it('resolves server, CA relative to the file, and a static token', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kc-'));
    const a = await fromKubeconfigFile(kubeconfig(dir, '{ token: abc }'));
    expect(a.server).toBe('https://127.0.0.1:6443');
    expect(String(a.ca)).toBe('CA-PEM');
    expect(await a.headers()).toEqual({ Authorization: 'Bearer abc' });
  });

  it('re-reads a token file on every request (rotated projected tokens)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kc-'));
    writeFileSync(path.join(dir, 'tok'), 'one\n');
    const a = await fromKubeconfigFile(kubeconfig(dir, '{ tokenFile: tok }'));
    expect(await a.headers()).toEqual({ Authorization: 'Bearer one' });
    writeFileSync(path.join(dir, 'tok'), 'two\n');
    expect(await a.headers()).toEqual({ Authorization: 'Bearer two' });
  });

  it('names the missing context', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kc-'));
    const file = path.join(dir, 'kubeconfig');
    writeFileSync(file, 'apiVersion: v1\nkind: Config\ncurrent-context: nope\ncontexts: []\n');
    await expect(fromKubeconfigFile(file)).rejects.toThrow(/current-context "nope" not found/);
  });
});
