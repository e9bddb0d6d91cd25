// Small helpers for e2e tests that talk to the real apiserver.
import { KubeClient } from '../../src/core/kube-client.js';
import type { CacheReader, Condition, KubeObject, ReconcileContext } from '../../src/core/reconciler.js';
// Registers the FamilyHub kinds with the core's client.
import '../../src/crds/index.js';
import pino from 'pino';
import { waitFor } from '../../hack/local/process.js';

export const API = 'familyhub.dev/v1alpha1';

export function condition(obj: KubeObject | undefined, type: string): Condition | undefined {
  return (obj?.status?.conditions as Condition[] | undefined)?.find((c) => c.type === type);
}

/** Waits until `pred` holds for the object and returns it. */
export async function waitForObject(
  kube: KubeClient,
  ref: { apiVersion?: string; kind: string; namespace?: string; name: string },
  what: string,
  pred: (o: KubeObject) => boolean,
  timeoutMs = 60_000,
): Promise<KubeObject> {
  let last: KubeObject | undefined;
  await waitFor(`${ref.kind} ${ref.namespace}/${ref.name}: ${what}`, async () => {
    last = await kube.get(ref.apiVersion ?? API, ref.kind, ref.namespace, ref.name);
    return !!last && pred(last);
  }, { timeoutMs, intervalMs: 250 }).catch((err: Error) => {
    throw new Error(`${err.message}\nlast seen status: ${JSON.stringify(last?.status ?? null)}`);
  });
  return last!;
}

export const isReady = (o: KubeObject) =>
  condition(o, 'Ready')?.status === 'True' && o.status?.observedGeneration === o.metadata.generation;

export async function secret(kube: KubeClient, namespace: string, name: string, data: Record<string, string>): Promise<void> {
  await kube.apply({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  }, { fieldManager: 'e2e-test' });
}

export async function namespace(kube: KubeClient, name: string): Promise<void> {
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, { fieldManager: 'e2e-test' });
}

/** A CacheReader that always asks the API (for calling platform code directly in tests). */
export function apiCache(kube: KubeClient): CacheReader {
  return {
    get: <T extends KubeObject>(t: { apiVersion: string; kind: string }, ns: string | undefined, name: string) => kube.get<T>(t.apiVersion, t.kind, ns, name),
    list: async <T extends KubeObject>(t: { apiVersion: string; kind: string }, ns?: string) => (await kube.list<T>(t.apiVersion, t.kind, ns)).items,
  };
}

/** A reconcile context for calling checks and platform code directly (Events are dropped). */
export function testContext(kube: KubeClient): ReconcileContext {
  return { kube, cache: apiCache(kube), log: pino({ level: 'silent' }), events: { normal() {}, warning() {} }, reconcileId: 'test', controller: 'test' };
}
