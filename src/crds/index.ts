// The registry of FamilyHub kinds: the single place their names, printer
// columns and schemas are declared. TypeScript types, runtime validation
// (resourceSchemas) and config/crd (scripts/generate-crds.ts) all come from it.
import { z } from 'zod';
import { CRD_GROUP, CRD_VERSION } from '../core/constants.js';
import { registerResource, type ResourceType } from '../core/resources.js';
import { DNS_LABEL_PATTERN } from './common.js';
import { databaseClaimSpecSchema, databaseClaimStatusSchema } from './databaseclaim.js';
import { familyHubSpecSchema, familyHubStatusSchema } from './familyhub.js';
import { celRegex, withCel, type CelRule } from './k8s-extensions.js';
import { oidcClientSpecSchema, oidcClientStatusSchema } from './oidcclient.js';
import { routeSpecSchema, routeStatusSchema } from './route.js';
import { serviceSpecSchema, serviceStatusSchema } from './service.js';

export * from './common.js';
export * from './databaseclaim.js';
export * from './duration.js';
export * from './familyhub.js';
export * from './oidcclient.js';
export * from './route.js';
export * from './service.js';
export type { CelRule } from './k8s-extensions.js';

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description: string;
  /** 0 = always shown; 1 = only with `-o wide`. */
  priority?: number;
}

/** Root-level rules see the whole object; only metadata.name/generateName are readable there. */
type RootRule = CelRule<{ metadata: { name?: string } }>;

export interface KindDefinition {
  group: string;
  version: string;
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Namespaced';
  categories: string[];
  description: string;
  printerColumns: PrinterColumn[];
  /** Spec fields usable in field selectors (`kubectl get dbc --field-selector spec.familyHubRef.name=home`). */
  selectableFields: string[];
  specSchema: z.ZodTypeAny;
  statusSchema: z.ZodTypeAny;
  /** CEL rules on the object root; nested rules live on the zod schemas themselves. */
  celRules: RootRule[];
}

const READY: PrinterColumn = { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', description: 'Whether the object is fully reconciled.' };
const REASON: PrinterColumn = { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason', description: 'Why it is (not) ready.', priority: 1 };
const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Time since creation.' };
const HUB: PrinterColumn = { name: 'Hub', type: 'string', jsonPath: '.spec.familyHubRef.name', description: 'FamilyHub this object belongs to.', priority: 1 };

/** Names that become label values and child object names must stay DNS labels. */
const nameIsLabel = (kind: string, max: number, why: string): RootRule => ({
  rule: `self.metadata.name.matches(${celRegex(DNS_LABEL_PATTERN)}) && size(self.metadata.name) <= ${max}`,
  message: `metadata.name of a ${kind} must be a lowercase DNS label of at most ${max} characters (${why})`,
  check: (o) => o.metadata.name === undefined || (new RegExp(DNS_LABEL_PATTERN).test(o.metadata.name) && o.metadata.name.length <= max),
});

// kubectl resolves a kind's names before categories, so a category called
// `familyhub` would only ever list FamilyHubs (the kind's singular).
export const CATEGORY = 'familyhub-all';

const base = { group: CRD_GROUP, version: CRD_VERSION, scope: 'Namespaced' as const, categories: [CATEGORY] };

export const kinds = {
  FamilyHub: {
    ...base,
    kind: 'FamilyHub', plural: 'familyhubs', singular: 'familyhub', shortNames: ['fh'],
    description: 'FamilyHub is one private platform: the PostgreSQL server, Redis, Vault/OpenBao, identity provider and gateway that the other FamilyHub kinds draw from, and the runtime services it runs.',
    printerColumns: [
      { name: 'Domain', type: 'string', jsonPath: '.spec.domain', description: 'Base domain.' },
      { name: 'Identity', type: 'string', jsonPath: '.spec.identity.kind', description: 'Identity provider kind.' },
      READY, REASON,
      { name: 'Issuer', type: 'string', jsonPath: '.spec.identity.issuerUrl', description: 'OpenID issuer.', priority: 1 },
      AGE,
    ],
    selectableFields: [],
    specSchema: familyHubSpecSchema,
    statusSchema: familyHubStatusSchema,
    celRules: [nameIsLabel('FamilyHub', 63, 'it is used as a label value')],
  },
  Service: {
    ...base,
    kind: 'Service', plural: 'services', singular: 'service', shortNames: ['fhsvc'],
    description: 'Service is a family developer\'s app: a container plus the database, login and public route it needs, all managed by the operator.',
    printerColumns: [
      { name: 'Host', type: 'string', jsonPath: '.spec.host', description: 'Public host name.' },
      { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas', description: 'Desired pods.' },
      READY, REASON, HUB,
      { name: 'Image', type: 'string', jsonPath: '.spec.image', description: 'Container image.', priority: 1 },
      AGE,
    ],
    selectableFields: ['.spec.familyHubRef.name'],
    specSchema: serviceSpecSchema,
    statusSchema: serviceStatusSchema,
    celRules: [nameIsLabel('Service', 50, 'it names the Deployment, Kubernetes Service and child objects')],
  },
  OIDCClient: {
    ...base,
    kind: 'OIDCClient', plural: 'oidcclients', singular: 'oidcclient', shortNames: ['oidc'],
    description: 'OIDCClient registers an application at the FamilyHub identity provider and keeps its credentials in a Secret.',
    printerColumns: [
      { name: 'Client ID', type: 'string', jsonPath: '.status.clientId', description: 'Registered client_id.' },
      { name: 'Type', type: 'string', jsonPath: '.spec.clientType', description: 'confidential or public.' },
      READY, REASON, HUB,
      { name: 'Secret', type: 'string', jsonPath: '.status.secretName', description: 'Secret with the credentials.', priority: 1 },
      AGE,
    ],
    selectableFields: ['.spec.familyHubRef.name'],
    specSchema: oidcClientSpecSchema,
    statusSchema: oidcClientStatusSchema,
    celRules: [],
  },
  DatabaseClaim: {
    ...base,
    kind: 'DatabaseClaim', plural: 'databaseclaims', singular: 'databaseclaim', shortNames: ['dbc'],
    description: 'DatabaseClaim gives an application its own schema on the FamilyHub PostgreSQL server, with rotated credentials in a Secret.',
    printerColumns: [
      { name: 'Schema', type: 'string', jsonPath: '.status.schema', description: 'Schema created for the claim.' },
      { name: 'Mode', type: 'string', jsonPath: '.spec.credentials.mode', description: 'How credentials are issued.' },
      READY, REASON, HUB,
      { name: 'Secret', type: 'string', jsonPath: '.status.secretName', description: 'Secret with the credentials.', priority: 1 },
      { name: 'Expires', type: 'date', jsonPath: '.status.leaseExpiresAt', description: 'When the current credentials expire.', priority: 1 },
      AGE,
    ],
    selectableFields: ['.spec.familyHubRef.name'],
    specSchema: databaseClaimSpecSchema,
    statusSchema: databaseClaimStatusSchema,
    celRules: [],
  },
  Route: {
    ...base,
    kind: 'Route', plural: 'routes', singular: 'route', shortNames: ['fhroute'],
    description: 'Route publishes a Kubernetes Service on a host name through the FamilyHub gateway, behind family login unless told otherwise.',
    printerColumns: [
      { name: 'Hostname', type: 'string', jsonPath: '.spec.hostname', description: 'Public host name.' },
      { name: 'Path', type: 'string', jsonPath: '.spec.pathPrefix', description: 'Path prefix.' },
      { name: 'Auth', type: 'boolean', jsonPath: '.spec.auth.required', description: 'Login required.' },
      READY, REASON, HUB,
      { name: 'Backend', type: 'string', jsonPath: '.spec.backendRef.name', description: 'Backend Service.', priority: 1 },
      AGE,
    ],
    selectableFields: ['.spec.familyHubRef.name'],
    specSchema: routeSpecSchema,
    statusSchema: routeStatusSchema,
    celRules: [],
  },
} satisfies Record<string, KindDefinition>;

export type KindName = keyof typeof kinds;
export const kindNames = Object.keys(kinds) as KindName[];

/** REST resource of each kind, registered with the core so its client can address them. */
export const resourceTypes = Object.fromEntries(kindNames.map((k) => {
  const d: KindDefinition = kinds[k];
  return [k, registerResource({ apiVersion: `${d.group}/${d.version}`, kind: d.kind, plural: d.plural, namespaced: true })];
})) as Record<KindName, ResourceType>;

function resourceSchema<K extends KindName>(kind: K) {
  const def = kinds[kind];
  const object = z.object({
    apiVersion: z.literal(`${def.group}/${def.version}`),
    kind: z.literal(def.kind as K),
    metadata: z.object({
      name: z.string().optional(),
      generateName: z.string().optional(),
      namespace: z.string().optional(),
    }).passthrough(),
    spec: def.specSchema as (typeof kinds)[K]['specSchema'],
    status: (def.statusSchema as (typeof kinds)[K]['statusSchema']).optional(),
  });
  return def.celRules.length ? withCel(object, def.celRules) : object;
}

/** Whole-object validators, e.g. for manifests read from disk. */
export const resourceSchemas = {
  FamilyHub: resourceSchema('FamilyHub'),
  Service: resourceSchema('Service'),
  OIDCClient: resourceSchema('OIDCClient'),
  DatabaseClaim: resourceSchema('DatabaseClaim'),
  Route: resourceSchema('Route'),
};

type Resource<Spec, Status> = import('../core/reconciler.js').Resource<Spec, Status>;

export type FamilyHub = Resource<import('./familyhub.js').FamilyHubSpec, import('./familyhub.js').FamilyHubStatus>;
export type FamilyHubService = Resource<import('./service.js').ServiceSpec, import('./service.js').ServiceStatus>;
export type OIDCClient = Resource<import('./oidcclient.js').OIDCClientSpec, import('./oidcclient.js').OIDCClientStatus>;
export type DatabaseClaim = Resource<import('./databaseclaim.js').DatabaseClaimSpec, import('./databaseclaim.js').DatabaseClaimStatus>;
export type Route = Resource<import('./route.js').RouteSpec, import('./route.js').RouteStatus>;
/** Same as FamilyHubService; the longer name avoids confusion with the core Service in controller code. */
export type Service = FamilyHubService;
