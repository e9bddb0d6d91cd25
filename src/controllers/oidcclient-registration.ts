// The RFC 7592 registration access token is a credential, so the DCR
// client reference lives in its own Secret next to the app's credentials,
// never in status.
import type { KubeClient } from '../core/kube-client.js';
import type { KubeObject } from '../core/reconciler.js';
import type { ClientRef } from '../idp/types.js';

export const registrationSecretName = (clientSecretName: string) => `${clientSecretName}-registration`;

export async function readRegistration(kube: KubeClient, ns: string, name: string): Promise<ClientRef | undefined> {
  const data = await kube.readSecret(ns, name);
  if (!data?.['client-id']) return undefined;
  return {
    clientId: data['client-id'],
    registrationClientUri: data['registration-client-uri'],
    registrationAccessToken: data['registration-access-token'],
  };
}

export async function writeRegistration(kube: KubeClient, ns: string, name: string, ref: ClientRef, owner: KubeObject): Promise<void> {
  await kube.applySecret(
    ns,
    name,
    {
      'client-id': ref.clientId,
      'registration-client-uri': ref.registrationClientUri ?? '',
      'registration-access-token': ref.registrationAccessToken ?? '',
    },
    { owner, labels: { 'familyhub.dev/oidcclient': owner.metadata.name } },
  );
}
