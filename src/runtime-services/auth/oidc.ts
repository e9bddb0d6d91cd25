// The auth service's view of the IdP, through openid-client: discovery once
// (retried while it fails), the authorization code + PKCE login, refresh and
// end-session URLs, and bearer-token checks against the issuer's JWKS with a
// route's extra audiences (the shared verifier knows only the platform's).
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import * as client from 'openid-client';
import { principalFromClaims } from '../base/jwt/claims.js';
import { AuthError, type Principal } from '../base/jwt/principal.js';
import type { BaseConfig } from '../config.js';
import type { AuthSettings } from './config.js';

/** Plain http only for an issuer on this machine (development IdPs), as the FamilyHub CRD allows. */
function loopback(url: URL): boolean {
  return url.hostname === '127.0.0.1' || url.hostname === 'localhost';
}

/** The IdP could not be asked (down, discovery failed): the caller must refuse, not allow. */
export class IdpUnavailable extends Error {}

/**
 * Why a login's callback failed, in words safe to log and to show (the IdP's
 * error code and description, openid-client's error name, code and message,
 * a network error's code): never the authorization code, a token or the
 * client secret, none of which these carry.
 */
export interface LoginFailure {
  status: number;
  error: string;
  message: string;
  log: Record<string, unknown>;
}

const NETWORK_CODES = /^(E[A-Z]+|UND_ERR_[A-Z_]+)$/;

export function loginFailure(err: unknown): LoginFailure {
  const e = err as Error & { code?: unknown; cause?: unknown; status?: unknown; error?: unknown; error_description?: unknown };
  const log: Record<string, unknown> = { errName: e?.name, errMessage: e?.message, ...(typeof e?.code === 'string' ? { errCode: e.code } : {}) };
  const described = (code: string, description: unknown) => `${code}${typeof description === 'string' && description ? ` (${description})` : ''}`;
  if (err instanceof IdpUnavailable) {
    return { status: 503, error: 'unavailable', message: 'the identity provider is not reachable; try again shortly', log };
  }
  if (err instanceof client.AuthorizationResponseError) {
    // The IdP sent the browser back with an error instead of a code (state and issuer already matched).
    Object.assign(log, { stage: 'authorization', idpError: err.error, idpErrorDescription: err.error_description });
    return { status: 400, error: 'login_refused', message: `the identity provider refused the login: ${described(err.error, err.error_description)}`, log };
  }
  if (err instanceof client.ResponseBodyError) {
    Object.assign(log, { stage: 'token', httpStatus: err.status, idpError: err.error, idpErrorDescription: err.error_description });
    return { status: 400, error: 'code_exchange_failed', message: `the identity provider refused to redeem the login: ${described(err.error, err.error_description)}; start again`, log };
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const p = err.cause[0]?.parameters ?? {};
    Object.assign(log, { stage: 'token', httpStatus: err.status, idpError: p.error, idpErrorDescription: p.error_description });
    return { status: 400, error: 'code_exchange_failed', message: `the identity provider refused to redeem the login: ${described(String(p.error ?? err.status), p.error_description)}; start again`, log };
  }
  const cause = e?.cause as { code?: unknown; message?: unknown } | undefined;
  const netCode = typeof cause?.code === 'string' && NETWORK_CODES.test(cause.code) ? cause.code : undefined;
  if (netCode || e?.name === 'TimeoutError' || e?.name === 'AbortError' || (err instanceof TypeError && /fetch failed/i.test(e.message))) {
    Object.assign(log, { stage: 'token', ...(netCode ? { causeCode: netCode } : {}), ...(typeof cause?.message === 'string' ? { causeMessage: cause.message } : {}) });
    return { status: 503, error: 'unavailable', message: 'the identity provider is not reachable; try again shortly', log };
  }
  // The response arrived but failed a check (state, issuer, ID token claims, PKCE, ...).
  Object.assign(log, { stage: 'verification' });
  return { status: 400, error: 'bad_request', message: `the login response could not be verified${typeof e?.code === 'string' ? ` (${e.code})` : ''}; start again`, log };
}

/** Verified tokens kept this long at most (and never past their exp). */
const VERIFIED_TTL_MS = 5000;
const VERIFIED_MAX = 10_000;

export class Oidc {
  private config: Promise<client.Configuration> | undefined;
  private keys: JWTVerifyGetKey | undefined;
  /**
   * The gateway asks again for every request with the same token; an RSA
   * verification costs ~0.2 ms here. Results live a few seconds, and all are
   * dropped when a token signed with a key not seen before verifies — the
   * JWKS was refetched then, and an older key may have left it.
   */
  private readonly verified = new Map<string, { principal: Principal; until: number }>();
  private readonly kids = new Set<string>();

  constructor(private readonly base: BaseConfig, private readonly settings: AuthSettings) {}

  configuration(): Promise<client.Configuration> {
    this.config ??= (async () => {
      const issuer = new URL(this.base.OIDC_ISSUER_URL);
      const s = this.settings;
      const auth = s.AUTH_CLIENT_SECRET ? client.ClientSecretBasic(s.AUTH_CLIENT_SECRET) : client.None();
      const cfg = await client.discovery(issuer, s.AUTH_CLIENT_ID, s.AUTH_CLIENT_SECRET, auth, {
        ...(loopback(issuer) ? { execute: [client.allowInsecureRequests] } : {}),
        timeout: 5,
      });
      const jwksUri = cfg.serverMetadata().jwks_uri;
      if (!jwksUri) throw new Error(`IdP ${issuer.href} publishes no jwks_uri`);
      this.keys = createRemoteJWKSet(new URL(jwksUri), { cacheMaxAge: this.base.OIDC_JWKS_CACHE_MAX_AGE_MS, cooldownDuration: 5000, timeoutDuration: 5000 });
      return cfg;
    })();
    this.config.catch(() => {
      this.config = undefined;
    });
    return this.config.catch((err: Error) => {
      throw new IdpUnavailable(`OIDC discovery of ${this.base.OIDC_ISSUER_URL} failed: ${err.message}`);
    });
  }

  /** A bearer access token: signature (JWKS), alg allowlist, iss, aud (platform's or the route's), exp/nbf, e-mail domain. */
  async verifyAccessToken(token: string, extraAudiences: string[]): Promise<Principal> {
    const key = extraAudiences.length ? `${extraAudiences.join(',')} ${token}` : token;
    const hit = this.verified.get(key);
    if (hit && hit.until > Date.now()) return hit.principal;
    if (hit) this.verified.delete(key);
    await this.configuration();
    try {
      const { payload, protectedHeader } = await jwtVerify(token, this.keys!, {
        issuer: this.base.OIDC_ISSUER_URL,
        audience: [this.base.OIDC_AUDIENCE, ...extraAudiences],
        algorithms: this.base.OIDC_ALLOWED_ALGS,
        clockTolerance: this.base.OIDC_CLOCK_TOLERANCE_SEC,
        requiredClaims: ['exp', 'sub'],
      });
      const principal = principalFromClaims(payload, this.base.AUTH_ALLOWED_EMAIL_DOMAINS);
      const kid = protectedHeader.kid ?? '';
      if (!this.kids.has(kid)) {
        if (this.kids.size) this.verified.clear();
        this.kids.add(kid);
      }
      if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(key, { principal, until: Math.min(Date.now() + VERIFIED_TTL_MS, principal.expiresAt) });
      return principal;
    } catch (err) {
      if (err instanceof AuthError) throw err;
      if (err instanceof joseErrors.JWKSTimeout || (err instanceof TypeError && /fetch/i.test(err.message))) {
        throw new IdpUnavailable(`cannot load the issuer's keys: ${err.message}`);
      }
      if (err instanceof joseErrors.JWTExpired) throw new AuthError('unauthenticated', 'token expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw new AuthError('unauthenticated', `token claim ${err.claim} rejected: ${err.reason}`);
      if (err instanceof joseErrors.JOSEError) throw new AuthError('unauthenticated', `token rejected: ${err.code}`);
      throw err;
    }
  }

  /** Identity from an ID token openid-client has validated (iss, aud, exp, nonce). */
  identity(claims: Record<string, unknown> | undefined): Principal {
    if (!claims) throw new AuthError('unauthenticated', 'the IdP returned no ID token');
    return principalFromClaims(claims, this.base.AUTH_ALLOWED_EMAIL_DOMAINS);
  }
}
