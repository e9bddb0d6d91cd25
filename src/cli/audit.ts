// `audit verify` / `audit tail`: the audit service's admin HTTP API
// (GET /api/audit/verify, GET /api/audit/events). Its URL comes from the
// hub's status.endpoints.audit when published, else --url; the bearer token
// (an admin's access token from the family IdP) from $FAMILYHUB_TOKEN or
// --token-file, never from the command line, where `ps` would show it.
import { readFileSync } from 'node:fs';
import { API_VERSION } from '../core/constants.js';
import { UsageError, type Target } from './kube.js';
import { oneLine, table, type Style } from './output.js';

export interface AuditTarget { base: string; token: string }

export interface AuditEvent {
  seq: string;
  eventId: string;
  occurredAt: string;
  recordedAt: string;
  actor: string;
  action: string;
  target: string;
  outcome: string;
  requestId?: string | null;
  source?: string | null;
}

// The audit API's answer, typed by the service that sends it (type only: no runtime code crosses over).
import type { VerifyResult } from '../runtime-services/audit/verify.js';

export async function auditTarget(flags: { url?: string; tokenFile?: string; hub?: string }, t: () => Promise<Target>): Promise<AuditTarget> {
  const token = flags.tokenFile ? readFileSync(flags.tokenFile, 'utf8').trim() : process.env.FAMILYHUB_TOKEN?.trim();
  if (!token) throw new UsageError('the audit API needs an admin access token: set FAMILYHUB_TOKEN or pass --token-file <file>');
  let url = flags.url;
  if (!url) {
    const target = await t();
    const hubs = flags.hub
      ? [await target.kube.get(API_VERSION, 'FamilyHub', target.namespace, flags.hub)].filter((h) => !!h)
      : (await target.kube.list(API_VERSION, 'FamilyHub', target.namespace)).items;
    const withAudit = hubs.filter((h) => h!.status?.endpoints?.audit);
    if (withAudit.length !== 1) {
      throw new UsageError(withAudit.length
        ? `several FamilyHubs in ${target.namespace} publish an audit endpoint: pass --hub <name> or --url`
        : `no FamilyHub in ${target.namespace}${flags.hub ? ` named ${flags.hub}` : ''} publishes status.endpoints.audit: pass --url <audit service URL>`);
    }
    url = withAudit[0]!.status.endpoints.audit as string;
  }
  const base = url.replace(/\/+$/, '').replace(/\/api\/audit$/, '');
  return { base: `${base}/api/audit`, token };
}

async function call<T>(a: AuditTarget, path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(`${a.base}${path}`, { headers: { authorization: `Bearer ${a.token}`, accept: 'application/json' }, signal });
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = { message: text };
  }
  if (!res.ok) {
    const hint = res.status === 401 ? ' (token missing, expired or for another audience)' : res.status === 403 ? ' (the token lacks the admin role)' : '';
    throw new AuditApiError(res.status, `audit API ${path.split('?')[0]}: HTTP ${res.status}${hint}: ${oneLine(body?.message ?? body?.error ?? text, 300)}`);
  }
  return body as T;
}

export class AuditApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/**
 * The service verifies in one request and streams nothing back, so progress
 * is what can be known: the chain head to check (from the newest event) and
 * the time spent, on stderr while the request runs.
 */
export async function verify(a: AuditTarget, progress?: (line: string, final?: boolean) => void): Promise<VerifyResult> {
  let head: string | undefined;
  try {
    head = (await call<{ events: AuditEvent[] }>(a, '/events?limit=1')).events[0]?.seq;
  } catch {
    // Only for the progress line; verify itself reports what is wrong.
  }
  const started = Date.now();
  const say = () => progress?.(`verifying the audit chain${head ? ` up to seq ${head}` : ''}… ${Math.round((Date.now() - started) / 1000)}s`);
  const timer = setInterval(say, 1000);
  try {
    const r = await call<VerifyResult>(a, '/verify');
    return r;
  } finally {
    clearInterval(timer);
    if (Date.now() - started >= 1000) progress?.(`verification took ${((Date.now() - started) / 1000).toFixed(1)}s`, true);
  }
}

export function renderVerify(r: VerifyResult, st: Style): string {
  const range = `seq ${BigInt(r.startsAfterSeq) + 1n}..${r.headSeq}${r.startsAfterSeq !== '0' ? ` (older rows were dropped by retention; the chain continues from a checkpoint at seq ${r.startsAfterSeq})` : ''}`;
  if (r.ok) return `${st.good('ok')}: the audit chain is intact, ${r.checkedRows} rows checked, ${range}`;
  const b = r.firstBroken!;
  return `${st.bad('BROKEN')}: first row that does not fit: seq ${b.seq}${b.eventId ? ` (event ${b.eventId})` : ''}: ${b.reason}\n${r.checkedRows} rows verified before it, ${range}`;
}

export async function tail(a: AuditTarget, q: { actor?: string; action?: string; target?: string; limit: number }): Promise<AuditEvent[]> {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') qs.set(k, String(v));
  const r = await call<{ events: AuditEvent[] }>(a, `/events?${qs}`);
  // The API pages newest first; a tail reads oldest first.
  return r.events.reverse();
}

/** Polls for events newer than the last one shown; runs until the signal aborts. */
export async function follow(a: AuditTarget, q: { actor?: string; action?: string; target?: string }, after: string, onEvents: (e: AuditEvent[]) => void, signal: AbortSignal, intervalMs = 2000): Promise<void> {
  let last = BigInt(after || '0');
  while (!signal.aborted) {
    await new Promise((r) => setTimeout(r, intervalMs));
    if (signal.aborted) break;
    const fresh: AuditEvent[] = [];
    let cursor: string | undefined;
    // Page back until the last event already shown (bounded: at most 10 pages per poll).
    for (let page = 0; page < 10; page++) {
      const qs = new URLSearchParams({ limit: '500', ...Object.fromEntries(Object.entries(q).filter(([, v]) => v)) as Record<string, string>, ...(cursor ? { cursor } : {}) });
      const r = await call<{ events: AuditEvent[]; nextCursor: string | null }>(a, `/events?${qs}`, signal).catch((e) => {
        if (signal.aborted) return { events: [], nextCursor: null };
        throw e;
      });
      const newer = r.events.filter((e) => BigInt(e.seq) > last);
      fresh.push(...newer);
      if (newer.length < r.events.length || !r.nextCursor) break;
      cursor = r.nextCursor;
    }
    if (fresh.length) {
      fresh.sort((x, y) => (BigInt(x.seq) < BigInt(y.seq) ? -1 : 1));
      last = BigInt(fresh.at(-1)!.seq);
      onEvents(fresh);
    }
  }
}

export function renderEvents(events: AuditEvent[], st: Style, header = true): string {
  const rows = events.map((e) => [e.seq, e.occurredAt, e.actor, e.action, e.target, e.outcome === 'success' ? e.outcome : st.warn(e.outcome)]);
  if (!header) return table(['', '', '', '', '', ''], rows).split('\n').slice(1).join('\n');
  return events.length ? table(['SEQ', 'OCCURRED', 'ACTOR', 'ACTION', 'TARGET', 'OUTCOME'], rows) : 'No audit events match.';
}
