// `npm run dev-idp`: the development IdP as a long-running process, used by
// `npm run dev` as the embedded default IdP.
import pino from 'pino';
import { startDevIdp } from './provider.js';

const log = pino({ name: 'dev-idp' });
const idp = await startDevIdp({
  port: Number(process.env.DEV_IDP_PORT ?? 9400),
  allowedDomain: process.env.DEV_IDP_DOMAIN ?? 'family.test',
  initialAccessToken: process.env.DEV_IDP_INITIAL_ACCESS_TOKEN,
});
// The initial access token is a credential; it is only printed when the
// caller did not choose it, and then to stdout for the developer, not the log.
if (!process.env.DEV_IDP_INITIAL_ACCESS_TOKEN) process.stdout.write(`initial access token: ${idp.initialAccessToken}\n`);
log.info({ issuer: idp.issuer, users: idp.users.map((u) => u.email) }, 'development IdP listening');

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void idp.stop().then(() => process.exit(0));
  });
}
