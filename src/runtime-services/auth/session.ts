// The SSO session as a cookie for the hub's domain: an encrypted and
// authenticated JWT (JWE, dir + A256GCM), so any replica can read it and no
// session store is needed. It vouches for the identity for a short time
// (`exp`), carries the refresh token to renew that, and has an absolute end
// (`sx`). The login flow's PKCE verifier, state and nonce travel the same way
// in a second, short-lived cookie on the auth host only.
import { createHash } from 'node:crypto';
import { EncryptJWT, jwtDecrypt, errors as joseErrors } from 'jose';

export const SESSION_COOKIE = 'familyhub_session';
export const FLOW_COOKIE = 'familyhub_login';

export interface Session {
  sub: string;
  email: string;
  roles: string[];
  /** Identity vouched for until (ms since epoch). */
  exp: number;
  /** Absolute end of the session (ms since epoch). */
  sx: number;
  rt?: string;
  /** ID token, kept for the IdP's end-session request. */
  idt?: string;
}

export interface LoginFlow {
  verifier: string;
  state: string;
  nonce: string;
  rd: string;
}

export function cookieKey(secret: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`familyhub-auth-cookie:${secret}`).digest());
}

async function seal(payload: Record<string, unknown>, key: Uint8Array, purpose: string, expSec: number): Promise<string> {
  return new EncryptJWT(payload)
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', typ: purpose })
    .setIssuedAt()
    .setExpirationTime(expSec)
    .encrypt(key);
}

async function open(token: string, key: Uint8Array, purpose: string): Promise<Record<string, unknown> | undefined> {
  try {
    // The cookie's own exp is its absolute end; identity freshness is checked by the caller.
    const { payload, protectedHeader } = await jwtDecrypt(token, key);
    return protectedHeader.typ === purpose ? (payload as Record<string, unknown>) : undefined;
  } catch (err) {
    if (err instanceof joseErrors.JOSEError || err instanceof TypeError) return undefined;
    throw err;
  }
}

export async function sealSession(s: Session, key: Uint8Array): Promise<string> {
  const { exp, ...rest } = s;
  // JWT exp (seconds) is the absolute end; the identity deadline travels as `ie`.
  return seal({ ...rest, ie: exp }, key, 'session', Math.floor(s.sx / 1000));
}

/** undefined when the cookie is absent, tampered with, or past its absolute end. */
export async function openSession(token: string | undefined, key: Uint8Array): Promise<Session | undefined> {
  if (!token) return undefined;
  const p = await open(token, key, 'session');
  if (!p || typeof p.sub !== 'string' || typeof p.email !== 'string' || typeof p.sx !== 'number' || typeof p.exp !== 'number') return undefined;
  return {
    sub: p.sub,
    email: p.email,
    roles: Array.isArray(p.roles) ? p.roles.filter((r): r is string => typeof r === 'string') : [],
    exp: typeof p.ie === 'number' ? p.ie : 0,
    sx: p.sx,
    rt: typeof p.rt === 'string' ? p.rt : undefined,
    idt: typeof p.idt === 'string' ? p.idt : undefined,
  };
}

export async function sealFlow(f: LoginFlow, key: Uint8Array, ttlSec: number): Promise<string> {
  return seal({ ...f }, key, 'login', Math.floor(Date.now() / 1000) + ttlSec);
}

export async function openFlow(token: string | undefined, key: Uint8Array): Promise<LoginFlow | undefined> {
  if (!token) return undefined;
  const p = await open(token, key, 'login');
  if (!p || typeof p.verifier !== 'string' || typeof p.state !== 'string' || typeof p.nonce !== 'string' || typeof p.rd !== 'string') return undefined;
  return { verifier: p.verifier, state: p.state, nonce: p.nonce, rd: p.rd };
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

export function setCookie(name: string, value: string, o: { domain?: string; path: string; maxAgeSec: number }): string {
  return [
    `${name}=${value}`,
    ...(o.domain ? [`Domain=.${o.domain}`] : []),
    `Path=${o.path}`,
    `Max-Age=${Math.max(0, Math.floor(o.maxAgeSec))}`,
    'Secure',
    'HttpOnly',
    'SameSite=Lax',
  ].join('; ');
}
