// Settings of the auth service (parsed only when RUNTIME_SERVICES names auth).
import { hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { int } from '../config.js';

const hostname = z.string().regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lowercase DNS name such as family.example.org');

export const AuthSettingsSchema = z.object({
  /** The hub's domain: the session cookie is set for it and all its subdomains, and return URLs must be on it. */
  AUTH_DOMAIN: hostname,
  /** Public URL of the auth host itself (login callback, logout), e.g. https://auth.family.example.org */
  AUTH_PUBLIC_URL: z.string().url().refine((u) => new URL(u).protocol === 'https:', 'must be an https URL (the session cookie is Secure)'),
  /** The auth service's own OIDC client (the operator registers it as an OIDCClient); default OIDC_CLIENT_ID. */
  AUTH_CLIENT_ID: z.string().min(1).optional(),
  AUTH_CLIENT_SECRET: z.string().min(1).optional(),
  /**
   * Set by the operator's Service: the client id as plain env, the client
   * secret as a file of the mounted OIDCClient Secret (never an env value).
   */
  OIDC_CLIENT_ID: z.string().min(1).optional(),
  OIDC_CLIENT_SECRET_FILE: z.string().min(1).optional(),
  AUTH_SCOPES: z.string().min(1).default('openid email profile groups'),
  /**
   * Key material for the session cookie (encrypted and authenticated); at
   * least 32 characters. Default: derived (HKDF) from the client secret in
   * OIDC_CLIENT_SECRET_FILE, so every replica agrees without another Secret;
   * a new client secret then also ends every session.
   */
  AUTH_COOKIE_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  /** How long a session vouches for an identity before it is refreshed at the IdP. */
  AUTH_SESSION_TTL_SEC: int(900, 10).pipe(z.number().max(86_400)),
  /**
   * PEM certificate and key of a second listener that answers only the
   * gateway's checks (/auth/verify, /auth/envoy/*) over TLS with HTTP/2.
   * Traefik's ForwardAuth client keeps at most two idle HTTP/1.1 connections
   * to the auth service, so under concurrency nearly every check opens a new
   * TCP connection; over HTTP/2 all checks share one connection.
   */
  AUTH_GATEWAY_TLS_CERT_FILE: z.string().min(1).optional(),
  AUTH_GATEWAY_TLS_KEY_FILE: z.string().min(1).optional(),
  AUTH_GATEWAY_TLS_PORT: int(8443, 1).pipe(z.number().max(65535)),
  /** Absolute session lifetime; after it the member logs in again. */
  AUTH_SESSION_MAX_AGE_SEC: int(43_200, 60).pipe(z.number().max(30 * 86_400)),
});

type ParsedAuthSettings = z.infer<typeof AuthSettingsSchema>;
export type AuthSettings = ParsedAuthSettings & { AUTH_CLIENT_ID: string; AUTH_COOKIE_SECRET: string };

/** Fills the client and cookie settings from their files; throws one line naming what is missing. */
export function resolveAuthSettings(s: ParsedAuthSettings): AuthSettings {
  const clientId = s.AUTH_CLIENT_ID ?? s.OIDC_CLIENT_ID;
  if (!clientId) throw new Error('invalid configuration: AUTH_CLIENT_ID is required but not set (nor OIDC_CLIENT_ID)');
  let secret = s.AUTH_CLIENT_SECRET;
  if (!secret && s.OIDC_CLIENT_SECRET_FILE) secret = readFileSync(s.OIDC_CLIENT_SECRET_FILE, 'utf8').trim() || undefined;
  let cookie = s.AUTH_COOKIE_SECRET;
  if (!cookie && secret && s.OIDC_CLIENT_SECRET_FILE) {
    cookie = Buffer.from(hkdfSync('sha256', secret, clientId, 'familyhub auth session cookie v1', 32)).toString('base64url');
  }
  if (!cookie) throw new Error('invalid configuration: AUTH_COOKIE_SECRET is required but not set (nor a client secret in OIDC_CLIENT_SECRET_FILE to derive it from)');
  return { ...s, AUTH_CLIENT_ID: clientId, AUTH_CLIENT_SECRET: secret, AUTH_COOKIE_SECRET: cookie };
}
