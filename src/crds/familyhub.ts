// FamilyHub: one platform instance. It names the shared infrastructure
// (PostgreSQL server, Redis, Vault/OpenBao, identity provider, gateway) that
// DatabaseClaims, OIDCClients, Services and Routes in turn draw from.
import { z } from 'zod';
import {
  SECURE_URI_PATTERN, connectHost, credentialsSecretRef, dnsLabel, dnsSubdomain, hostname, pgExtensions, port, re, scopeList, secretKeyRef, statusBase,
} from './common.js';
import { asSet, withCel } from './k8s-extensions.js';

const postgres = z.object({
  host: connectHost('PostgreSQL server host (DNS name or IP).'),
  port: port('PostgreSQL server port.').default(5432),
  database: z.string().min(1).max(63).regex(re('^[a-zA-Z_][a-zA-Z0-9_-]*$')).describe('Database in which per-claim schemas are created.'),
  sslMode: z.enum(['disable', 'require', 'verify-ca', 'verify-full']).default('require').describe('libpq sslmode used by the operator and handed to applications.'),
  adminCredentialsSecretRef: credentialsSecretRef('Secret with a role allowed to create roles and schemas (CREATEROLE; schema owner grants).'),
  allowedExtensions: asSet(pgExtensions('Extensions DatabaseClaims may request; anything else is refused.'), 'postgres.allowedExtensions').default([])
    .describe('Extensions DatabaseClaims may request; anything else is refused (default none).'),
}).strict().describe('The PostgreSQL server DatabaseClaims get schemas on.');

const redis = z.object({
  host: connectHost('Redis host (DNS name or IP).'),
  port: port('Redis port.').default(6379),
  passwordSecretRef: secretKeyRef('password', 'Secret holding the Redis password (AUTH); omit when Redis has none.').optional(),
}).strict().describe('Redis used by the runtime services (presence, pub/sub, rate limits).');

const vault = withCel(z.object({
  address: z.string().max(2048).regex(re('^https?://[^\\s/?#]+(/[^\\s?#]*)?$'), 'must be an http(s) URL').describe('Vault/OpenBao API address, e.g. https://openbao.vault.svc:8200.'),
  authMethod: z.enum(['token', 'kubernetes']).default('token').describe('How the operator logs in: a token from a Secret, or the Kubernetes auth method with its ServiceAccount.'),
  tokenSecretRef: secretKeyRef('token', 'Secret with a Vault token (required when authMethod is token).').optional(),
  kubernetesRole: z.string().min(1).max(253).regex(re('^[a-zA-Z0-9_.-]+$')).optional().describe('Vault role for the Kubernetes auth method (required when authMethod is kubernetes).'),
  kubernetesMountPath: z.string().min(1).max(253).regex(re('^[a-zA-Z0-9_.-]+(/[a-zA-Z0-9_.-]+)*$')).default('kubernetes').describe('Mount path of the Kubernetes auth method.'),
  databaseMountPath: z.string().min(1).max(253).regex(re('^[a-zA-Z0-9_.-]+(/[a-zA-Z0-9_.-]+)*$')).default('database').describe('Mount path of the database secrets engine used for dynamic credentials.'),
  caSecretRef: secretKeyRef('ca.crt', 'Secret with the CA certificate (PEM) that signed the Vault server certificate.').optional(),
}).strict(), [
  {
    rule: "self.authMethod != 'token' || has(self.tokenSecretRef)",
    message: 'vault.tokenSecretRef is required when vault.authMethod is token',
    fieldPath: '.tokenSecretRef',
    reason: 'FieldValueRequired',
    check: (v) => v.authMethod !== 'token' || v.tokenSecretRef !== undefined,
  },
  {
    rule: "self.authMethod != 'kubernetes' || has(self.kubernetesRole)",
    message: 'vault.kubernetesRole is required when vault.authMethod is kubernetes',
    fieldPath: '.kubernetesRole',
    reason: 'FieldValueRequired',
    check: (v) => v.authMethod !== 'kubernetes' || v.kubernetesRole !== undefined,
  },
]).describe('Vault or OpenBao, source of dynamic database credentials. Without it, DatabaseClaims can only use Static mode.');

const identity = withCel(z.object({
  kind: z.enum(['keycloak', 'oidc-dcr']).describe('keycloak: clients are managed through the Keycloak admin API; oidc-dcr: any OpenID provider with Dynamic Client Registration (RFC 7591/7592).'),
  issuerUrl: z.string().max(2048).regex(re(SECURE_URI_PATTERN), 'must be an https URL (http only for localhost or 127.0.0.1)')
    .describe('OpenID issuer URL; https, or http only for localhost/127.0.0.1. For Keycloak: https://host/realms/<realm>.'),
  realm: z.string().min(1).max(255).regex(re('^[a-zA-Z0-9_-]+$')).optional().describe('Keycloak realm (required when kind is keycloak).'),
  adminCredentialsSecretRef: credentialsSecretRef('Keycloak admin user allowed to manage clients of the realm (required when kind is keycloak).').optional(),
  initialAccessTokenSecretRef: secretKeyRef('token', 'Initial access token for Dynamic Client Registration (oidc-dcr), if the provider requires one.').optional(),
  defaultScopes: scopeList('Scopes every client gets unless it says otherwise.', 'identity.defaultScopes').default(['openid', 'email', 'profile'])
    .describe('Scopes every client gets unless it says otherwise (default openid, email, profile).'),
}).strict(), [
  {
    rule: "self.kind != 'keycloak' || has(self.realm)",
    message: 'identity.realm is required when identity.kind is keycloak',
    fieldPath: '.realm',
    reason: 'FieldValueRequired',
    check: (v) => v.kind !== 'keycloak' || v.realm !== undefined,
  },
  {
    rule: "self.kind != 'keycloak' || has(self.adminCredentialsSecretRef)",
    message: 'identity.adminCredentialsSecretRef is required when identity.kind is keycloak',
    fieldPath: '.adminCredentialsSecretRef',
    reason: 'FieldValueRequired',
    check: (v) => v.kind !== 'keycloak' || v.adminCredentialsSecretRef !== undefined,
  },
]).describe('The OpenID provider all family members log in with.');

const authService = withCel(z.object({
  url: z.string().max(2048).regex(re('^https?://[^\\s/?#]+$'), 'must be an http(s) URL without a path, e.g. http://familyhub-auth.familyhub-system.svc:8080')
    .optional().describe('Base URL the gateway calls for forward-auth (default: derived from serviceRef as cluster DNS).'),
  serviceRef: z.object({
    name: dnsLabel('Service of the auth service.'),
    namespace: dnsLabel('Namespace of that Service.'),
    port: port('Port of that Service.'),
  }).strict().optional().describe('The auth service as a Kubernetes Service (needed by Envoy Gateway extAuth).'),
  hostname: hostname('Public host of the login pages (default auth.<domain>); reserved for the auth service.').optional(),
}).strict(), [
  {
    rule: 'has(self.url) || has(self.serviceRef)',
    message: 'gateway.authService needs url or serviceRef',
    check: (a) => a.url !== undefined || a.serviceRef !== undefined,
  },
]).describe('The platform\'s auth service that checks logins for Routes (forward-auth / ext_authz).');

const gateway = z.object({
  gatewayName: dnsSubdomain('Gateway API Gateway that Routes attach to.'),
  gatewayNamespace: dnsLabel('Namespace of that Gateway.'),
  gatewayClassName: dnsSubdomain('GatewayClass, for information and for creating the Gateway when missing.').optional(),
  provider: z.enum(['traefik', 'envoy-gateway']).optional()
    .describe('Gateway implementation whose policy objects Routes get; default: from the GatewayClass controllerName.'),
  listeners: z.object({
    httpPort: port('Port of the plain-HTTP listener of a created Gateway (redirects to HTTPS).').default(80),
    httpsPort: port('Port of the HTTPS listener; also used in Route URLs when not 443.').default(443),
    certificateSecretName: dnsSubdomain('TLS Secret (in the Gateway namespace) of a created Gateway, for the domain and its subdomains (default <gatewayName>-tls).').optional(),
  }).strict().default({}).describe('Listeners of the Gateway the operator creates when it is missing.'),
  audience: z.string().min(1).max(256).default('familyhub').describe('Audience access tokens for the platform carry (default familyhub).'),
  authService: authService.optional(),
  envoyGateway: z.object({
    authMode: z.enum(['jwt', 'extAuth']).default('jwt')
      .describe('jwt: Envoy validates tokens itself (API clients); extAuth: Envoy asks the auth service (browser login, e-mail domain checks).'),
  }).strict().default({}).describe('Settings used only with the envoy-gateway provider.'),
}).strict().describe('Gateway API Gateway the platform publishes Routes on.');

const runtimeService = (what: string) =>
  z.object({
    enabled: z.boolean().default(false).describe(`Run the ${what} service.`),
    replicas: z.number().int().min(0).max(20).default(1).describe(`Replicas of the ${what} service.`),
  }).strict().default({}).describe(`The ${what} service.`);

const runtime = z.object({
  image: z.string().min(1).max(1024).regex(re('^[^\\s]+$'), 'must be an image reference without whitespace').describe('Container image of the FamilyHub runtime services.'),
  services: z.object({
    chat: runtimeService('chat'),
    media: runtimeService('media'),
    gaming: runtimeService('gaming'),
    audit: runtimeService('audit'),
    auth: runtimeService('auth (login pages and the gateway\'s forward-auth)'),
  }).strict().default({}).describe('Which runtime services run, and how many of each.'),
}).strict().describe('The platform\'s own services (chat, media, gaming, audit, auth), each run as a Service owned by the FamilyHub.');

export const familyHubSpecSchema = z.object({
  domain: hostname('Base DNS domain of the platform, e.g. family.example.org.'),
  allowedEmailDomains: asSet(
    z.array(hostname('An e-mail domain, e.g. example.org.')).min(1).max(32),
    'allowedEmailDomains',
  ).describe('Only accounts whose e-mail address is in one of these domains may log in.'),
  postgres,
  redis: redis.optional(),
  vault: vault.optional(),
  identity,
  gateway: gateway.optional(),
  runtime,
}).strict().describe('Desired state of the platform.');

export const familyHubStatusSchema = statusBase.extend({
  domain: z.string().optional().describe('Domain the platform was last reconciled for.'),
  services: z.array(z.string().describe('Name of an enabled runtime service.')).max(16).optional().describe('Runtime services that are enabled.'),
  endpoints: z.record(z.string().describe('URL.')).optional().describe('Public URLs of the platform by name (issuer, chat, media, ...).'),
}).describe('Observed state of the platform.');

export type FamilyHubSpec = z.infer<typeof familyHubSpecSchema>;
export type FamilyHubSpecInput = z.input<typeof familyHubSpecSchema>;
export type FamilyHubStatus = z.infer<typeof familyHubStatusSchema>;
