// A ReconcileContext whose cache serves a fixed set of objects, for unit tests
// of what a reconciler observes (Secrets in it carry digests, as the informer
// cache holds them, never values).
import type { CacheReader, KubeObject, ReconcileContext } from '../../src/core/reconciler.js';
import type { ResourceType } from '../../src/core/resources.js';

export function cacheContext(objects: KubeObject[]): ReconcileContext {
  const cache: CacheReader = {
    get: async <T extends KubeObject>(type: ResourceType, ns: string | undefined, name: string) =>
      objects.find((x) => x.kind === type.kind && x.metadata.namespace === ns && x.metadata.name === name) as T | undefined,
    list: async <T extends KubeObject>(type: ResourceType) => objects.filter((x) => x.kind === type.kind) as T[],
  };
  return { cache } as unknown as ReconcileContext;
}
