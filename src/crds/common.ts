// Building blocks shared by the five kinds. Field names follow what people
// know from Kubernetes itself (secretKeyRef, *SecretRef) and from the
// operators the platform replaces by hand today.
import { z } from 'zod';
import { DURATION_PATTERN } from './duration.js';
import { asMap, asSet, celRegex } from './k8s-extensions.js';

/** RFC 1123 label: Kubernetes object names of Services, Secrets' keys aside. */
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** RFC 1123 subdomain: Secret names, hostnames. */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** Keys inside a Secret's data map. */
export const SECRET_KEY_PATTERN = '^[-._a-zA-Z0-9]+$';
/** PostgreSQL extension names as they appear in pg_available_extensions (e.g. pgcrypto, uuid-ossp). */
export const PG_EXTENSION_PATTERN = '^[a-z][a-z0-9_-]{0,62}$';

export const re = (pattern: string) => new RegExp(pattern);

export const dnsLabel = (description: string) =>
  z.string().min(1).max(63).regex(re(DNS_LABEL_PATTERN), 'must be a lowercase RFC 1123 label (a-z, 0-9, "-")').describe(description);

export const dnsSubdomain = (description: string) =>
  z.string().min(1).max(253).regex(re(DNS_SUBDOMAIN_PATTERN), 'must be a lowercase RFC 1123 DNS name').describe(description);

/**
 * A fully qualified host name: at least two labels of at most 63 characters,
 * no wildcard, no trailing dot, and a last label that starts with a letter —
 * so an IP address (10.0.0.1) is never taken for a name.
 */
export const HOSTNAME_PATTERN = '^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$';
export const hostname = (description: string) =>
  z.string().min(3).max(253).regex(re(HOSTNAME_PATTERN), 'must be a lowercase DNS name (not an IP address) with at least two labels, e.g. chat.example.org').describe(description);

/** A host to connect to: DNS name or IPv4 address (in-cluster Service names included). */
export const connectHost = (description: string) =>
  z.string().min(1).max(253).regex(re('^([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'), 'must be a DNS name or IPv4 address').describe(description);

export const port = (description: string) => z.number().int().min(1).max(65535).describe(description);

export const duration = (description: string) =>
  z.string().max(32).regex(re(DURATION_PATTERN), 'must be a Go duration such as "30s", "15m", "1h"').describe(description);

export const pgExtensions = (description: string) =>
  z.array(z.string().max(63).regex(re(PG_EXTENSION_PATTERN), 'must be a PostgreSQL extension name').describe('PostgreSQL extension name, e.g. pgcrypto or uuid-ossp.'))
    .max(32)
    .describe(description);

/** One key of a Secret in the same namespace as the referring object. */
export const secretKeyRef = (defaultKey: string, description: string) =>
  z.object({
    name: dnsSubdomain('Name of the Secret, in the namespace of this object.'),
    key: z.string().min(1).max(253).regex(re(SECRET_KEY_PATTERN)).default(defaultKey).describe(`Key inside the Secret's data (default "${defaultKey}").`),
  }).strict().describe(description);

/** A Secret holding a username/password pair. */
export const credentialsSecretRef = (description: string) =>
  z.object({
    name: dnsSubdomain('Name of the Secret, in the namespace of this object.'),
    usernameKey: z.string().min(1).max(253).regex(re(SECRET_KEY_PATTERN)).default('username').describe('Key holding the user name (default "username").'),
    passwordKey: z.string().min(1).max(253).regex(re(SECRET_KEY_PATTERN)).default('password').describe('Key holding the password (default "password").'),
  }).strict().describe(description);

export const familyHubRef = () =>
  z.object({
    name: dnsSubdomain('Name of the FamilyHub this object belongs to.'),
    namespace: dnsLabel('Namespace of the FamilyHub; defaults to the namespace of this object.').optional(),
  }).strict().describe('The FamilyHub (platform instance) that provides the database server, Vault and identity provider.');

export const deletionPolicy = (defaultPolicy: 'Retain' | 'Delete', what: string) =>
  z.enum(['Retain', 'Delete']).default(defaultPolicy).describe(`What happens to ${what} when this object is deleted: Delete removes it, Retain leaves it in place (default ${defaultPolicy}).`);

export const conditionSchema = z.object({
  type: z.string().min(1).max(316).describe('Condition type, e.g. Ready, Reconciling, Degraded.'),
  status: z.enum(['True', 'False', 'Unknown']).describe('True, False or Unknown.'),
  reason: z.string().max(1024).describe('Machine-readable CamelCase reason for the last transition.'),
  message: z.string().max(32768).describe('Human-readable explanation; never contains secrets.'),
  observedGeneration: z.number().int().min(0).optional().describe('metadata.generation this condition was computed from.'),
  lastTransitionTime: z.string().datetime().optional().describe('When status last changed.'),
}).describe('A kstatus-compatible condition.');

export type FamilyHubCondition = z.infer<typeof conditionSchema>;

/** Fields every status carries; kinds extend it with their own facts. */
export const statusBase = z.object({
  observedGeneration: z.number().int().min(0).optional().describe('metadata.generation the controller last acted on.'),
  conditions: asMap(z.array(conditionSchema).max(32), 'conditions', ['type']).optional().describe('Current state: Ready, Reconciling, Degraded and kind-specific conditions.'),
});

/**
 * https on any host, plain http only on loopback (local development); no
 * fragment, no whitespace, no userinfo. One regex, so the TypeScript check
 * and CEL's matches() (RE2) agree exactly.
 */
export const SECURE_URI_PATTERN =
  '^(https://[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|http://(localhost|127\\.0\\.0\\.1))(:[0-9]{1,5})?([/?][^\\s#]*)?$';

/** Same rule for origins (scheme://host[:port], nothing after). */
export const SECURE_ORIGIN_PATTERN =
  '^(https://[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|http://(localhost|127\\.0\\.0\\.1))(:[0-9]{1,5})?$';

/** CEL: every string of the list bound to `self` matches `pattern`. */
export const celAllMatch = (pattern: string) => `self.all(u, u.matches(${celRegex(pattern)}))`;

/** RFC 6749 scope tokens, narrowed to characters that never need quoting anywhere. */
export const SCOPE_PATTERN = '^[a-zA-Z0-9_.:/-]{1,128}$';
export const scopeList = (description: string, field: string) =>
  asSet(z.array(z.string().regex(re(SCOPE_PATTERN), 'must be an OAuth scope token (letters, digits, _ . : / -)').describe('An OAuth 2.0 scope token.')).max(32), field).describe(description);

