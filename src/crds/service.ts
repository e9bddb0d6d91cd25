// Service: a family developer's app in one object. The operator expands it
// into a Deployment plus whatever it `needs`: a DatabaseClaim, an OIDCClient
// and a Route, each owned by this object.
import { z } from 'zod';
import { familyHubRef, hostname, pgExtensions, port, re, statusBase } from './common.js';
import { asMap, asSet, celRegex, withCel } from './k8s-extensions.js';
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
    extensions: asSet(pgExtensions('Extensions to install in the schema.'), 'needs.database.extensions').default([]).describe('Extensions to install in the schema (default none).'),
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

export const serviceSpecSchema = z.object({
  familyHubRef: familyHubRef(),
  image: z.string().min(1).max(1024).regex(re('^[^\\s]+$'), 'image must be an image reference without whitespace').describe('Container image, e.g. ghcr.io/family/recipes:1.4.2.'),
  port: port('Port the container listens on.'),
  replicas: z.number().int().min(0).max(20).default(1).describe('Number of pods (default 1).'),
  host: hostname('Public host name of the app, e.g. recipes.family.example.org.'),
  env,
  needs,
}).strict().describe('Desired app.');

export const serviceStatusSchema = statusBase.extend({
  url: z.string().optional().describe('Public URL of the app.'),
  readyReplicas: z.number().int().min(0).optional().describe('Pods ready to serve.'),
  databaseClaimName: z.string().optional().describe('DatabaseClaim created for needs.database.'),
  oidcClientName: z.string().optional().describe('OIDCClient created for needs.oidc.'),
  routeName: z.string().optional().describe('Route created for needs.route.'),
}).describe('Observed state of the app.');

export type ServiceSpec = z.infer<typeof serviceSpecSchema>;
export type ServiceSpecInput = z.input<typeof serviceSpecSchema>;
export type ServiceStatus = z.infer<typeof serviceStatusSchema>;
