// Turns verified JWT claims into a Principal. Kept apart from signature
// checking so the domain and role rules can be unit-tested on plain objects.
import type { JWTPayload } from 'jose';
import { AuthError, type Principal } from './principal.js';

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

export function principalFromClaims(claims: JWTPayload, allowedDomains: string[]): Principal {
  const email = typeof claims.email === 'string' ? claims.email.trim().toLowerCase() : '';
  if (!email) throw new AuthError('forbidden', 'token carries no email claim');
  // Some IdPs send the flag as the string "true".
  const verified = claims.email_verified === true || claims.email_verified === 'true';
  if (!verified) throw new AuthError('forbidden', `email ${email} is not verified`);
  const domain = email.slice(email.lastIndexOf('@') + 1);
  if (!allowedDomains.map((d) => d.toLowerCase()).includes(domain)) {
    throw new AuthError('forbidden', `email domain ${domain} is not allowed`);
  }
  const realmAccess = claims.realm_access as { roles?: unknown } | undefined;
  const roles = [...new Set([...stringList(claims.groups), ...stringList(claims.roles), ...stringList(realmAccess?.roles)])]
    // Keycloak group paths start with "/".
    .map((r) => r.replace(/^\//, ''));
  if (typeof claims.sub !== 'string' || !claims.sub) throw new AuthError('unauthenticated', 'token has no subject');
  // exp is a required claim (checked by the verifier), so it is always a number here.
  return { subject: claims.sub, email, roles, expiresAt: Number(claims.exp) * 1000 };
}
