// Admin API access token for Keycloak, fetched from the admin realm and
// reused until shortly before it expires. Every reconcile of every client
// goes through here, so re-logging in per call would double the IdP load.
import { idpFetch } from '../http.js';

export type KeycloakAdminCredentials =
  | { kind: 'password'; username: string; password: string; clientId?: string }
  | { kind: 'client'; clientId: string; clientSecret: string };

export class KeycloakAdminSession {
  private token?: { value: string; expiresAt: number };
  private pending?: Promise<string>;

  constructor(
    private readonly baseUrl: string,
    private readonly adminRealm: string,
    private readonly creds: KeycloakAdminCredentials,
  ) {}

  async accessToken(): Promise<string> {
    if (this.token && Date.now() < this.token.expiresAt) return this.token.value;
    // Concurrent reconciles share one login instead of stampeding the IdP.
    this.pending ??= this.login().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  invalidate(): void {
    this.token = undefined;
  }

  private async login(): Promise<string> {
    const form: Record<string, string> =
      this.creds.kind === 'password'
        ? { grant_type: 'password', client_id: this.creds.clientId ?? 'admin-cli', username: this.creds.username, password: this.creds.password }
        : { grant_type: 'client_credentials', client_id: this.creds.clientId, client_secret: this.creds.clientSecret };
    const { body } = await idpFetch<{ access_token: string; expires_in: number }>(
      `keycloak admin login to realm ${this.adminRealm}`,
      `${this.baseUrl}/realms/${encodeURIComponent(this.adminRealm)}/protocol/openid-connect/token`,
      { method: 'POST', body: new URLSearchParams(form) },
    );
    const margin = Math.min(30, Math.floor(body.expires_in / 4));
    this.token = { value: body.access_token, expiresAt: Date.now() + (body.expires_in - margin) * 1000 };
    return body.access_token;
  }
}
