// The RFC 7592 registration access token is a credential, so the DCR
// client reference lives in its own Secret next to the app's credentials,
// never in status. It is read only when this OIDCClient controls it: a
// registration Secret of another object would hand over (and, on deletion,
// delete) that object's client.
import { ensureOwned, isControlledBy } from '../../core/children.js';
import { encodeSecretData } from '../../core/kube-client.js';
import type { KubeObject, ReconcileContext } from '../../core/reconciler.js';
import { SECRET } from '../../core/resources.js';
import type { ClientRef } from '../../idp/types.js';

export const registrationSecretName = (clientSecretName: string) => `${clientSecretName}-registration`;

export async function readRegistration(ctx: Pick<ReconcileContext, 'cache' | 'kube'>, owner: KubeObject, ns: string, name: string): Promise<ClientRef | undefined> {
  if (!isControlledBy(await ctx.cache.get(SECRET, ns, name), owner)) return undefined;
  const data = await ctx.kube.readSecret(ns, name);
  if (!data?.['client-id']) return undefined;
  return {
    clientId: data['client-id'],
    registrationClientUri: data['registration-client-uri'],
    registrationAccessToken: data['registration-access-token'],
  };
}

export async function writeRegistration(ctx: ReconcileContext, owner: KubeObject, ns: string, name: string, ref: ClientRef): Promise<void> {
  await ensureOwned(ctx, owner, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: ns, labels: { 'familyhub.dev/oidcclient': owner.metadata.name } },
    type: 'Opaque',
    data: encodeSecretData({
      'client-id': ref.clientId,
      'registration-client-uri': ref.registrationClientUri ?? '',
      'registration-access-token': ref.registrationAccessToken ?? '',
    }),
  }, { conditionType: 'ClientReady' });
}
