// After a rotation, restart only the workloads the operator itself manages
// and that actually use the Secret, by changing a pod-template annotation.
// Objects that Argo CD (or anyone else) owns are never patched: their owner
// would fight us, and a GitOps diff is theirs to decide.
import { createHash } from 'node:crypto';
import type { KubeClient } from '../../core/kube-client.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../../core/kube-client.js';
import type { KubeObject } from '../../core/reconciler.js';

const ARGO_MARKERS = ['argocd.argoproj.io/tracking-id', 'argocd.argoproj.io/instance'];

/** Pod-template annotation carrying the credentials hash of one Secret. */
export function rolloutAnnotation(secretName: string): string {
  const key = `db-credentials.${secretName}`;
  // Annotation names are at most 63 characters after the prefix.
  return `familyhub.dev/${key.length <= 63 ? key : `db-credentials.${createHash('sha256').update(secretName).digest('hex').slice(0, 16)}`}`;
}

function usesSecret(podSpec: any, secretName: string): boolean {
  const containers = [...(podSpec?.containers ?? []), ...(podSpec?.initContainers ?? [])];
  for (const c of containers) {
    if ((c.envFrom ?? []).some((e: any) => e.secretRef?.name === secretName)) return true;
    if ((c.env ?? []).some((e: any) => e.valueFrom?.secretKeyRef?.name === secretName)) return true;
  }
  return (podSpec?.volumes ?? []).some((v: any) => v.secret?.secretName === secretName || (v.projected?.sources ?? []).some((s: any) => s.secret?.name === secretName));
}

export function ownedByArgo(o: KubeObject): boolean {
  const marks = { ...(o.metadata.annotations ?? {}), ...(o.metadata.labels ?? {}) };
  return ARGO_MARKERS.some((m) => m in marks);
}

/** Returns the names of Deployments whose rollout was triggered. */
export async function rolloutConsumers(kube: KubeClient, namespace: string, secretName: string, hash: string): Promise<string[]> {
  const list = await kube.list('apps/v1', 'Deployment', namespace, { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}` });
  const key = rolloutAnnotation(secretName);
  const rolled: string[] = [];
  for (const d of list.items) {
    if (ownedByArgo(d) || !usesSecret(d.spec?.template?.spec, secretName)) continue;
    if (d.spec?.template?.metadata?.annotations?.[key] === hash) continue;
    // A merge patch, not an apply: an apply under our field manager would drop
    // the fields the Deployment's own controller applied.
    await kube.mergePatch('apps/v1', 'Deployment', namespace, d.metadata.name, { spec: { template: { metadata: { annotations: { [key]: hash } } } } });
    rolled.push(d.metadata.name);
  }
  return rolled;
}
