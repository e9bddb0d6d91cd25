// Drives an authorization code + PKCE login against the dev IdP the way a
// browser would (redirects and cookies), then redeems the code with
// openid-client. The IdP's interaction handler completes the login step from
// `login_hint`, so no HTML needs to be parsed.
import * as client from 'openid-client';
import type { LoginOptions } from './provider.js';

export interface LoginResult {
  accessToken: string;
  idToken?: string;
  refreshToken?: string;
  claims?: Record<string, unknown>;
}

export async function authorizationCodeLogin(issuer: string, o: LoginOptions): Promise<LoginResult> {
  const config = await client.discovery(
    new URL(issuer),
    o.clientId,
    o.clientSecret,
    o.clientSecret ? client.ClientSecretBasic(o.clientSecret) : client.None(),
    { execute: [client.allowInsecureRequests] },
  );
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const params: Record<string, string> = {
    redirect_uri: o.redirectUri,
    scope: o.scope ?? 'openid email profile groups',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    login_hint: o.accountId,
  };
  if (o.resource) params.resource = o.resource;
  const callback = await followUntil(client.buildAuthorizationUrl(config, params), o.redirectUri);
  const tokens = await client.authorizationCodeGrant(
    config,
    callback,
    { pkceCodeVerifier: verifier, expectedState: state },
    o.resource ? { resource: o.resource } : undefined,
  );
  return {
    accessToken: tokens.access_token,
    idToken: tokens.id_token,
    refreshToken: tokens.refresh_token,
    claims: tokens.claims() as Record<string, unknown> | undefined,
  };
}

/** Follows redirects with a cookie jar until one points at `target`. */
async function followUntil(start: URL, target: string): Promise<URL> {
  const jar = new Map<string, string>();
  let url = start;
  for (let hop = 0; hop < 10; hop++) {
    const res = await fetch(url, {
      redirect: 'manual',
      headers: jar.size ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } : {},
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      jar.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1).trim());
    }
    const location = res.headers.get('location');
    if (!location) {
      const body = (await res.text()).slice(0, 300);
      throw new Error(`scripted login stopped at ${url.pathname} with HTTP ${res.status}: ${body}`);
    }
    await res.body?.cancel();
    const next = new URL(location, url);
    if (next.href.startsWith(target)) {
      const err = next.searchParams.get('error');
      if (err) throw new Error(`login refused: ${err} ${next.searchParams.get('error_description') ?? ''}`);
      return next;
    }
    url = next;
  }
  throw new Error('scripted login: too many redirects');
}
