// A FamilyHub change must wake exactly the OIDCClients that reference it
// (by name, in their own namespace unless the reference names another one).
import { describe, expect, it } from 'vitest';
import { oidcClientController } from '../../src/controllers/oidcclient.js';
import type { KubeObject } from '../../src/core/reconciler.js';

const client = (ns: string, name: string, ref: { name: string; namespace?: string }): KubeObject => ({
  metadata: { name, namespace: ns },
  spec: { familyHubRef: ref },
});

describe('OIDCClient controller watches FamilyHubs', () => {
  const hubWatch = oidcClientController().watches.find((w) => w.kind === 'FamilyHub')!;
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

  it('maps a hub nobody references to nothing', () => {
    expect(hubWatch.map({ metadata: { name: 'home', namespace: 'elsewhere' } }, () => clients)).toEqual([]);
  });
});
