// Which cluster and namespace the CLI talks to, resolved like kubectl:
// --kubeconfig, else $KUBECONFIG (the first file that has the context), else
// in-cluster, else ~/.kube/config; --context over current-context; -n over
// the context's namespace over "default".
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { fromKubeconfigFile, loadKubeAccess, type KubeAccess } from '../core/kube-access.js';
import { KubeApiError, KubeClient, isMissingResourceType } from '../core/kube-client.js';
import type { KubeObject } from '../core/reconciler.js';
import { registerResource, type ResourceType } from '../core/resources.js';
import { kinds, kindNames, resourceTypes, type KindName } from '../crds/index.js';

export const CLI_FIELD_MANAGER = 'kubectl-familyhub';

export interface Target {
  kube: KubeClient;
  /** -n, else the context's namespace, else "default". */
  namespace: string;
  /** True when -n was given (commands that default to all namespaces honour it). */
  namespaceGiven: boolean;
}

export class UsageError extends Error {}

function kubeconfigFiles(flag?: string): string[] {
  if (flag) return [flag];
  const env = process.env.KUBECONFIG?.split(path.delimiter).filter(Boolean) ?? [];
  if (env.length) return env.filter((f) => existsSync(f));
  const home = path.join(os.homedir(), '.kube', 'config');
  return existsSync(home) ? [home] : [];
}

export async function connect(flags: { kubeconfig?: string; context?: string; namespace?: string }): Promise<Target> {
  const files = kubeconfigFiles(flags.kubeconfig);
  const docs = files.map((f) => ({ file: f, doc: (parse(readFileSync(f, 'utf8')) ?? {}) as Record<string, any> }));
  const hasContext = (d: Record<string, any>, name: string) => (d.contexts ?? []).some((c: any) => c?.name === name);
  let access: KubeAccess;
  let ctxNamespace: string | undefined;
  if (docs.length) {
    const wanted = flags.context ?? docs.find((d) => d.doc['current-context'])?.doc['current-context'];
    if (!wanted) throw new UsageError(`no current-context in ${files.join(', ')}: pass --context`);
    const holder = docs.find((d) => hasContext(d.doc, wanted));
    if (!holder) throw new UsageError(`context "${wanted}" not found in ${files.join(', ')}`);
    access = await fromKubeconfigFile(holder.file, wanted);
    ctxNamespace = (holder.doc.contexts as any[]).find((c) => c?.name === wanted)?.context?.namespace;
  } else {
    if (flags.context) throw new UsageError('--context given but no kubeconfig found (KUBECONFIG, ~/.kube/config)');
    access = await loadKubeAccess();
    const saNs = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
    if (existsSync(saNs)) ctxNamespace = readFileSync(saNs, 'utf8').trim();
  }
  return { kube: new KubeClient(access), namespace: flags.namespace ?? ctxNamespace ?? 'default', namespaceGiven: flags.namespace !== undefined };
}

/** Names kubectl accepts for our kinds: kind, singular, plural, short names (case-insensitive). */
export function kindFromAlias(alias: string): KindName | undefined {
  const a = alias.toLowerCase();
  return kindNames.find((k) => {
    const d = kinds[k];
    return [d.kind.toLowerCase(), d.singular, d.plural, ...d.shortNames, `${d.plural}.${d.group}`, `${d.singular}.${d.group}`].includes(a);
  });
}

/** "dbc/app" → DatabaseClaim "app". */
export function parseRef(ref: string): { kind: KindName; name: string } {
  const slash = ref.indexOf('/');
  if (slash <= 0 || slash === ref.length - 1) throw new UsageError(`expected <kind>/<name> (e.g. dbc/app, fhsvc/recipes), got "${ref}"`);
  const kind = kindFromAlias(ref.slice(0, slash));
  if (!kind) throw new UsageError(`unknown kind "${ref.slice(0, slash)}": one of ${kindNames.map((k) => `${kinds[k].shortNames[0]} (${k})`).join(', ')}`);
  return { kind, name: ref.slice(slash + 1) };
}

export const typeOf = (kind: KindName): ResourceType => resourceTypes[kind];

/**
 * Kinds a FamilyHub object may own, looked for when drawing its tree.
 * Optional APIs (Gateway API, Traefik, Envoy Gateway) are skipped when the
 * cluster does not serve them.
 */
export const CHILD_TYPES: ResourceType[] = [
  ...kindNames.map((k) => resourceTypes[k]),
  registerResource({ apiVersion: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true }),
  registerResource({ apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true }),
  registerResource({ apiVersion: 'v1', kind: 'Service', plural: 'services', namespaced: true }),
  registerResource({ apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments', namespaced: true }),
  registerResource({ apiVersion: 'apps/v1', kind: 'ReplicaSet', plural: 'replicasets', namespaced: true }),
  registerResource({ apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: true }),
  registerResource({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', plural: 'httproutes', namespaced: true }),
  registerResource({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', plural: 'gateways', namespaced: true }),
  registerResource({ apiVersion: 'traefik.io/v1alpha1', kind: 'Middleware', plural: 'middlewares', namespaced: true }),
  registerResource({ apiVersion: 'gateway.envoyproxy.io/v1alpha1', kind: 'SecurityPolicy', plural: 'securitypolicies', namespaced: true }),
  registerResource({ apiVersion: 'gateway.envoyproxy.io/v1alpha1', kind: 'BackendTrafficPolicy', plural: 'backendtrafficpolicies', namespaced: true }),
];

/** Kinds listed as metadata only: their values never reach this process. */
const METADATA_ONLY = new Set(['v1/Secret', 'v1/ConfigMap']);
const PARTIAL_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';

export type ListResult = { items: KubeObject[] } | { error: string } | { absent: true };

/** Lists a kind in a namespace (all when undefined); an API the cluster does not serve is `absent`, a refusal an `error`. */
export async function listKind(kube: KubeClient, t: ResourceType, namespace: string | undefined): Promise<ListResult> {
  try {
    const metaOnly = METADATA_ONLY.has(`${t.apiVersion}/${t.kind}`);
    const res = await kube.request<{ items: KubeObject[] }>('GET', kube.path(t.apiVersion, t.kind, namespace), metaOnly ? { accept: PARTIAL_LIST } : {});
    // Partial lists carry no apiVersion/kind per item.
    return { items: res.items.map((o) => ({ ...o, apiVersion: t.apiVersion, kind: t.kind })) };
  } catch (e) {
    if (isMissingResourceType(e)) return { absent: true };
    if (e instanceof KubeApiError) return { error: `${e.statusCode === 403 ? 'forbidden' : e.reason}: ${e.message}` };
    throw e;
  }
}

/** The controlling owner reference, if any. */
export function controllerOf(o: KubeObject) {
  return o.metadata.ownerReferences?.find((r) => r.controller);
}
