// A scripted browser for the SSO tests: a cookie jar that follows the
// cookie rules that matter here (Domain= covers subdomains, host-only
// otherwise, Path, Secure only over https, Max-Age=0 deletes), and manual
// redirects. Names under the test domain resolve to the gateway on
// 127.0.0.1 (with SNI and the test CA), everything else (the IdP) is
// fetched as is.
import { gatewayRequest, type GatewayResponse } from './gateway.js';

interface Cookie { name: string; value: string; domain: string; hostOnly: boolean; path: string; secure: boolean }

export interface BrowserOptions {
  domain: string;
  gatewayPort: number;
  ca: string;
  /** Changes a URL before it is requested (e.g. adds login_hint at the IdP, as a person would type the name). */
  rewrite?: (url: URL) => URL;
}

export interface Hop { url: string; status: number; location?: string }

export class Browser {
  private cookies: Cookie[] = [];
  constructor(private readonly o: BrowserOptions) {}

  cookieNames(host: string): string[] {
    return this.matching(new URL(`https://${host}/`)).map((c) => c.name);
  }

  private matching(url: URL): Cookie[] {
    const host = url.hostname;
    return this.cookies.filter((c) =>
      (c.hostOnly ? host === c.domain : host === c.domain || host.endsWith(`.${c.domain}`))
      && url.pathname.startsWith(c.path)
      // Browsers treat loopback as a secure context (the IdP runs on 127.0.0.1 over http here).
      && (!c.secure || url.protocol === 'https:' || url.hostname === '127.0.0.1' || url.hostname === 'localhost'));
  }

  private store(url: URL, header: string) {
    const [pair, ...attrs] = header.split(';').map((s) => s.trim());
    const eq = pair!.indexOf('=');
    const name = pair!.slice(0, eq);
    const value = pair!.slice(eq + 1);
    let domain = url.hostname;
    let hostOnly = true;
    let path = '/';
    let secure = false;
    let remove = false;
    for (const a of attrs) {
      const [k, v = ''] = a.split('=');
      const key = k!.toLowerCase();
      if (key === 'domain') {
        const d = v.replace(/^\./, '').toLowerCase();
        // A site may only set cookies for itself or a parent domain.
        if (url.hostname !== d && !url.hostname.endsWith(`.${d}`)) return;
        domain = d;
        hostOnly = false;
      } else if (key === 'path') path = v || '/';
      else if (key === 'secure') secure = true;
      else if (key === 'max-age' && Number(v) <= 0) remove = true;
    }
    this.cookies = this.cookies.filter((c) => !(c.name === name && c.domain === domain && c.path === path));
    if (!remove) this.cookies.push({ name, value, domain, hostOnly, path, secure });
  }

  async get(raw: string, headers: Record<string, string> = {}): Promise<GatewayResponse> {
    let url = new URL(raw);
    if (this.o.rewrite) url = this.o.rewrite(url);
    const cookie = this.matching(url).map((c) => `${c.name}=${c.value}`).join('; ');
    const h = { accept: 'text/html,application/xhtml+xml', ...(cookie ? { cookie } : {}), ...headers };
    return this.send(url, h);
  }

  private async send(url: URL, h: Record<string, string>): Promise<GatewayResponse> {
    let res: GatewayResponse;
    const host = url.hostname;
    if (host === this.o.domain || host.endsWith(`.${this.o.domain}`)) {
      res = await gatewayRequest({ port: this.o.gatewayPort, host: url.host, path: url.pathname + url.search, headers: h, tls: { ca: this.o.ca } });
    } else {
      const r = await fetch(url, { redirect: 'manual', headers: h });
      const hdrs: Record<string, string | string[]> = {};
      r.headers.forEach((v, k) => { hdrs[k] = v; });
      hdrs['set-cookie'] = r.headers.getSetCookie();
      const body = await r.text();
      res = { status: r.status, headers: hdrs, body, json: () => JSON.parse(body) };
    }
    const set = res.headers['set-cookie'];
    for (const c of Array.isArray(set) ? set : set ? [set] : []) this.store(url, c);
    return res;
  }

  /** Submits a form (application/x-www-form-urlencoded), as a login page's submit button would. */
  async post(raw: string, form: Record<string, string>): Promise<GatewayResponse> {
    const url = new URL(raw);
    const cookie = this.matching(url).map((c) => `${c.name}=${c.value}`).join('; ');
    const r = await fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) },
      body: new URLSearchParams(form),
    });
    const hdrs: Record<string, string | string[]> = {};
    r.headers.forEach((v, k) => { hdrs[k] = v; });
    hdrs['set-cookie'] = r.headers.getSetCookie();
    for (const c of r.headers.getSetCookie()) this.store(url, c);
    const body = await r.text();
    return { status: r.status, headers: hdrs, body, json: () => JSON.parse(body) };
  }

  /** Follows redirects until a non-redirect answer; returns it and the hops taken. */
  async navigate(raw: string, maxHops = 15): Promise<{ res: GatewayResponse; hops: Hop[] }> {
    const hops: Hop[] = [];
    let url = raw;
    for (let i = 0; i < maxHops; i++) {
      const res = await this.get(url);
      const location = res.headers.location as string | undefined;
      hops.push({ url, status: res.status, location });
      if (res.status < 300 || res.status >= 400 || !location) return { res, hops };
      url = new URL(location, url).href;
    }
    throw new Error(`too many redirects: ${hops.map((h) => `${h.status} ${h.url}`).join(' -> ')}`);
  }
}
