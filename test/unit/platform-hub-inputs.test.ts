// The Secrets a FamilyHub reads are protected by name, before they exist:
// every *SecretRef in its spec, at any depth, and its Gateway's TLS Secret.
import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../src/core/reconciler.js';
import { assertNotHubInput, hubInputSecrets } from '../../src/platform/hub.js';

const hub = (spec: Record<string, unknown>): KubeObject => ({ apiVersion: 'familyhub.dev/v1alpha1', kind: 'FamilyHub', metadata: { name: 'home', namespace: 'family' }, spec });

const full = hub({
  postgres: { host: 'db', adminCredentialsSecretRef: { name: 'pg-admin', usernameKey: 'username' } },
  redis: { host: 'redis', passwordSecretRef: { name: 'redis-pw', key: 'password' } },
  vault: { address: 'https://bao', tokenSecretRef: { name: 'bao-token' }, caSecretRef: { name: 'bao-ca' } },
  identity: { kind: 'keycloak', adminCredentialsSecretRef: { name: 'kc-admin' } },
  gateway: { gatewayName: 'edge', gatewayNamespace: 'gateways' },
});

describe('hubInputSecrets', () => {
  it('lists every referenced Secret with the field that names it', () => {
    expect(hubInputSecrets(full)).toEqual([
      { namespace: 'family', name: 'pg-admin', field: 'spec.postgres.adminCredentialsSecretRef' },
      { namespace: 'family', name: 'redis-pw', field: 'spec.redis.passwordSecretRef' },
      { namespace: 'family', name: 'bao-token', field: 'spec.vault.tokenSecretRef' },
      { namespace: 'family', name: 'bao-ca', field: 'spec.vault.caSecretRef' },
      { namespace: 'family', name: 'kc-admin', field: 'spec.identity.adminCredentialsSecretRef' },
      { namespace: 'gateways', name: 'edge-tls', field: 'spec.gateway.listeners.certificateSecretName' },
    ]);
  });

  it('takes an explicit certificate Secret name and ignores a spec it cannot read', () => {
    const named = hub({ gateway: { gatewayName: 'edge', gatewayNamespace: 'gateways', listeners: { certificateSecretName: 'wild-cert' } } });
    expect(hubInputSecrets(named)).toEqual([{ namespace: 'gateways', name: 'wild-cert', field: 'spec.gateway.listeners.certificateSecretName' }]);
    expect(hubInputSecrets(hub({ postgres: { adminCredentialsSecretRef: 'not-an-object' } }))).toEqual([]);
  });
});

describe('assertNotHubInput', () => {
  const ctx = { cache: { get: async () => undefined, list: async () => [full] as never[] } } as unknown as Parameters<typeof assertNotHubInput>[0];

  it('refuses an input name in the hub\'s namespace as a terminal SecretConflict naming the field', async () => {
    await expect(assertNotHubInput(ctx, 'family', 'bao-token', 'CredentialsReady')).rejects.toMatchObject({
      reason: 'SecretConflict',
      message: expect.stringContaining('Secret family/bao-token is an input of FamilyHub family/home (spec.vault.tokenSecretRef)'),
      opts: expect.objectContaining({ conditionType: 'CredentialsReady', terminal: true }),
    });
    await expect(assertNotHubInput(ctx, 'gateways', 'edge-tls', 'ClientReady')).rejects.toMatchObject({ reason: 'SecretConflict' });
  });

  it('lets the same name through in another namespace, and other names', async () => {
    await expect(assertNotHubInput(ctx, 'apps', 'pg-admin', 'CredentialsReady')).resolves.toBeUndefined();
    await expect(assertNotHubInput(ctx, 'family', 'app-db', 'CredentialsReady')).resolves.toBeUndefined();
  });
});
