// What a FamilyHub's PostgreSQL and Vault/OpenBao connections are made of,
// and how their failures read in status: the errors every kind that uses the
// hub's database reports (PostgresReady / VaultReady), never with a
// credential in the message.
import type { PgTarget } from '../postgres/admin-pool.js';
import { classifyPgError, describePgError } from '../postgres/errors.js';
import type { SchemaProvisioner } from '../postgres/schema-provisioner.js';
import { VaultRequestError } from '../vault/errors.js';

/** A dependency that is not usable right now; `reason` becomes the condition reason. */
export class DependencyError extends Error {
  constructor(
    readonly conditionType: 'PostgresReady' | 'VaultReady',
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'DependencyError';
  }
}

export interface HubPostgres {
  target: PgTarget;
  provisioner: SchemaProvisioner;
  /** sha256 prefix of the admin password: detects rotation without keeping the value around */
  passwordFingerprint: string;
}

/** Maps a PostgreSQL failure to a readable dependency error (never with credentials in it). */
export function postgresFailure(target: Pick<PgTarget, 'host' | 'port' | 'database'>, err: unknown): Error {
  if (err instanceof DependencyError) return err;
  const kind = classifyPgError(err);
  const where = `PostgreSQL ${target.host}:${target.port}/${target.database}`;
  if (kind === 'unavailable') return new DependencyError('PostgresReady', 'PostgresUnavailable', `${where} is not reachable: ${describePgError(err)}`);
  if (kind === 'auth') return new DependencyError('PostgresReady', 'PostgresAuthFailed', `${where} rejected the admin credentials: ${describePgError(err)}`);
  return err instanceof Error ? err : new Error(String(err));
}

export function vaultFailure(address: string, err: unknown): Error {
  if (err instanceof DependencyError) return err;
  if (err instanceof VaultRequestError) {
    if (err.unavailable) return new DependencyError('VaultReady', 'VaultUnavailable', `Vault ${address} is not reachable: ${err.message}`);
    if (err.forbidden) return new DependencyError('VaultReady', 'VaultPermissionDenied', `Vault ${address} refused the operator: ${err.message}`);
    return new DependencyError('VaultReady', 'VaultRequestFailed', `Vault ${address}: ${err.message}`);
  }
  return err instanceof Error ? err : new Error(String(err));
}
