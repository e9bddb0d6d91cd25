// Every controller the operator runs. Each entry is one line: a kind and its
// reconciler; the core (src/core) does the watching, queueing and status.
import type { Logger } from 'pino';
import type { OperatorConfig } from '../config.js';
import type { ControllerDefinition } from '../core/controller.js';
import { PlatformConnections } from '../platform/connections.js';
import { databaseClaimController } from './databaseclaim/reconciler.js';
import { familyHubController } from './familyhub/reconciler.js';
import { oidcClientController } from './oidcclient/reconciler.js';
import { routeController } from './route/reconciler.js';
import { serviceController } from './service/reconciler.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function allControllers(config: OperatorConfig, log?: Logger): ControllerDefinition<any, any>[] {
  // One set of hub connections (pools, Vault clients, IdP adapters) for every controller.
  const platform = new PlatformConnections(config.platform, log);
  return [
    familyHubController(config, platform),
    oidcClientController(config, platform),
    databaseClaimController(config, platform),
    routeController(config, platform),
    serviceController(config, platform),
  ];
}
