// Shared pieces of the OIDCClient end-to-end tests: objects, and reads of
// what the operator wrote (Secrets, Events) from the real apiserver.
import { createHash } from 'node:crypto';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { API, condition, waitForObject } from '../support/kube.js';

export const NS = 'family';

export function familyHub(identity: Record<string, unknown>): KubeObject {
  return {
    apiVersion: API,
    kind: 'FamilyHub',
    metadata: { name: 'home', namespace: NS },
    spec: {
      domain: 'family.test',
      allowedEmailDomains: ['family.test'],
      postgres: { host: '127.0.0.1', port: 5432, database: 'familyhub', adminCredentialsSecretRef: { name: 'pg-admin' } },
      identity,
      runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
    },
  };
}

export function oidcClient(name: string, spec: Record<string, unknown>): KubeObject {
  return { apiVersion: API, kind: 'OIDCClient', metadata: { name, namespace: NS }, spec: { familyHubRef: { name: 'home' }, ...spec } };
}

export async function applyAsUser(kube: KubeClient, obj: KubeObject): Promise<void> {
  await kube.apply(obj, { fieldManager: 'e2e-test' });
}

export const clientReady = (o: KubeObject) =>
  condition(o, 'Ready')?.status === 'True' && o.status?.observedGeneration === o.metadata.generation;

export async function waitClient(kube: KubeClient, name: string, what: string, pred: (o: KubeObject) => boolean, timeoutMs = 60_000) {
  return waitForObject(kube, { kind: 'OIDCClient', namespace: NS, name }, what, pred, timeoutMs);
}

export async function events(kube: KubeClient, name: string): Promise<{ reason: string; type: string; message: string }[]> {
  const list = await kube.list('v1', 'Event', NS);
  return list.items
    .filter((e) => e.involvedObject?.name === name && e.involvedObject?.kind === 'OIDCClient')
    .map((e) => ({ reason: e.reason, type: e.type, message: e.message }));
}

export const hash16 = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

export async function deleteClient(kube: KubeClient, name: string): Promise<void> {
  await kube.delete(API, 'OIDCClient', NS, name);
}
