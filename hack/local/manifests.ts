// Applies YAML manifests (CRDs, RBAC, samples) to a cluster with server-side
// apply, the way `kubectl apply --server-side` would, and waits for CRDs to
// be Established. Used by the tests and by `npm run dev`.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { KubeClient } from '../../src/core/kube-client.js';
// Registers the FamilyHub kinds with the core's client.
import '../../src/crds/index.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { waitFor } from './process.js';
import type { KubeConfig } from '@kubernetes/client-node';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function readManifests(file: string): KubeObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => !!o && typeof o === 'object' && 'kind' in o);
}

export function readManifestDir(dir: string): KubeObject[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
    .sort()
    .flatMap((f) => readManifests(path.join(dir, f)));
}

export async function applyAll(kc: KubeConfig, objs: KubeObject[], fieldManager = 'familyhub-dev'): Promise<void> {
  const kube = new KubeClient(kc);
  for (const o of objs) await kube.apply(o, { fieldManager });
}

/** Installs config/crd and waits until every CRD is Established. */
export async function installCrds(kc: KubeConfig): Promise<string[]> {
  const crds = readManifestDir(process.env.FAMILYHUB_CRD_DIR ?? path.join(repoRoot, 'config/crd'));
  await applyAll(kc, crds);
  const kube = new KubeClient(kc);
  for (const crd of crds) {
    await waitFor(`CRD ${crd.metadata.name} Established`, async () => {
      const c = await kube.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, crd.metadata.name);
      return !!c?.status?.conditions?.some((x: { type: string; status: string }) => x.type === 'Established' && x.status === 'True');
    }, { timeoutMs: 30_000 });
  }
  return crds.map((c) => c.metadata.name);
}

/** Creates the operator namespace and applies config/rbac (ServiceAccount, roles, bindings). */
export async function installRbac(kc: KubeConfig): Promise<void> {
  await applyAll(kc, [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'familyhub-system' } }]);
  await applyAll(kc, readManifestDir(path.join(repoRoot, 'config/rbac')));
}
