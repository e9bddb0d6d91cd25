// `npm run dev-idp`: the development IdP as a long-running process, used by
// `npm run dev` as the embedded default IdP.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { workDir } from '../local/process.js';
import { startDevIdp } from './provider.js';

const log = pino({ name: 'dev-idp' });
const idp = await startDevIdp({
  port: Number(process.env.DEV_IDP_PORT ?? 9400),
  allowedDomain: process.env.DEV_IDP_DOMAIN ?? 'family.test',
  initialAccessToken: process.env.DEV_IDP_INITIAL_ACCESS_TOKEN,
});
// The initial access token is a credential: it goes to a private file, never
// to the log, unless the caller chose it.
let tokenFile: string | undefined;
if (!process.env.DEV_IDP_INITIAL_ACCESS_TOKEN) {
  const dir = workDir('dev-idp');
  tokenFile = path.join(dir, 'initial-access-token');
  writeFileSync(tokenFile, idp.initialAccessToken, { mode: 0o600 });
}
log.info({ issuer: idp.issuer, users: idp.users.map((u) => u.email), initialAccessTokenFile: tokenFile }, 'development IdP listening');

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void idp.stop().then(() => process.exit(0));
  });
}
