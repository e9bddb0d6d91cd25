// Adding a finalizer. The core adds a reconciler's finalizer before its
// first reconcile; a reconciler with `finalizerOnDemand` calls this itself
// just before it creates something only the finalizer can clean up.
import type { KubeClient } from './kube-client.js';
import type { KubeObject } from './reconciler.js';

/**
 * Adds `finalizer` to `obj` and returns the object as written, or `obj`
 * itself when it already carries it. The resourceVersion makes the patch a
 * compare-and-swap: a finalizer list changed meanwhile is a 409 and a retry,
 * not a finalizer lost.
 */
export async function addFinalizer<T extends KubeObject>(kube: KubeClient, obj: T, finalizer: string): Promise<T> {
  const finalizers = obj.metadata.finalizers ?? [];
  if (finalizers.includes(finalizer)) return obj;
  const written = await kube.mergePatch(obj.apiVersion!, obj.kind!, obj.metadata.namespace, obj.metadata.name, {
    metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers: [...finalizers, finalizer] },
  });
  written.apiVersion ??= obj.apiVersion;
  written.kind ??= obj.kind;
  return written as T;
}
