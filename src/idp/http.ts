// fetch wrapper shared by the adapters: turns transport failures into
// IdpUnreachableError and non-2xx answers into IdpError with the operation
// named, and never puts request bodies (which may hold secrets) in messages.
import { idpRequests } from './metrics.js';
import { IdpError, IdpUnreachableError } from './types.js';

export interface HttpResult<T> {
  status: number;
  body: T;
  headers: Headers;
}

export async function idpFetch<T = unknown>(
  operation: string,
  url: string,
  init: RequestInit & { okStatuses?: number[]; timeoutMs?: number } = {},
): Promise<HttpResult<T>> {
  const idp = operation.split(' ', 1)[0] ?? 'idp';
  const method = init.method ?? 'GET';
  const end = idpRequests.startTimer({ idp, method });
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: init.signal ?? AbortSignal.timeout(init.timeoutMs ?? 15_000) });
  } catch (err) {
    end({ outcome: 'unreachable' });
    throw new IdpUnreachableError(operation, err);
  }
  end({ outcome: res.ok || (init.okStatuses ?? []).includes(res.status) ? 'ok' : 'error' });
  const text = await res.text();
  let body: unknown = undefined;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  const ok = res.ok || (init.okStatuses ?? []).includes(res.status);
  if (!ok) {
    const detail = typeof body === 'object' && body !== null
      ? ((body as Record<string, unknown>).errorMessage ?? (body as Record<string, unknown>).error_description ?? (body as Record<string, unknown>).error ?? '')
      : String(body ?? '').slice(0, 200);
    throw new IdpError(res.status, operation, `HTTP ${res.status}${detail ? ` ${String(detail)}` : ''}`);
  }
  return { status: res.status, body: body as T, headers: res.headers };
}
