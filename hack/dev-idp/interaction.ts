// Login step of the development IdP. A known `login_hint` logs in at once
// (scripted logins in tests); otherwise a minimal form lets a person pick a
// family account when running `npm run dev`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { Account } from './provider.js';

export async function handleInteraction(
  provider: Provider,
  accounts: Map<string, Account>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const details = await provider.interactionDetails(req, res);

  if (req.method === 'POST') {
    const form = new URLSearchParams(await readBody(req));
    const acct = accounts.get(form.get('login') ?? '');
    if (!acct || !acct.password || acct.password !== form.get('password')) {
      renderLoginForm(res, details.uid, accounts, 'Unknown user or wrong password.');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: acct.id } }, { mergeWithLastSubmission: false });
    return;
  }

  if (details.prompt.name === 'login') {
    const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint : undefined;
    if (hint && accounts.has(hint)) {
      await provider.interactionFinished(req, res, { login: { accountId: hint } }, { mergeWithLastSubmission: false });
      return;
    }
    renderLoginForm(res, details.uid, accounts);
    return;
  }

  // loadExistingGrant grants everything, so a consent prompt means the
  // request itself is unusual; finish it with an empty consent rather than hang.
  await provider.interactionFinished(req, res, { consent: {} }, { mergeWithLastSubmission: true });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
      if (body.length > 16_384) reject(new Error('login form too large'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function renderLoginForm(res: ServerResponse, uid: string, accounts: Map<string, Account>, error?: string): void {
  const options = [...accounts.values()]
    .filter((a) => a.password)
    .map((a) => `<option value="${escapeHtml(a.id)}">${escapeHtml(a.email)}</option>`)
    .join('');
  res.statusCode = error ? 401 : 200;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.end(`<!doctype html><title>FamilyHub dev IdP</title>
<h1>FamilyHub development login</h1>${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Account <select name="login">${options}</select></label>
<label>Password <input type="password" name="password"></label>
<button type="submit">Sign in</button></form>`);
}
