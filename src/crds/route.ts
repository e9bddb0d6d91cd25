// Route: publish a backend Service on a hostname through the family's
// gateway, behind login by default. Modelled on Gateway API HTTPRoute plus an
// Envoy Gateway SecurityPolicy, folded into the few knobs a family needs.
import { z } from 'zod';
import { dnsLabel, familyHubRef, hostname, port, re, statusBase } from './common.js';
import { asSet, withCel } from './k8s-extensions.js';

export const PATH_PREFIX_PATTERN = '^/[A-Za-z0-9._~!$&\'()*+,;=:@%/-]*$';

export const rateLimitSchema = z.object({
  requests: z.number().int().min(1).max(1_000_000).describe('Requests allowed per unit of time, per client.'),
  unit: z.enum(['Second', 'Minute', 'Hour']).describe('Time unit of the limit.'),
}).strict().describe('Per-client request rate limit; omit for none.');

const groupList = (description: string, field: string) =>
  asSet(z.array(z.string().min(1).max(256).describe('A name as it appears in the token.')).max(32), field).default([]).describe(description);

const auth = withCel(z.object({
  required: z.boolean().default(true).describe('Require a logged-in family member (default true). Set false only for truly public content.'),
  audiences: groupList('Accepted access-token audiences besides the platform\'s own (default none).', 'auth.audiences'),
  requiredGroups: groupList('The user must be in at least one of these groups (default: any family member).', 'auth.requiredGroups'),
}).strict(), [
  {
    rule: 'self.required || (size(self.audiences) == 0 && size(self.requiredGroups) == 0)',
    message: 'auth.audiences and auth.requiredGroups need auth.required to be true',
    check: (a) => a.required || (a.audiences.length === 0 && a.requiredGroups.length === 0),
  },
]).default({}).describe('Who may reach the backend.');

export const routeSpecSchema = z.object({
  familyHubRef: familyHubRef(),
  hostname: hostname('Public host name, e.g. photos.family.example.org.'),
  pathPrefix: withCel(z.string().max(1024).regex(re(PATH_PREFIX_PATTERN), 'pathPrefix must start with "/" and contain only URL path characters'), [
    {
      // Gateway API's own path rules: gateways refuse such a prefix, or would
      // normalise it to a different path than the one that was routed.
      rule: "!self.contains('//') && !self.contains('/./') && !self.contains('/../') && !self.endsWith('/.') && !self.endsWith('/..') && !self.contains('%2f') && !self.contains('%2F')",
      message: 'pathPrefix must not contain "//", "." or ".." segments, or an encoded "/" (%2F)',
      check: (p) => !p.includes('//') && !p.includes('/./') && !p.includes('/../') && !p.endsWith('/.') && !p.endsWith('/..') && !p.toLowerCase().includes('%2f'),
    },
  ]).default('/')
    .describe('Only requests under this path are routed (default "/").'),
  backendRef: z.object({
    name: dnsLabel('Kubernetes Service in the namespace of this Route.'),
    port: port('Port of that Service.'),
  }).strict().describe('Where requests go.'),
  auth,
  rateLimit: rateLimitSchema.optional(),
}).strict().describe('Desired route.');

export const routeStatusSchema = statusBase.extend({
  hostname: z.string().optional().describe('Host name the route is served on.'),
  url: z.string().optional().describe('Public URL of the route.'),
}).describe('Observed state of the route.');

export type RouteSpec = z.infer<typeof routeSpecSchema>;
export type RouteSpecInput = z.input<typeof routeSpecSchema>;
export type RouteStatus = z.infer<typeof routeStatusSchema>;
export type RateLimit = z.infer<typeof rateLimitSchema>;
