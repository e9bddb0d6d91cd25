// Verifies access tokens from the family IdP against its published JWKS.
// jose's remote key set caches keys and refetches when a token names an
// unknown `kid`, which is how rotated keys get picked up without a restart.
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { principalFromClaims } from './claims.js';
import { AuthError, type Principal } from './principal.js';

export interface JwtVerifierOptions {
  issuer: string;
  audience: string;
  algorithms: string[];
  clockToleranceSec: number;
  allowedDomains: string[];
  jwksCacheMaxAgeMs: number;
}

export interface TokenVerifier {
  verify(token: string): Promise<Principal>;
}

async function discoverJwksUri(issuer: string): Promise<URL> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`OIDC discovery at ${url} answered ${res.status}`);
  const doc = (await res.json()) as { issuer?: string; jwks_uri?: string };
  if (doc.issuer !== issuer) throw new Error(`OIDC discovery at ${url} names issuer ${doc.issuer}, expected ${issuer}`);
  if (!doc.jwks_uri) throw new Error(`OIDC discovery at ${url} has no jwks_uri`);
  return new URL(doc.jwks_uri);
}

export function createJwtVerifier(opts: JwtVerifierOptions): TokenVerifier {
  // Discovery is lazy so a service whose APIs are idle does not depend on the
  // IdP being up at start; a failed discovery is retried on the next request.
  let keySet: Promise<JWTVerifyGetKey> | undefined;
  const keys = () => {
    keySet ??= discoverJwksUri(opts.issuer).then((uri) =>
      createRemoteJWKSet(uri, { cacheMaxAge: opts.jwksCacheMaxAgeMs, cooldownDuration: 5000, timeoutDuration: 5000 }),
    );
    keySet.catch(() => {
      keySet = undefined;
    });
    return keySet;
  };

  return {
    async verify(token: string): Promise<Principal> {
      if (!token) throw new AuthError('unauthenticated', 'no access token');
      let getKey: JWTVerifyGetKey;
      try {
        getKey = await keys();
      } catch (err) {
        throw new AuthError('unauthenticated', `cannot load issuer keys: ${(err as Error).message}`);
      }
      try {
        const { payload } = await jwtVerify(token, getKey, {
          issuer: opts.issuer,
          audience: opts.audience,
          algorithms: opts.algorithms,
          clockTolerance: opts.clockToleranceSec,
          requiredClaims: ['exp', 'sub'],
        });
        return principalFromClaims(payload, opts.allowedDomains);
      } catch (err) {
        if (err instanceof AuthError) throw err;
        if (err instanceof joseErrors.JWTExpired) throw new AuthError('unauthenticated', 'token expired');
        if (err instanceof joseErrors.JWTClaimValidationFailed) {
          throw new AuthError('unauthenticated', `token claim ${err.claim} rejected: ${err.reason}`);
        }
        if (err instanceof joseErrors.JOSEError) throw new AuthError('unauthenticated', `token rejected: ${err.code}`);
        throw new AuthError('unauthenticated', `token rejected: ${(err as Error).message}`);
      }
    },
  };
}

export function bearerToken(header: string | undefined): string | undefined {
  const m = header?.match(/^Bearer\s+(\S+)$/i);
  return m?.[1];
}
