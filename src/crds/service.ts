// Service: a family developer's app in one object. The operator expands it
// into a Deployment plus whatever it `needs`: a DatabaseClaim, an OIDCClient
// and a Route, each owned by this object.
import { z } from 'zod';
import { DNS_LABEL_PATTERN, dnsSubdomain, familyHubRef, hostname, pgExtensions, port, re, statusBase } from './common.js';
import { asMap, asSet, celRegex, withCel } from './k8s-extensions.js';
import { SCHEMA_NAME_PATTERN } from './databaseclaim.js';
import { PATH_PREFIX_PATTERN, rateLimitSchema } from './route.js';

export const ENV_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*$';
/** Env names that suggest a credential; those belong in Secrets the operator manages. */
export const SECRET_LOOKING_ENV = '(?i)(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIAL)';
const secretLooking = new RegExp(SECRET_LOOKING_ENV.replace('(?i)', ''), 'i');

const env = withCel(asMap(z.array(z.object({
  name: z.string().min(1).max(128).regex(re(ENV_NAME_PATTERN), 'env name must be a C identifier').describe('Variable name.'),
  value: z.string().max(4096).describe('Plain value; stored in the CR as is, so never a secret.'),
}).strict().describe('An environment variable with a plain value.')).max(64), 'env', ['name']), [
  {
    rule: `self.all(e, !e.name.matches(${celRegex(SECRET_LOOKING_ENV)}))`,
    message: 'env: names that look like credentials (PASSWORD, SECRET, TOKEN, API_KEY, ...) are not allowed; values here are plain text, use needs.database/needs.oidc for credentials',
    check: (list) => list.every((e) => !secretLooking.test(e.name)),
  },
]).default([]).describe('Plain environment variables (default none). Credentials come from needs.*, never from here.');

const needs = z.object({
  database: z.object({
    enabled: z.boolean().default(false).describe('Create a DatabaseClaim and mount its Secret.'),
    schemaName: z.string().max(63).regex(re(SCHEMA_NAME_PATTERN), 'needs.database.schemaName must be a lowercase PostgreSQL identifier').optional()
      .describe('Schema name passed to the DatabaseClaim (default: derived from namespace and name); for apps whose SQL names its schema.'),
    extensions: asSet(pgExtensions('Extensions to install in the schema.'), 'needs.database.extensions').default([]).describe('Extensions to install in the schema (default none).'),
    rotateGeneration: z.number().int().min(0).default(0).describe('Bump to rotate the database credentials now (passed to the DatabaseClaim; the pods roll onto the new ones).'),
  }).strict().optional().describe('A PostgreSQL schema with rotated credentials.'),
  oidc: z.object({
    enabled: z.boolean().default(false).describe('Create an OIDCClient and mount its Secret.'),
    redirectPaths: asSet(z.array(z.string().max(1024).regex(re(PATH_PREFIX_PATTERN), 'redirectPaths must be absolute paths').describe('Path on spec.host, e.g. /oauth2/callback.')).max(16), 'needs.oidc.redirectPaths')
      .default(['/oauth2/callback']).describe('Redirect paths on https://<host> (default /oauth2/callback).'),
  }).strict().optional().describe('An OpenID client registration at the family identity provider.'),
  route: z.object({
    auth: z.object({
      required: z.boolean().default(true).describe('Require a logged-in family member (default true).'),
    }).strict().default({}).describe('Who may reach the app.'),
    rateLimit: rateLimitSchema.optional(),
  }).strict().optional().describe('Publish the app on spec.host through the gateway.'),
}).strict().default({}).describe('Platform resources the app needs; each becomes an owned child object.');

/** Kubernetes quantities (decimal or binary suffix); the reconciler compares them by value, since the apiserver may rewrite 1000m as 1. */
export const QUANTITY_PATTERN = '^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$';
const quantity = (what: string) => z.string().max(32).regex(re(QUANTITY_PATTERN), `${what} must be a Kubernetes quantity such as 250m, 1, 512Mi or 2Gi`).describe(`${what}, e.g. 250m, 512Mi.`);
const resourceList = (what: string) => z.object({
  cpu: quantity(`${what}.cpu`).optional(),
  memory: quantity(`${what}.memory`).optional(),
  'ephemeral-storage': quantity(`${what}.ephemeral-storage`).optional(),
}).strict();

const resources = z.object({
  requests: resourceList('resources.requests').optional().describe('What the scheduler reserves for each pod.'),
  limits: resourceList('resources.limits').optional().describe('Upper bounds for each pod.'),
}).strict().optional().describe('CPU, memory and scratch space of the app container (default: none set).');

const probe = (kind: string, periodDefault: number) => z.object({
  path: z.string().max(1024).regex(re(PATH_PREFIX_PATTERN), `probes.${kind}.path must be an absolute path`).optional()
    .describe('HTTP path answered with 2xx/3xx when healthy; without it the probe only opens a TCP connection to spec.port.'),
  initialDelaySeconds: z.number().int().min(0).max(3600).default(0).describe('Seconds after start before the first probe (default 0).'),
  periodSeconds: z.number().int().min(1).max(300).default(periodDefault).describe(`Seconds between probes (default ${periodDefault}).`),
  timeoutSeconds: z.number().int().min(1).max(60).default(1).describe('Seconds a probe may take (default 1).'),
  failureThreshold: z.number().int().min(1).max(30).default(3).describe('Failures in a row before acting (default 3).'),
}).strict();

const probes = z.object({
  readiness: probe('readiness', 5).default({}).describe('When a pod gets traffic.'),
  liveness: probe('liveness', 10).default({}).describe('When a pod is restarted.'),
}).strict().default({}).describe('Readiness and liveness probes; by default both open a TCP connection to spec.port.');

/** Volume names and paths the operator itself uses. */
export const RESERVED_VOLUME_NAMES = ['tmp', 'database-credentials', 'oidc-credentials', 'redis-credentials'];
export const RESERVED_MOUNT_PREFIX = '/var/run/familyhub';

const volume = z.object({
  name: z.string().min(1).max(63).regex(re(DNS_LABEL_PATTERN), 'volumes[].name must be a lowercase RFC 1123 label').describe('Volume name.'),
  mountPath: z.string().min(1).max(1024).regex(re('^/[^:]*$'), 'volumes[].mountPath must be an absolute path without ":"').describe('Where the volume appears in the container.'),
  emptyDir: z.object({
    medium: z.enum(['', 'Memory']).optional().describe('Unset (node disk, default) or Memory (tmpfs).'),
    sizeLimit: quantity('volumes[].emptyDir.sizeLimit').optional(),
  }).strict().optional().describe('Scratch space that lives as long as the pod.'),
  persistentVolumeClaim: z.object({
    claimName: dnsSubdomain('PersistentVolumeClaim in the namespace of this Service.'),
    readOnly: z.boolean().default(false).describe('Mount read-only (default false).'),
  }).strict().optional().describe('An existing PersistentVolumeClaim.'),
}).strict().describe('A volume mounted into the app container; exactly one of emptyDir or persistentVolumeClaim.');

type VolumeSpec = z.infer<typeof volume>;
const reservedPath = (p: string) => p === '/tmp' || p === RESERVED_MOUNT_PREFIX || p.startsWith(`${RESERVED_MOUNT_PREFIX}/`);

const volumes = withCel(asMap(z.array(volume).max(16), 'volumes', ['name']), [
  {
    rule: 'self.all(v, has(v.emptyDir) != has(v.persistentVolumeClaim))',
    message: 'volumes: set exactly one of emptyDir or persistentVolumeClaim in each volume',
    check: (list: VolumeSpec[]) => list.every((v) => (v.emptyDir === undefined) !== (v.persistentVolumeClaim === undefined)),
  },
  {
    rule: `self.all(v, !(v.name in [${RESERVED_VOLUME_NAMES.map((n) => `'${n}'`).join(', ')}]))`,
    message: `volumes: names ${RESERVED_VOLUME_NAMES.join(', ')} are used by the operator`,
    check: (list: VolumeSpec[]) => list.every((v) => !RESERVED_VOLUME_NAMES.includes(v.name)),
  },
  {
    rule: `self.all(v, v.mountPath != '/tmp' && v.mountPath != '${RESERVED_MOUNT_PREFIX}' && !v.mountPath.startsWith('${RESERVED_MOUNT_PREFIX}/'))`,
    message: `volumes: mountPath must not be /tmp or under ${RESERVED_MOUNT_PREFIX} (used by the operator)`,
    check: (list: VolumeSpec[]) => list.every((v) => !reservedPath(v.mountPath)),
  },
]).default([]).describe('emptyDir or PersistentVolumeClaim volumes (default none; /tmp is always an emptyDir).');

export const serviceSpecSchema = z.object({
  familyHubRef: familyHubRef(),
  image: z.string().min(1).max(1024).regex(re('^[^\\s]+$'), 'image must be an image reference without whitespace').describe('Container image, e.g. ghcr.io/family/recipes:1.4.2.'),
  command: z.array(z.string().max(4096).describe('An argument.')).max(32).optional().describe('Replaces the image\'s ENTRYPOINT (default: the image\'s).'),
  args: z.array(z.string().max(4096).describe('An argument.')).max(64).optional().describe('Replaces the image\'s CMD (default: the image\'s).'),
  port: port('Port the container listens on.'),
  replicas: z.number().int().min(0).max(20).optional().describe('Number of pods; omit to leave it to a HorizontalPodAutoscaler (a new Deployment starts with 1).'),
  host: hostname('Public host name of the app, e.g. recipes.family.example.org.'),
  env,
  resources,
  probes,
  volumes,
  automountServiceAccountToken: z.boolean().default(false).describe('Mount a Kubernetes API token into the pod (default false: the app does not talk to the apiserver).'),
  suspend: z.boolean().default(false).describe('Change nothing: compute what would be created or changed (server-side dry run) and show it in status.plan. Same as the annotation familyhub.dev/plan: "true".'),
  needs,
}).strict().describe('Desired app.');

const planEntry = z.object({
  kind: z.string().describe('Child kind.'),
  name: z.string().describe('Child name.'),
  action: z.enum(['Create', 'Update', 'Unchanged', 'Delete', 'Conflict', 'Waiting']).describe('What applying would do.'),
  fields: z.array(z.string().describe('A changed field path.')).max(16).optional().describe('Fields that would change (Update).'),
  message: z.string().optional().describe('Why (Conflict, Waiting, a refused dry run).'),
}).describe('One child in the plan.');

export const serviceStatusSchema = statusBase.extend({
  url: z.string().optional().describe('Public URL of the app.'),
  readyReplicas: z.number().int().min(0).optional().describe('Pods ready to serve.'),
  databaseClaimName: z.string().optional().describe('DatabaseClaim created for needs.database.'),
  oidcClientName: z.string().optional().describe('OIDCClient created for needs.oidc.'),
  routeName: z.string().optional().describe('Route created for needs.route.'),
  deploymentName: z.string().optional().describe('Deployment running the app.'),
  serviceName: z.string().optional().describe('Kubernetes Service in front of the pods.'),
  credentialsHash: z.string().optional().describe('Hash of the mounted credentials the pods were rolled out with (changes on rotation).'),
  plan: z.object({
    summary: z.string().describe('One line, e.g. "2 to create, 1 to update, 2 unchanged".'),
    changes: z.array(planEntry).max(16).describe('Each child and what applying would do.'),
  }).optional().describe('Set while in plan mode (annotation familyhub.dev/plan: "true" or spec.suspend): what applying would change. Nothing is written meanwhile.'),
}).describe('Observed state of the app.');

export type ServiceSpec = z.infer<typeof serviceSpecSchema>;
export type ServiceSpecInput = z.input<typeof serviceSpecSchema>;
export type ServiceStatus = z.infer<typeof serviceStatusSchema>;
