// The Kubernetes writes the benches' bare scripts make where an operator
// would (the baselines' status, the reference runs' finalizer, owned child
// and status), kept in one place so every bench writes the same objects.
import { ownerReference, type KubeClient } from '../src/core/kube-client.js';
import type { KubeObject } from '../src/core/reconciler.js';

const FINALIZER = 'bench.familyhub.dev/reference';

/** Creates `obj`, then adds a finalizer as an operator's first reconcile does. */
export async function createWithFinalizer(kube: KubeClient, obj: KubeObject): Promise<KubeObject> {
  const created = await kube.create<KubeObject>(obj);
  await kube.mergePatch(created.apiVersion!, created.kind!, created.metadata.namespace, created.metadata.name, {
    metadata: { resourceVersion: created.metadata.resourceVersion, finalizers: [FINALIZER] },
  });
  return created;
}

/** Server-side applies `child` (a Secret or ConfigMap) controlled by `owner`. */
export async function applyOwnedChild(kube: KubeClient, owner: KubeObject, child: KubeObject): Promise<void> {
  await kube.apply({ ...child, metadata: { ...child.metadata, ownerReferences: [ownerReference(owner)] } }, { fieldManager: 'bench' });
}

/** Server-side applies a Ready status for generation 1 (what the baselines and references report). */
export async function applyReadyStatus(kube: KubeClient, obj: KubeObject): Promise<void> {
  const condition = { type: 'Ready', status: 'True', reason: 'Reconciled', message: 'ok', observedGeneration: 1, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
  await kube.apply(
    { apiVersion: obj.apiVersion, kind: obj.kind, metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace }, status: { observedGeneration: 1, conditions: [condition] } },
    { subresource: 'status', fieldManager: 'bench' },
  );
}
