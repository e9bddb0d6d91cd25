// The Prometheus Operator's ServiceMonitor and PrometheusRule CRDs, loaded
// from its Go module at a pinned version (nothing of theirs is copied into
// this repository), so the test apiserver validates the chart's monitoring
// objects with exactly their schemas.
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { goModuleDir } from './gateway-crds.js';
import { readManifests } from './manifests.js';
import { waitFor } from './process.js';

export const PROMETHEUS_OPERATOR_VERSION = 'v0.85.0';

export function prometheusOperatorCrds(kinds: string[] = ['servicemonitors', 'prometheusrules']): KubeObject[] {
  const dir = path.join(goModuleDir('github.com/prometheus-operator/prometheus-operator', PROMETHEUS_OPERATOR_VERSION), 'example/prometheus-operator-crd');
  return kinds.flatMap((k) => readManifests(path.join(dir, `monitoring.coreos.com_${k}.yaml`))).filter((o) => o.kind === 'CustomResourceDefinition');
}

/** Installs the CRDs (their own field manager: not ours to own) and waits until each is Established. */
export async function installPrometheusOperatorCrds(kc: KubeConfig): Promise<string[]> {
  const kube = new KubeClient(kc);
  const crds = prometheusOperatorCrds();
  await Promise.all(crds.map((c) => kube.apply(c, { fieldManager: 'familyhub-prometheus-crds' })));
  await Promise.all(crds.map((crd) => waitFor(`CRD ${crd.metadata.name} Established`, async () => {
    const c = await kube.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, crd.metadata.name);
    return !!c?.status?.conditions?.some((x: { type: string; status: string }) => x.type === 'Established' && x.status === 'True');
  }, { timeoutMs: 60_000 })));
  return crds.map((c) => c.metadata.name);
}
