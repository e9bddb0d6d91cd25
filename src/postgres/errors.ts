// Tells "the server is not there / not accepting us" apart from "our SQL is
// wrong", so the reconciler reports a dependency outage (Degraded, retry)
// instead of a bug, and recovers on its own when the server returns.

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN']);

export type PgFailureKind = 'unavailable' | 'auth' | 'other';

export function classifyPgError(err: unknown): PgFailureKind {
  const e = err as { code?: string; message?: string } | undefined;
  const code = e?.code ?? '';
  if (NETWORK_CODES.has(code)) return 'unavailable';
  // 08: connection exception; 57P0x: admin/crash shutdown, cannot connect now; 53300: too many connections.
  if (code.startsWith('08') || code.startsWith('57P') || code === '53300') return 'unavailable';
  if (code === '28P01' || code === '28000') return 'auth';
  const msg = e?.message ?? '';
  if (/Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED/i.test(msg)) return 'unavailable';
  return 'other';
}

/** One-line description without connection strings (which may carry a password). */
export function describePgError(err: unknown): string {
  const e = err as { code?: string; message?: string } | undefined;
  const msg = (e?.message ?? String(err)).replace(/postgres(ql)?:\/\/[^\s@]*@/gi, 'postgres://***@');
  return e?.code ? `${msg} (${e.code})` : msg;
}
