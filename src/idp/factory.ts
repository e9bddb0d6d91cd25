// Builds the adapter for a FamilyHub's identity settings. New IdP families
// (zitadel, authentik) register here with their own folder under src/idp.
import { DcrAdapter } from './dcr/adapter.js';
import { KeycloakAdapter } from './keycloak/adapter.js';
import type { KeycloakAdminCredentials } from './keycloak/admin-session.js';
import type { IdpAdapter, IdpKind } from './types.js';

export type IdpConnection =
  | { kind: 'keycloak'; issuerUrl: string; credentials: KeycloakAdminCredentials; adminRealm?: string }
  | { kind: 'oidc-dcr'; issuerUrl: string; initialAccessToken?: string };

type Builder<K extends IdpKind> = (c: Extract<IdpConnection, { kind: K }>) => IdpAdapter;

const builders: { [K in IdpKind]: Builder<K> } = {
  keycloak: (c) => new KeycloakAdapter({ issuerUrl: c.issuerUrl, credentials: c.credentials, adminRealm: c.adminRealm }),
  'oidc-dcr': (c) => new DcrAdapter({ issuerUrl: c.issuerUrl, initialAccessToken: c.initialAccessToken }),
};

export const SUPPORTED_IDP_KINDS = Object.keys(builders) as IdpKind[];

export function createIdpAdapter(conn: IdpConnection): IdpAdapter {
  const build = builders[conn.kind] as Builder<typeof conn.kind> | undefined;
  if (!build) throw new Error(`unsupported identity provider kind "${(conn as { kind: string }).kind}"; supported: ${SUPPORTED_IDP_KINDS.join(', ')}`);
  return build(conn as never);
}
