// ensureOwned's decisions with a fake cache and client (the e2e suites prove
// the same against a real apiserver): never write an object someone else
// controls, adopt only when asked, no write when up to date, restore a hand
// edit with a Drifted event.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { APPLIED_HASH_ANNOTATION, ChildConflictError, ensureOwned, isSubset } from '../../src/core/children.js';
import { encodeSecretData, secretDigest, type KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject, ReconcileContext } from '../../src/core/reconciler.js';

const owner: KubeObject = { apiVersion: 'familyhub.dev/v1alpha1', kind: 'OIDCClient', metadata: { name: 'photos', namespace: 'apps', uid: 'owner-uid' } };

function fakeCtx(existing?: KubeObject) {
  const applied: KubeObject[] = [];
  const events: string[] = [];
  let stored = existing;
  const ctx = {
    log: pino({ level: 'silent' }),
    controller: 'test',
    reconcileId: 't',
    events: { normal: (_o: KubeObject, r: string) => events.push(r), warning: (_o: KubeObject, r: string) => events.push(r) },
    cache: { get: async () => stored, list: async () => [] },
    kube: {
      apply: async (o: KubeObject) => {
        applied.push(o);
        // What the Secret cache would hold after the write: digests.
        stored = { ...o, data: Object.fromEntries(Object.entries(o.data ?? {}).map(([k, v]) => [k, secretDigest(v as string)])) };
        return o;
      },
    } as unknown as KubeClient,
  } as unknown as ReconcileContext;
  return { ctx, applied, events, edit: (f: (o: KubeObject) => KubeObject) => (stored = f(stored!)) };
}

const desired = (v: string): KubeObject => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'photos-oidc', namespace: 'apps' }, type: 'Opaque', data: encodeSecretData({ 'client-secret': v }) });

describe('ensureOwned', () => {
  it('creates a missing child with the ownerReference and managed-by label, then makes no write while it is up to date', async () => {
    const f = fakeCtx();
    const r1 = await ensureOwned(f.ctx, owner, desired('s1'));
    expect(r1).toMatchObject({ changed: true, created: true, drifted: false });
    expect(f.applied[0]!.metadata.ownerReferences).toEqual([expect.objectContaining({ uid: 'owner-uid', controller: true })]);
    expect(f.applied[0]!.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'familyhub-operator' });
    const r2 = await ensureOwned(f.ctx, owner, desired('s1'));
    expect(r2.changed).toBe(false);
    expect(f.applied).toHaveLength(1);
  });

  it('refuses an object controlled by another owner, or by nobody, and writes nothing', async () => {
    const victim = { ...desired('theirs'), metadata: { name: 'postgres-admin', namespace: 'apps', ownerReferences: [{ apiVersion: 'v1', kind: 'X', name: 'other', uid: 'other-uid', controller: true }] } };
    const f = fakeCtx(victim);
    await expect(ensureOwned(f.ctx, owner, desired('s1'))).rejects.toThrow(ChildConflictError);
    await expect(ensureOwned(f.ctx, owner, desired('s1'))).rejects.toMatchObject({ reason: 'SecretConflict', message: expect.stringContaining('controlled by X other') });
    const unowned = fakeCtx({ ...desired('plain'), metadata: { name: 'postgres-admin', namespace: 'apps' } });
    await expect(ensureOwned(unowned.ctx, owner, desired('s1'))).rejects.toMatchObject({ reason: 'SecretConflict' });
    // Not even adoption takes over an object another controller owns.
    await expect(ensureOwned(f.ctx, owner, desired('s1'), { adopt: true })).rejects.toThrow(ChildConflictError);
    expect(f.applied).toHaveLength(0);
    expect(unowned.applied).toHaveLength(0);
  });

  it('adopts an unowned object only when asked', async () => {
    const f = fakeCtx({ ...desired('old'), metadata: { name: 'photos-oidc', namespace: 'apps' } });
    const r = await ensureOwned(f.ctx, owner, desired('new'), { adopt: true });
    expect(r).toMatchObject({ changed: true, adopted: true });
    expect(f.events).toEqual(['Adopted']);
  });

  it('tells a hand edit (restored, Drifted) from a change of the desired state (plain update)', async () => {
    const f = fakeCtx();
    await ensureOwned(f.ctx, owner, desired('s1'));
    f.edit((o) => ({ ...o, data: { 'client-secret': secretDigest(Buffer.from('tampered').toString('base64')) } }));
    const restored = await ensureOwned(f.ctx, owner, desired('s1'));
    expect(restored).toMatchObject({ changed: true, drifted: true });
    expect(f.events).toEqual(['Drifted']);
    const updated = await ensureOwned(f.ctx, owner, desired('s2'));
    expect(updated).toMatchObject({ changed: true, drifted: false });
    expect(f.applied.at(-1)!.metadata.annotations![APPLIED_HASH_ANNOTATION]).not.toBe(f.applied[0]!.metadata.annotations![APPLIED_HASH_ANNOTATION]);
  });

  it('compares by subset, so server defaults do not cause writes', () => {
    expect(isSubset({ spec: { replicas: 1, template: { spec: { containers: [{ name: 'a' }] } } } }, { spec: { replicas: 1, strategy: {}, template: { spec: { containers: [{ name: 'a', terminationMessagePath: '/dev/x' }] } } } })).toBe(true);
    expect(isSubset({ spec: { replicas: 2 } }, { spec: { replicas: 1 } })).toBe(false);
    expect(isSubset({ list: [1, 2] }, { list: [1, 2, 3] })).toBe(false);
  });
});
