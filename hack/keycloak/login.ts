// Scripted browser login to Keycloak: authorization code + PKCE through the
// realm's real login form, then the code is redeemed with openid-client.
// Tests use it to prove a provisioned client works for a family member.
import * as client from 'openid-client';

export interface KeycloakLoginOptions {
  issuer: string;
  clientId: string;
  clientSecret?: string;
  redirectUri: string;
  username: string;
  password: string;
  scope?: string;
}

export async function keycloakLogin(o: KeycloakLoginOptions) {
  const config = await client.discovery(
    new URL(o.issuer),
    o.clientId,
    o.clientSecret,
    o.clientSecret ? client.ClientSecretPost(o.clientSecret) : client.None(),
    { execute: [client.allowInsecureRequests] },
  );
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const authUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: o.redirectUri,
    scope: o.scope ?? 'openid email',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  const jar = new Map<string, string>();
  const send = async (url: string, init: RequestInit = {}) => {
    const res = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers as Record<string, string>), cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const c of res.headers.getSetCookie()) {
      const pair = c.split(';')[0]!;
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return res;
  };
  const page = await send(authUrl.href);
  const html = await page.text();
  const action = /<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"/.exec(html)?.[1];
  if (!action) throw new Error(`keycloak login page has no login form (HTTP ${page.status}): ${html.slice(0, 200)}`);
  const posted = await send(action.replaceAll('&amp;', '&'), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: o.username, password: o.password, credentialId: '' }).toString(),
  });
  const location = posted.headers.get('location');
  if (!location?.startsWith(o.redirectUri)) {
    throw new Error(`keycloak login did not redirect to the client (HTTP ${posted.status}, location ${location ?? 'none'})`);
  }
  return client.authorizationCodeGrant(config, new URL(location), { pkceCodeVerifier: verifier, expectedState: state });
}

/** Client credentials grant; returns the raw token response or throws with the IdP's error. */
export async function clientCredentialsToken(issuer: string, clientId: string, clientSecret: string, scope?: string) {
  const config = await client.discovery(new URL(issuer), clientId, clientSecret, client.ClientSecretBasic(clientSecret), {
    execute: [client.allowInsecureRequests],
  });
  return client.clientCredentialsGrant(config, scope ? { scope } : undefined);
}
