// DatabaseClaim: "give my app its own schema on the family's PostgreSQL,
// with credentials in a Secret". One schema per claim, owned by a role the
// app never logs in as; the app gets short-lived login roles (Vault dynamic)
// or a rotated static one.
import { z } from 'zod';
import { deletionPolicy, dnsSubdomain, duration, familyHubRef, pgExtensions, re, statusBase } from './common.js';
import { DURATION_PATTERN, parseDuration } from './duration.js';
import { asSet, celRegex, withCel } from './k8s-extensions.js';

const CEL_DURATION = celRegex(DURATION_PATTERN);

/** Unquoted PostgreSQL identifier; anything else (quotes, semicolons, spaces) cannot reach SQL. */
export const SCHEMA_NAME_PATTERN = '^[a-z_][a-z0-9_]{0,62}$';

export const credentialsModes = ['VaultDynamic', 'VaultAgent', 'Static'] as const;

const credentials = withCel(z.object({
  mode: z.enum(credentialsModes).default('VaultDynamic')
    .describe('VaultDynamic: the operator leases short-lived roles from Vault and writes them to the Secret; VaultAgent: the operator only configures the Vault role and the pod fetches credentials itself; Static: one role whose password the operator rotates.'),
  defaultTtl: withCel(duration('Lifetime of issued credentials (Go duration, at least 10s).'), [
    {
      rule: `!self.matches(${CEL_DURATION}) || duration(self) >= duration('10s')`,
      message: 'credentials.defaultTtl must be at least 10s (shorter leases would be renewed and rotated continuously)',
      check: (v) => parseDuration(v) >= 10_000,
    },
  ]).default('1h'),
  maxTtl: duration('Upper bound for renewals of one lease (Go duration); must be >= defaultTtl.').default('24h'),
  rotationGracePeriod: duration('How long superseded credentials stay valid after rotation so running connections can drain.').default('5m'),
  rotateGeneration: z.number().int().min(0).default(0).describe('Bump to force an immediate rotation (all modes; the only way to rotate Static credentials on demand).'),
}).strict(), [
  {
    // Malformed durations already fail their own pattern; the guard keeps
    // this rule from adding a confusing conversion error on top.
    rule: `!self.maxTtl.matches(${CEL_DURATION}) || !self.defaultTtl.matches(${CEL_DURATION}) || duration(self.maxTtl) >= duration(self.defaultTtl)`,
    message: 'credentials.maxTtl must be greater than or equal to credentials.defaultTtl',
    fieldPath: '.maxTtl',
    check: (c) => parseDuration(c.maxTtl) >= parseDuration(c.defaultTtl),
  },
]).default({}).describe('How credentials are issued and rotated.');

export const databaseClaimSpecSchema = withCel(z.object({
  familyHubRef: withCel(familyHubRef(), [
    { rule: 'self == oldSelf', message: 'familyHubRef is immutable: the schema lives on that FamilyHub\'s server; create a new claim instead' },
  ]),
  schemaName: withCel(z.string().max(63).regex(re(SCHEMA_NAME_PATTERN), 'schemaName must be a lowercase PostgreSQL identifier (a-z, 0-9, _; at most 63 characters)'), [
    {
      // The same names the reconciler refuses (src/postgres/identifiers.ts), refused at admission.
      rule: "!self.startsWith('pg_') && !(self in ['public', 'information_schema'])",
      message: 'schemaName must not be a system schema (public, information_schema, pg_*)',
      check: (v) => !v.startsWith('pg_') && v !== 'public' && v !== 'information_schema',
    },
    {
      // Derived schema names start with fh_: an explicit one there could take another claim's schema.
      rule: "!self.startsWith('fh_')",
      message: 'schemaName must not start with "fh_" (reserved for the names the operator derives for other claims)',
      check: (v) => !v.startsWith('fh_'),
    },
  ]).optional()
    .describe('Schema to create; defaults to one derived from namespace and name. Not a system schema, not starting with "fh_". Immutable once the claim exists.'),
  credentials,
  secretName: dnsSubdomain('Secret the credentials are written to (default "<name>-db").').optional(),
  extensions: asSet(pgExtensions('Extensions to install in the schema; each must be in the FamilyHub\'s postgres.allowedExtensions.'), 'extensions').default([])
    .describe('Extensions to install in the schema; each must be in the FamilyHub\'s postgres.allowedExtensions (default none).'),
  deletionPolicy: deletionPolicy('Retain', 'the schema and its data'),
}).strict(), [
  {
    rule: 'has(self.schemaName) == has(oldSelf.schemaName) && (!has(self.schemaName) || self.schemaName == oldSelf.schemaName)',
    message: 'schemaName is immutable: it cannot be added, changed or removed after the claim is created',
    fieldPath: '.schemaName',
    reason: 'FieldValueForbidden',
  },
]).describe('Desired database schema and credentials.');

export const databaseClaimStatusSchema = statusBase.extend({
  schema: z.string().optional().describe('Schema created for this claim.'),
  database: z.string().optional().describe('Database the schema lives in.'),
  ownerRole: z.string().optional().describe('Role owning the schema (NOLOGIN); login roles are granted into it.'),
  secretName: z.string().optional().describe('Secret holding the current credentials.'),
  credentialsMode: z.enum(credentialsModes).optional().describe('Mode the current credentials were issued with.'),
  leaseExpiresAt: z.string().datetime().optional().describe('When the current credentials expire unless renewed.'),
  lastRotatedAt: z.string().datetime().optional().describe('When credentials were last issued or rotated.'),
  observedRotateGeneration: z.number().int().min(0).optional().describe('spec.credentials.rotateGeneration the current credentials were issued for.'),
  extensions: z.array(z.string().describe('Extension name.')).max(32).optional().describe('Extensions installed in the schema.'),
}).describe('Observed state of the schema and credentials.');

export type DatabaseClaimSpec = z.infer<typeof databaseClaimSpecSchema>;
export type DatabaseClaimSpecInput = z.input<typeof databaseClaimSpecSchema>;
export type DatabaseClaimStatus = z.infer<typeof databaseClaimStatusSchema>;
export type CredentialsMode = (typeof credentialsModes)[number];
