// The reference for bench:route part 2: the least a forward-auth server must
// do for Traefik's ForwardAuth — verify the bearer JWT (RS256 signature from
// the issuer's JWKS, iss, aud, exp, e-mail domain) and answer 200 with the
// identity headers or 401 — on bare node:http / node:http2, no framework, no
// metrics, no logging. It keeps a verified token for the same 5 s as the auth
// service, so both pay one RSA verification per token and TTL, and the
// comparison shows what the service adds on top of that work.
// Env: ISSUER, AUDIENCE, DOMAIN, HOST, PORT (HTTP/1.1) and, for the TLS +
// HTTP/2 listener, TLS_PORT, TLS_CERT_FILE, TLS_KEY_FILE.
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';

const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`forward-auth reference: ${k} is not set`);
  return v;
};
const ISSUER = env('ISSUER');
const AUDIENCE = env('AUDIENCE');
const DOMAIN = env('DOMAIN').toLowerCase();
const HOST = env('HOST');
const TTL_MS = 5000;

const keys = new Map<string, KeyObject>();
async function loadKeys(): Promise<void> {
  const discovery = await (await fetch(new URL('.well-known/openid-configuration', ISSUER.endsWith('/') ? ISSUER : `${ISSUER}/`))).json() as { jwks_uri: string };
  const jwks = await (await fetch(discovery.jwks_uri)).json() as { keys: (Record<string, string> & { kid?: string })[] };
  for (const k of jwks.keys) if (k.kty === 'RSA') keys.set(k.kid ?? '', createPublicKey({ key: k, format: 'jwk' }));
}

interface Identity { email: string; sub: string; groups: string; until: number }
const verified = new Map<string, Identity>();

function check(token: string): Identity | undefined {
  const hit = verified.get(token);
  const now = Date.now();
  if (hit && hit.until > now) return hit;
  const [h, p, s] = token.split('.');
  if (!h || !p || !s) return undefined;
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { alg?: string; kid?: string };
  const key = header.alg === 'RS256' ? keys.get(header.kid ?? '') : undefined;
  if (!key || !verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'))) return undefined;
  const c = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
  const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
  const email = typeof c.email === 'string' ? c.email.toLowerCase() : '';
  const exp = typeof c.exp === 'number' ? c.exp * 1000 : 0;
  if (c.iss !== ISSUER || !aud.includes(AUDIENCE) || exp <= now || !email.endsWith(`@${DOMAIN}`) || typeof c.sub !== 'string') return undefined;
  const groups = Array.isArray(c.groups) ? c.groups.join(',') : '';
  const id = { email, sub: c.sub, groups, until: Math.min(now + TTL_MS, exp) };
  if (verified.size > 10_000) verified.clear();
  verified.set(token, id);
  return id;
}

function answer(authorization: string | undefined, respond: (status: number, headers: Record<string, string>) => void): void {
  const m = authorization?.match(/^Bearer (\S+)$/i);
  let id: Identity | undefined;
  try {
    id = m ? check(m[1]!) : undefined;
  } catch {
    id = undefined;
  }
  if (!id) return respond(401, {});
  respond(200, { 'x-auth-request-email': id.email, 'x-auth-request-user': id.sub, 'x-auth-request-groups': id.groups });
}

await loadKeys();
const h1 = http.createServer((req, res) => answer(req.headers.authorization, (status, headers) => {
  res.writeHead(status, headers).end();
}));
h1.keepAliveTimeout = 60_000;
await new Promise<void>((r) => h1.listen(Number(env('PORT')), HOST, r));
if (process.env.TLS_PORT) {
  const h2 = http2.createSecureServer({ cert: readFileSync(env('TLS_CERT_FILE')), key: readFileSync(env('TLS_KEY_FILE')), allowHTTP1: true }, (req, res) => {
    answer(req.headers.authorization, (status, headers) => res.writeHead(status, headers).end());
  });
  await new Promise<void>((r) => h2.listen(Number(process.env.TLS_PORT), HOST, r));
}
process.stdout.write('ready\n');
