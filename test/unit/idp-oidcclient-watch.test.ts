// A FamilyHub change must wake exactly the objects that reference it (by
// name, in their own namespace unless the reference names another one), and
// every kind with a familyHubRef watches hubs the same way.
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config.js';
import { databaseClaimController } from '../../src/controllers/databaseclaim/reconciler.js';
import { oidcClientController } from '../../src/controllers/oidcclient/reconciler.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { PlatformConnections } from '../../src/platform/connections.js';

const client = (ns: string, name: string, ref: { name: string; namespace?: string }): KubeObject => ({
  metadata: { name, namespace: ns },
  spec: { familyHubRef: ref },
});

describe('OIDCClient controller watches FamilyHubs', () => {
  const config = defaultConfig();
  const platform = new PlatformConnections(config.platform);
  const hubWatch = oidcClientController(config, platform).watches!.find((w) => w.resource.kind === 'FamilyHub')!;
  const clients = [
    client('family', 'photos', { name: 'home' }),
    client('family', 'wiki', { name: 'other' }),
    client('apps', 'chat', { name: 'home', namespace: 'family' }),
    client('apps', 'notes', { name: 'home' }),
  ];

  it('maps a hub to the clients that reference it', () => {
    const hub = { metadata: { name: 'home', namespace: 'family' } };
    expect(hubWatch.map(hub, () => clients).sort()).toEqual(['apps/chat', 'family/photos']);
  });

  it('is the same watch for DatabaseClaims', () => {
    const claimWatch = databaseClaimController(config, platform).watches!.find((w) => w.resource.kind === 'FamilyHub')!;
    const hub = { metadata: { name: 'home', namespace: 'family' } };
    expect(claimWatch.map(hub, () => clients).sort()).toEqual(['apps/chat', 'family/photos']);
  });

  it('maps a hub nobody references to nothing', () => {
    expect(hubWatch.map({ metadata: { name: 'home', namespace: 'elsewhere' } }, () => clients)).toEqual([]);
  });
});
