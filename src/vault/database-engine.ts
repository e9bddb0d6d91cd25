// What the operator writes into Vault's database secrets engine for one
// FamilyHub (the connection) and one claim (the role). Statements use
// Vault's {{name}}/{{password}}/{{expiration}} templates; every identifier we
// add is quoted by quoteIdent, and Vault's generated names are [A-Za-z0-9_-].
import { quoteIdent } from '../postgres/identifiers.js';
import type { DatabaseRoleConfig } from './client.js';

export const POSTGRES_PLUGIN = 'postgresql-database-plugin';

/** database/config/<name>: one connection per FamilyHub, namespaced to avoid clashes. */
export function connectionName(hubNamespace: string, hubName: string): string {
  return `familyhub-${hubNamespace}-${hubName}`;
}

export function vaultConnectionUrl(host: string, port: number, database: string, sslMode: string): string {
  return `postgresql://{{username}}:{{password}}@${host}:${port}/${encodeURIComponent(database)}?sslmode=${sslMode}`;
}

/**
 * A login role that is a member of the claim's owner role and whose sessions
 * run as that owner, so tables it creates survive its revocation. Revocation
 * ends its sessions, hands anything it still owns to the owner, then drops it.
 */
export function claimRoleStatements(schema: string, ownerRole: string): Pick<DatabaseRoleConfig, 'creationStatements' | 'revocationStatements'> {
  const owner = quoteIdent(ownerRole);
  const s = quoteIdent(schema);
  return {
    creationStatements: [
      `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE ${owner};`,
      `ALTER ROLE "{{name}}" SET role TO ${owner};`,
      `ALTER ROLE "{{name}}" SET search_path TO ${s};`,
    ],
    revocationStatements: [
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';`,
      `REASSIGN OWNED BY "{{name}}" TO ${owner};`,
      `DROP OWNED BY "{{name}}";`,
      `DROP ROLE IF EXISTS "{{name}}";`,
    ],
  };
}

/** Policy letting a workload read its own claim's credentials and nothing else. */
export function claimCredsPolicy(databaseMountPath: string, role: string): string {
  return `path "${databaseMountPath}/creds/${role}" {\n  capabilities = ["read"]\n}\n`;
}
