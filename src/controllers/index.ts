// Every controller the operator runs. Each entry is one line: a kind and its
// reconciler; the core (src/core) does the watching, queueing and status.
import type { ControllerDefinition } from '../core/controller.js';
import { databaseClaimController } from './databaseclaim.js';
import { familyHubController } from './familyhub.js';
import { familyHubLiveChecks } from './familyhub-dependencies.js';
import { checkIdentity } from './familyhub-identity.js';
import { oidcClientController } from './oidcclient.js';

export function allControllers(): ControllerDefinition<any>[] {
  return [familyHubController({ liveChecks: { ...familyHubLiveChecks, IdentityReady: checkIdentity } }), oidcClientController(), databaseClaimController()];
}
