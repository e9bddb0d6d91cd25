// Settings of the auth service (parsed only when RUNTIME_SERVICES names auth).
import { z } from 'zod';
import { int } from '../config.js';

const hostname = z.string().regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lowercase DNS name such as family.example.org');

export const AuthSettingsSchema = z.object({
  /** The hub's domain: the session cookie is set for it and all its subdomains, and return URLs must be on it. */
  AUTH_DOMAIN: hostname,
  /** Public URL of the auth host itself (login callback, logout), e.g. https://auth.family.example.org */
  AUTH_PUBLIC_URL: z.string().url().refine((u) => new URL(u).protocol === 'https:', 'must be an https URL (the session cookie is Secure)'),
  /** The auth service's own OIDC client (the operator registers it as an OIDCClient). */
  AUTH_CLIENT_ID: z.string().min(1),
  AUTH_CLIENT_SECRET: z.string().min(1).optional(),
  AUTH_SCOPES: z.string().min(1).default('openid email profile groups'),
  /** Key material for the session cookie (encrypted and authenticated); at least 32 characters. */
  AUTH_COOKIE_SECRET: z.string().min(32, 'must be at least 32 characters'),
  /** How long a session vouches for an identity before it is refreshed at the IdP. */
  AUTH_SESSION_TTL_SEC: int(900, 10).pipe(z.number().max(86_400)),
  /** Absolute session lifetime; after it the member logs in again. */
  AUTH_SESSION_MAX_AGE_SEC: int(43_200, 60).pipe(z.number().max(30 * 86_400)),
});

export type AuthSettings = z.infer<typeof AuthSettingsSchema>;
