// Maps apiVersion/kind to the REST resource. Static on purpose: the operator
// only touches a known set of kinds, and discovery round-trips at start-up
// would slow every reconnect after an apiserver restart.
import { CRD_GROUP } from './constants.js';

export interface ResourceInfo {
  plural: string;
  namespaced: boolean;
}

const table: Record<string, ResourceInfo> = {
  'v1/Secret': { plural: 'secrets', namespaced: true },
  'v1/ConfigMap': { plural: 'configmaps', namespaced: true },
  'v1/Event': { plural: 'events', namespaced: true },
  'v1/Namespace': { plural: 'namespaces', namespaced: false },
  'v1/Service': { plural: 'services', namespaced: true },
  'v1/ServiceAccount': { plural: 'serviceaccounts', namespaced: true },
  'apps/v1/Deployment': { plural: 'deployments', namespaced: true },
  'coordination.k8s.io/v1/Lease': { plural: 'leases', namespaced: true },
  'events.k8s.io/v1/Event': { plural: 'events', namespaced: true },
  'apiextensions.k8s.io/v1/CustomResourceDefinition': { plural: 'customresourcedefinitions', namespaced: false },
  'gateway.networking.k8s.io/v1/HTTPRoute': { plural: 'httproutes', namespaced: true },
  'rbac.authorization.k8s.io/v1/ClusterRole': { plural: 'clusterroles', namespaced: false },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': { plural: 'clusterrolebindings', namespaced: false },
  'rbac.authorization.k8s.io/v1/Role': { plural: 'roles', namespaced: true },
  'rbac.authorization.k8s.io/v1/RoleBinding': { plural: 'rolebindings', namespaced: true },
};

for (const [kind, plural] of [
  ['FamilyHub', 'familyhubs'],
  ['Service', 'services'],
  ['OIDCClient', 'oidcclients'],
  ['DatabaseClaim', 'databaseclaims'],
  ['Route', 'routes'],
] as const) {
  table[`${CRD_GROUP}/v1alpha1/${kind}`] = { plural, namespaced: true };
}

export function resourceFor(apiVersion: string, kind: string): ResourceInfo {
  const r = table[`${apiVersion}/${kind}`];
  if (!r) throw new Error(`unknown resource ${apiVersion}/${kind}: add it to src/core/resources.ts`);
  return r;
}

