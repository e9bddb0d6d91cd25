// Picks the gateway implementation: the hub's explicit choice, else the one
// whose controllerName the GatewayClass names.
import { ENVOY_GATEWAY_CONTROLLER, envoyGatewayProvider, type EnvoyAuthMode } from './envoy-gateway/provider.js';
import { TRAEFIK_CONTROLLER, traefikProvider } from './traefik/provider.js';
import type { GatewayProvider, GatewayProviderName } from './types.js';

export * from './types.js';

export function providerByName(name: GatewayProviderName, opts: { envoyAuthMode?: EnvoyAuthMode } = {}): GatewayProvider {
  return name === 'traefik' ? traefikProvider : envoyGatewayProvider(opts.envoyAuthMode);
}

/** undefined when no implementation here answers to that controllerName. */
export function providerNameForController(controllerName: string | undefined): GatewayProviderName | undefined {
  if (controllerName === TRAEFIK_CONTROLLER) return 'traefik';
  if (controllerName === ENVOY_GATEWAY_CONTROLLER) return 'envoy-gateway';
  return undefined;
}
