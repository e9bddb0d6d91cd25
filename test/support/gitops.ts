// What the GitOps checks of test/e2e/status-conformance.test.ts and
// test/e2e/node-service-sample.test.ts share: the samples as Argo CD applies
// them (its tracking label and annotation), the fields the operator owns in
// a live object, and the walk over an object's descendants by owner uid.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { repoRoot } from '../../hack/local/manifests.js';
import type { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';

// What Argo CD sets on everything it applies (label and annotation tracking).
export const ARGO_LABEL = 'app.kubernetes.io/instance';
export const ARGO_ANNOTATION = 'argocd.argoproj.io/tracking-id';
export const OPERATOR_MANAGER = 'familyhub-operator';

/** The object with the labels and annotation Argo CD puts on what it syncs for application `app`. */
export function tracked(o: KubeObject, app: string): KubeObject {
  return {
    ...o,
    metadata: {
      ...o.metadata,
      labels: { ...o.metadata.labels, [ARGO_LABEL]: app },
      annotations: { ...o.metadata.annotations, [ARGO_ANNOTATION]: `${app}:familyhub.dev/${o.kind}:${o.metadata.namespace}/${o.metadata.name}` },
    },
  };
}

/** config/samples/<file> in `namespace`, as Argo CD application `app` applies it. */
export function trackedSample(file: string, namespace: string, app: string): KubeObject {
  const o = parse(readFileSync(path.join(repoRoot, 'config/samples', file), 'utf8')) as KubeObject;
  return tracked({ ...o, metadata: { ...o.metadata, namespace } }, app);
}

/** "f:a/f:b" paths of the leaves of a managedFields fieldsV1 tree. */
export function leafPaths(tree: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(tree).filter(([k]) => k !== '.').flatMap(([k, v]) => {
    const p = prefix ? `${prefix}/${k}` : k;
    const sub = v && typeof v === 'object' ? leafPaths(v as Record<string, unknown>, p) : [];
    return sub.length ? sub : [p];
  });
}

/** Whether the operator writes the object's status, and the fields it owns outside status and its finalizers. */
export function operatorFields(live: KubeObject): { writesStatus: boolean; outsideStatus: string[] } {
  const entries = (live.metadata.managedFields ?? []) as Array<{ manager: string; subresource?: string; fieldsV1?: Record<string, unknown> }>;
  const ours = entries.filter((e) => e.manager === OPERATOR_MANAGER);
  return {
    writesStatus: ours.some((e) => e.subresource === 'status'),
    outsideStatus: ours.filter((e) => e.subresource !== 'status')
      .flatMap((e) => leafPaths(e.fieldsV1 ?? {}))
      .filter((f) => !f.startsWith('f:metadata/f:finalizers')),
  };
}

/**
 * Every object of `kinds` whose ownerReferences lead back to one of `roots`
 * (uids), children of children included; `namespace` undefined lists all.
 */
export async function descendants(kube: KubeClient, roots: Array<string | undefined>, kinds: Array<[string, string]>, namespace?: string): Promise<KubeObject[]> {
  const owners = new Set<string | undefined>(roots);
  const found: KubeObject[] = [];
  for (let grew = true; grew;) {
    grew = false;
    for (const [apiVersion, kind] of kinds) {
      for (const o of (await kube.list(apiVersion, kind, namespace)).items) {
        if (owners.has(o.metadata.uid) || !o.metadata.ownerReferences?.some((r) => owners.has(r.uid))) continue;
        owners.add(o.metadata.uid);
        found.push({ ...o, apiVersion, kind });
        grew = true;
      }
    }
  }
  return found;
}
