// Maps apiVersion/kind to the REST resource. Static on purpose (no discovery
// round-trips at start-up or after an apiserver restart): the core knows the
// few built-in kinds it uses itself, and every other kind is declared by
// whoever uses it — a controller definition (its kind, owned kinds, watched
// kinds) or the CRD registry in src/crds — through registerResource.

export interface ResourceType {
  apiVersion: string;
  kind: string;
  /** REST resource name, e.g. "secrets". */
  plural: string;
  namespaced: boolean;
}

const table = new Map<string, ResourceType>();

export function registerResource(t: ResourceType): ResourceType {
  const key = `${t.apiVersion}/${t.kind}`;
  const known = table.get(key);
  if (known && (known.plural !== t.plural || known.namespaced !== t.namespaced)) {
    throw new Error(`resource ${key} declared twice with different plural/scope (${known.plural} vs ${t.plural})`);
  }
  table.set(key, t);
  return t;
}

export function resourceFor(apiVersion: string, kind: string): ResourceType {
  const r = table.get(`${apiVersion}/${kind}`);
  if (!r) throw new Error(`unknown resource ${apiVersion}/${kind}: declare it (registerResource, or in the controller definition that uses it)`);
  return r;
}

const builtin = (apiVersion: string, kind: string, plural: string, namespaced = true) => registerResource({ apiVersion, kind, plural, namespaced });

/** Kinds the core itself or most controllers use. */
export const SECRET = builtin('v1', 'Secret', 'secrets');
export const CONFIGMAP = builtin('v1', 'ConfigMap', 'configmaps');
export const EVENT = builtin('v1', 'Event', 'events');
export const NAMESPACE = builtin('v1', 'Namespace', 'namespaces', false);
export const SERVICE_ACCOUNT = builtin('v1', 'ServiceAccount', 'serviceaccounts');
export const CORE_SERVICE = builtin('v1', 'Service', 'services');
export const POD = builtin('v1', 'Pod', 'pods');
export const DEPLOYMENT = builtin('apps/v1', 'Deployment', 'deployments');
export const LEASE = builtin('coordination.k8s.io/v1', 'Lease', 'leases');
export const EVENTS_V1_EVENT = builtin('events.k8s.io/v1', 'Event', 'events');
export const CRD = builtin('apiextensions.k8s.io/v1', 'CustomResourceDefinition', 'customresourcedefinitions', false);
builtin('rbac.authorization.k8s.io/v1', 'ClusterRole', 'clusterroles', false);
builtin('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', 'clusterrolebindings', false);
builtin('rbac.authorization.k8s.io/v1', 'Role', 'roles');
builtin('rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings');
