// Waiting for hack/test.sh's background build. `npm test` builds the
// control plane first and the rest (Traefik, the node, helm, promtool, the
// S3 server, Argo CD's Lua VM, kstatus, Keycloak) in the background while
// the suites that need none of it run. A suite that needs any of it starts
// with `await prebuilt()` at module level: module loading has no hook
// timeout, so a cold build in flight delays the suite instead of failing
// its beforeAll. test/support/sequencer.ts runs these suites last.
// Outside `npm test` (one suite by hand) there is nothing to wait for: the
// build scripts the suite calls build what is missing themselves.
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

/** The marker the background build writes when it ends: "ok", or "failed" and its log's tail. */
export const PREBUILD_MARKER_ENV = 'FAMILYHUB_PREBUILD_MARKER';

export async function prebuilt(): Promise<void> {
  const marker = process.env[PREBUILD_MARKER_ENV];
  if (!marker) return;
  const started = Date.now();
  let said = false;
  while (!existsSync(marker)) {
    if (!said && Date.now() - started > 5_000) {
      console.log('waiting for the background build of hack/test.sh (cold machine)');
      said = true;
    }
    await delay(1_000);
  }
  const text = readFileSync(marker, 'utf8');
  if (!text.startsWith('ok')) throw new Error(`the background build of hack/test.sh failed, so this suite cannot start:\n${text}`);
}
