// Own-write detection against a real apiserver: every watch event that our
// own write produced must be recognised as ours, also when the event arrives
// before the write's HTTP response (the two travel on different connections).
// A miss means a wasted reconcile per object; a false positive would hide a
// change someone else made.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { Informer } from '../../src/core/informer.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { namespace } from '../support/kube.js';

const NS = 'own-writes';

describe('own-write detection on a real apiserver', () => {
  let cp: ControlPlane;
  let ours: KubeClient;
  let theirs: KubeClient;
  let informer: Informer;
  const verdicts = new Map<string, Promise<boolean>>();

  beforeAll(async () => {
    cp = await startControlPlane({ audit: false });
    ours = new KubeClient(cp.kubeConfig);
    theirs = new KubeClient(cp.kubeConfig);
    await namespace(ours, NS);
    // The informer shares our client, as in the operator.
    informer = new Informer(ours, { apiVersion: 'v1', kind: 'ConfigMap', namespace: NS }, pino({ level: 'silent' }));
    const judge = (o: KubeObject) => verdicts.set(`${o.metadata.name}@${o.metadata.resourceVersion}`, Promise.resolve(ours.ownWriteSettled(o)));
    informer.addHandlers({ onAdd: judge, onUpdate: (_, o) => judge(o) });
    informer.start();
    await informer.hasSynced;
  });

  afterAll(async () => {
    await informer?.stop();
    await cp?.stop();
  });

  const cm = (name: string, v: string): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data: { v } } as KubeObject);
  const verdictFor = async (name: string, rv: string) => {
    await expect.poll(() => verdicts.has(`${name}@${rv}`), { timeout: 10_000 }).toBe(true);
    return verdicts.get(`${name}@${rv}`)!;
  };

  it('recognises the event of each of our writes (create, apply, merge patch), many in parallel', async () => {
    const written = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      const name = `ours-${i}`;
      const a = await ours.create(cm(name, '0'));
      const b = await ours.apply(cm(name, '1'));
      const c = await ours.mergePatch<KubeObject>('v1', 'ConfigMap', NS, name, { data: { v: '2' } });
      return [a, b, c].map((o) => [name, o.metadata.resourceVersion!] as const);
    }));
    for (const [name, rv] of written.flat()) expect(await verdictFor(name, rv), `${name}@${rv}`).toBe(true);
  });

  it('does not take a change made by another client for our own, even right after our write', async () => {
    const mine = await ours.create(cm('shared', 'ours'));
    const other = await theirs.mergePatch<KubeObject>('v1', 'ConfigMap', NS, 'shared', { data: { v: 'theirs' } });
    expect(await verdictFor('shared', mine.metadata.resourceVersion!)).toBe(true);
    expect(await verdictFor('shared', other.metadata.resourceVersion!)).toBe(false);
  });
});
