// CRDs of the gateway projects the Route controller writes objects for,
// loaded from their own Go modules (`go mod download -json` → .Dir) so the
// test apiserver validates our objects with exactly their schemas and CEL
// rules, and nothing of theirs is copied into this repository:
// - Gateway API standard channel from sigs.k8s.io/gateway-api, at the version
//   the pinned Traefik is built against (read from hack/go/traefik/go.mod);
// - Traefik's CRDs (Middleware, ...) from github.com/traefik/traefik/v3;
// - Envoy Gateway's CRDs (SecurityPolicy, BackendTrafficPolicy, ...) from
//   github.com/envoyproxy/gateway.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { readManifestDir, readManifests, repoRoot } from './manifests.js';
import { waitFor } from './process.js';

/** Envoy Gateway release whose CRDs the generated objects must satisfy (v1.8+ layout). */
export const ENVOY_GATEWAY_VERSION = 'v1.9.1';

function wrapperVersion(module: string): string {
  const gomod = readFileSync(path.join(repoRoot, 'hack/go/traefik/go.mod'), 'utf8');
  const m = gomod.match(new RegExp(`^\\s*(?:require\\s+)?${module.replace(/[./]/g, '\\$&')}\\s+(v\\S+)`, 'm'));
  if (!m) throw new Error(`${module} is not pinned in hack/go/traefik/go.mod`);
  return m[1]!;
}

export const TRAEFIK_VERSION = wrapperVersion('github.com/traefik/traefik/v3');
export const GATEWAY_API_VERSION = wrapperVersion('sigs.k8s.io/gateway-api');

const dirs = new Map<string, string>();

/** Local directory of a Go module version (downloaded into the module cache on first use). */
export function goModuleDir(module: string, version: string): string {
  const key = `${module}@${version}`;
  const known = dirs.get(key);
  if (known) return known;
  // Outside any module (tmpdir) so no go.mod's toolchain or replace lines apply.
  const out = execFileSync('go', ['mod', 'download', '-json', key], {
    cwd: os.tmpdir(),
    encoding: 'utf8',
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '', GO111MODULE: 'on' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const info = JSON.parse(out) as { Dir?: string; Error?: string };
  if (!info.Dir || info.Error) throw new Error(`go mod download ${key}: ${info.Error ?? 'no Dir in output'}`);
  dirs.set(key, info.Dir);
  return info.Dir;
}

const onlyCrds = (objs: KubeObject[]) => objs.filter((o) => o.kind === 'CustomResourceDefinition');

export function gatewayApiCrds(): KubeObject[] {
  return onlyCrds(readManifestDir(path.join(goModuleDir('sigs.k8s.io/gateway-api', GATEWAY_API_VERSION), 'config/crd/standard')));
}

export function traefikCrds(): KubeObject[] {
  const file = path.join(goModuleDir('github.com/traefik/traefik/v3', TRAEFIK_VERSION), 'docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml');
  return onlyCrds(readManifests(file));
}

/** Traefik's published RBAC for its kubernetescrd and kubernetesgateway providers (ClusterRoles only). */
export function traefikClusterRoles(): KubeObject[] {
  const base = path.join(goModuleDir('github.com/traefik/traefik/v3', TRAEFIK_VERSION), 'docs/content/reference/dynamic-configuration');
  return ['kubernetes-crd-rbac.yml', 'kubernetes-gateway-rbac.yml']
    .flatMap((f) => readManifests(path.join(base, f)))
    .filter((o) => o.kind === 'ClusterRole');
}

export function envoyGatewayCrds(): KubeObject[] {
  const base = goModuleDir('github.com/envoyproxy/gateway', ENVOY_GATEWAY_VERSION);
  const dir = [
    'charts/gateway-helm/charts/crds/crds/generated',
    'charts/gateway-helm/crds/generated',
  ].map((d) => path.join(base, d)).find((d) => existsSync(d));
  if (!dir) throw new Error(`no CRD directory in github.com/envoyproxy/gateway@${ENVOY_GATEWAY_VERSION}`);
  return onlyCrds(readManifestDir(dir));
}

export type GatewayCrdSet = 'gateway-api' | 'traefik' | 'envoy-gateway';

/** Installs the chosen CRD sets and waits until each CRD is Established. */
export async function installGatewayCrds(kc: KubeConfig, sets: GatewayCrdSet[] = ['gateway-api', 'traefik']): Promise<string[]> {
  const crds = [
    ...(sets.includes('gateway-api') ? gatewayApiCrds() : []),
    ...(sets.includes('traefik') ? traefikCrds() : []),
    ...(sets.includes('envoy-gateway') ? envoyGatewayCrds() : []),
  ];
  const kube = new KubeClient(kc);
  // Their own field manager: these CRDs are not ours to own.
  await Promise.all(crds.map((c) => kube.apply(c, { fieldManager: 'familyhub-gateway-crds' })));
  await Promise.all(crds.map((crd) => waitFor(`CRD ${crd.metadata.name} Established`, async () => {
    const c = await kube.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, crd.metadata.name);
    return !!c?.status?.conditions?.some((x: { type: string; status: string }) => x.type === 'Established' && x.status === 'True');
  }, { timeoutMs: 60_000 })));
  return crds.map((c) => c.metadata.name);
}
