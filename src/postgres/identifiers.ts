// PostgreSQL names for a claim. Everything that reaches SQL text goes through
// quoteIdent/quoteLiteral, and derived names only ever contain [a-z0-9_], so
// a hostile namespace, name or schemaName cannot change the statement.
import { createHash } from 'node:crypto';

/** PostgreSQL truncates identifiers longer than this (NAMEDATALEN - 1), silently: we never let it. */
export const MAX_IDENTIFIER_BYTES = 63;
/** Room left for the longest suffix we append to the base name ("_owner", "_app"). */
const BASE_MAX_BYTES = 50;
const SAFE = /^[a-z_][a-z0-9_]*$/;

export class InvalidIdentifierError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidIdentifierError';
  }
}

/** Double-quoted identifier; rejects what PostgreSQL cannot store (NUL) or would truncate. */
export function quoteIdent(name: string): string {
  if (name.length === 0) throw new InvalidIdentifierError('empty identifier');
  if (name.includes('\0')) throw new InvalidIdentifierError('identifier contains NUL');
  if (Buffer.byteLength(name, 'utf8') > MAX_IDENTIFIER_BYTES) {
    throw new InvalidIdentifierError(`identifier longer than ${MAX_IDENTIFIER_BYTES} bytes would be truncated by PostgreSQL`);
  }
  return `"${name.replace(/"/g, '""')}"`;
}

/** Standard-conforming string literal (E'' escapes are never produced). */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new InvalidIdentifierError('literal contains NUL');
  return `'${value.replace(/'/g, "''")}'`;
}

export function isSafeIdentifier(name: string): boolean {
  return SAFE.test(name) && Buffer.byteLength(name) <= MAX_IDENTIFIER_BYTES;
}

const shortHash = (s: string, len = 10) => createHash('sha256').update(s).digest('hex').slice(0, len);

/**
 * Folds arbitrary text into [a-z0-9_]. Returns whether the fold lost
 * information, because then two different inputs could meet in one name.
 */
function fold(s: string): { out: string; lossy: boolean } {
  const out = s.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
  return { out, lossy: out !== s };
}

export interface ClaimIdentifiers {
  /** schema the claim owns */
  schema: string;
  /** NOLOGIN role that owns the schema and everything in it */
  ownerRole: string;
  /** login role of Static mode */
  staticLoginRole: string;
  /** Static mode's second login: rotations alternate between the two, so the old one can drain */
  staticAltLoginRole: string;
  /** stable, path-safe key for Vault roles and policies ([a-z0-9_-]) */
  vaultName: string;
}

/**
 * Deterministic names from namespace/name. Kubernetes names can hold "-" and
 * "." which identifiers cannot, so "a-b/c" and "a/b-c" would fold together:
 * whenever folding is lossy or the result is too long, a hash of the exact
 * namespace/name is appended, keeping names unique and within 63 bytes.
 */
export function claimIdentifiers(namespace: string, name: string, schemaOverride?: string): ClaimIdentifiers {
  const ns = fold(namespace);
  const nm = fold(name);
  // The prefix keeps every name starting with a letter and marks what the operator owns.
  let base = `fh_${ns.out}_${nm.out}`;
  if (ns.lossy || nm.lossy || !ns.out || !nm.out || base.length > BASE_MAX_BYTES) {
    const h = shortHash(`${namespace}/${name}`);
    base = `${base.slice(0, BASE_MAX_BYTES - h.length - 1).replace(/_+$/, '')}_${h}`;
  }
  let schema = base;
  if (schemaOverride !== undefined) {
    if (!isSafeIdentifier(schemaOverride)) {
      throw new InvalidIdentifierError(`schemaName ${JSON.stringify(schemaOverride.slice(0, 80))} is not a lowercase identifier of at most 63 bytes`);
    }
    if (schemaOverride.startsWith('pg_') || schemaOverride.startsWith('fh_') || schemaOverride === 'public' || schemaOverride === 'information_schema') {
      throw new InvalidIdentifierError(`schemaName ${schemaOverride} is reserved`);
    }
    schema = schemaOverride;
  }
  return {
    schema,
    ownerRole: `${base}_owner`,
    staticLoginRole: `${base}_app`,
    staticAltLoginRole: `${base}_alt`,
    vaultName: base.replace(/_/g, '-'),
  };
}
