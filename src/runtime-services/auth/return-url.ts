// Where the auth service may send a browser back to: only https URLs on the
// hub's domain or its subdomains. Anything else (another site, a look-alike
// suffix such as evil-family.test, credentials in the URL, javascript:) is
// refused, so the login and logout endpoints are never an open redirect.
export function safeReturnUrl(raw: string | undefined, domain: string): URL | undefined {
  if (!raw || raw.length > 4096) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' || url.username || url.password) return undefined;
  const host = url.hostname.toLowerCase();
  const d = domain.toLowerCase();
  return host === d || host.endsWith(`.${d}`) ? url : undefined;
}

/** The URL the browser asked for, as the gateway reports it in X-Forwarded-* headers. */
export function forwardedUrl(headers: Record<string, string | string[] | undefined>): string | undefined {
  const one = (h: string) => {
    const v = headers[h];
    return Array.isArray(v) ? v[0] : v;
  };
  const proto = one('x-forwarded-proto');
  const host = one('x-forwarded-host');
  const uri = one('x-forwarded-uri') ?? '/';
  if (!proto || !host) return undefined;
  return `${proto}://${host}${uri.startsWith('/') ? uri : `/${uri}`}`;
}
