// Development identity provider built on oidc-provider. It is a real OpenID
// Provider (discovery, JWKS, authorization code + PKCE, client credentials,
// RFC 7591/7592 dynamic registration) so tests and `npm run dev` exercise the
// same protocol paths a family's production IdP would. Logins are scripted:
// a `login_hint` naming a known account completes the login step without a
// form, which lets tests obtain real tokens through a real grant.
import http from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { exportJWK, generateKeyPair } from 'jose';
import { familyUsers, type DevUser } from './users.js';
import { handleInteraction } from './interaction.js';
import { authorizationCodeLogin, type LoginResult } from './scripted-login.js';

export interface Account {
  id: string;
  email: string;
  emailVerified: boolean;
  name: string;
  groups: string[];
  /** Lifetime of access tokens minted for this account. */
  accessTokenTtlSec?: number;
  password?: string;
}

export interface IssueAccessTokenOptions {
  email: string;
  emailVerified?: boolean;
  groups?: string[];
  /** The `aud` of the token: a service name or an absolute URI. */
  audience: string;
  expiresInSec?: number;
}

export interface LoginOptions {
  clientId: string;
  clientSecret?: string;
  redirectUri: string;
  /** Account id (see `users`) to log in as. */
  accountId: string;
  scope?: string;
  resource?: string;
}

export interface DevIdp {
  issuer: string;
  port: number;
  allowedDomain: string;
  users: DevUser[];
  /** Bearer token required by the registration endpoint (RFC 7591 §3). */
  initialAccessToken: string;
  /** A real JWT access token signed with the IdP's keys, obtained through an authorization code grant. */
  issueAccessToken(opts: IssueAccessTokenOptions): Promise<string>;
  /** Scripted authorization code + PKCE login for any client registered here. */
  login(opts: LoginOptions): Promise<LoginResult>;
  stop(): Promise<void>;
}

export interface DevIdpOptions {
  port?: number;
  host?: string;
  allowedDomain?: string;
  initialAccessToken?: string;
}

const AUDIENCE_URN = 'urn:familyhub:audience:';
const TOKEN_CLIENT_ID = 'familyhub-dev-tokens';
const TOKEN_CLIENT_REDIRECT = 'http://127.0.0.1/dev-idp/callback';
/** Resource-server scope every audience accepts; access tokens need at least one. */
export const RESOURCE_SCOPE = 'family';

export async function startDevIdp(opts: DevIdpOptions = {}): Promise<DevIdp> {
  const host = opts.host ?? '127.0.0.1';
  const allowedDomain = opts.allowedDomain ?? 'family.test';
  const initialAccessToken = opts.initialAccessToken ?? randomBytes(24).toString('base64url');
  const tokenClientSecret = randomBytes(24).toString('base64url');
  const users = familyUsers(allowedDomain);
  const accounts = new Map<string, Account>(users.map((u) => [u.id, { ...u }]));

  const server = http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://${host}:${port}`;

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'RS256', use: 'sig' };

  const provider = new Provider(issuer, buildConfiguration({
    accounts,
    signingKey,
    initialAccessToken,
    tokenClient: { client_id: TOKEN_CLIENT_ID, client_secret: tokenClientSecret, redirect_uris: [TOKEN_CLIENT_REDIRECT] },
  }));

  const providerHandler = provider.callback();
  server.on('request', (req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      handleInteraction(provider, accounts, req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(`interaction failed: ${err instanceof Error ? err.message : String(err)}`);
      });
      return;
    }
    providerHandler(req, res);
  });

  const login = (o: LoginOptions) => authorizationCodeLogin(issuer, o);

  return {
    issuer,
    port,
    allowedDomain,
    users,
    initialAccessToken,
    login,
    async issueAccessToken(o) {
      // A throwaway account per token keeps concurrent callers from seeing
      // each other's claims and lets any e-mail (including foreign domains)
      // be represented, which the domain-restriction tests need.
      const id = `token-${randomUUID()}`;
      accounts.set(id, {
        id,
        email: o.email,
        emailVerified: o.emailVerified ?? true,
        name: o.email,
        groups: o.groups ?? [],
        accessTokenTtlSec: o.expiresInSec,
      });
      try {
        const result = await login({
          clientId: TOKEN_CLIENT_ID,
          clientSecret: tokenClientSecret,
          redirectUri: TOKEN_CLIENT_REDIRECT,
          accountId: id,
          scope: `openid email profile groups ${RESOURCE_SCOPE}`,
          resource: o.audience.includes(':') ? o.audience : `${AUDIENCE_URN}${encodeURIComponent(o.audience)}`,
        });
        return result.accessToken;
      } finally {
        accounts.delete(id);
      }
    },
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

interface ConfigInput {
  accounts: Map<string, Account>;
  signingKey: Record<string, unknown>;
  initialAccessToken: string;
  tokenClient: { client_id: string; client_secret: string; redirect_uris: string[] };
}

// oidc-provider hands its hooks loosely typed context objects.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Ctx = any;

function accountIdOf(ctx: Ctx): string | undefined {
  return ctx?.oidc?.entities?.AuthorizationCode?.accountId ?? ctx?.oidc?.session?.accountId;
}

function buildConfiguration(input: ConfigInput): Record<string, unknown> {
  const { accounts } = input;
  return {
    clients: [{ ...input.tokenClient, grant_types: ['authorization_code'], response_types: ['code'] }],
    jwks: { keys: [input.signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    // Apps in the family read e-mail and groups straight from the ID token.
    conformIdTokenClaims: false,
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    async findAccount(_ctx: Ctx, id: string) {
      const acct = accounts.get(id);
      if (!acct) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: acct.email, email_verified: acct.emailVerified, name: acct.name, groups: acct.groups };
        },
      };
    },
    // Consent is implicit on a development IdP: grant whatever was asked.
    async loadExistingGrant(ctx: Ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        const existing = await ctx.oidc.provider.Grant.find(grantId);
        if (existing) return existing;
      }
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
      for (const [indicator, rs] of Object.entries(ctx.oidc.resourceServers as Record<string, { scope?: string }>)) {
        if (rs.scope) grant.addResourceScope(indicator, rs.scope);
      }
      await grant.save();
      return grant;
    },
    interactions: { url: (_ctx: Ctx, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    async extraTokenClaims(_ctx: Ctx, token: Ctx) {
      if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
      const acct = accounts.get(token.accountId);
      if (!acct) return undefined;
      return { email: acct.email, email_verified: acct.emailVerified, groups: acct.groups };
    },
    ttl: {
      Interaction: 600,
      Session: 86_400,
      Grant: 86_400,
      IdToken: 3600,
      AuthorizationCode: 60,
      AccessToken: (ctx: Ctx, token: Ctx) => accounts.get(token?.accountId ?? accountIdOf(ctx) ?? '')?.accessTokenTtlSec ?? 3600,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      registration: { enabled: true, initialAccessToken: input.initialAccessToken },
      registrationManagement: { enabled: true, rotateRegistrationAccessToken: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx: Ctx, _client: Ctx, oneOf?: string) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx: Ctx, indicator: string) => ({
          scope: RESOURCE_SCOPE,
          audience: indicator.startsWith(AUDIENCE_URN) ? decodeURIComponent(indicator.slice(AUDIENCE_URN.length)) : indicator,
          accessTokenFormat: 'jwt',
          accessTokenTTL: accounts.get(accountIdOf(ctx) ?? '')?.accessTokenTtlSec ?? 3600,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  };
}
