// What the Service reconciler waits for before it writes the Deployment: the
// credential Secrets its children publish, and the facts those children
// publish in their status (schema and database, client id and issuer), which
// arrive a moment after the Secret. Without that second wait a new Service
// rolled its Deployment once more right after creating it.
import { describe, expect, it } from 'vitest';
import { deploymentOf } from '../../src/controllers/service/desired.js';
import { observe, waitingFor, type ServiceObject } from '../../src/controllers/service/reconciler.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { serviceSpecSchema } from '../../src/crds/index.js';
import { cacheContext } from '../support/cache.js';

const NS = 'apps';
const hub: KubeObject = {
  apiVersion: 'familyhub.dev/v1alpha1', kind: 'FamilyHub', metadata: { name: 'home', namespace: NS, uid: 'hub-uid' },
  spec: {
    domain: 'family.test', allowedEmailDomains: ['family.test'],
    postgres: { host: 'pg', database: 'fh', adminCredentialsSecretRef: { name: 'pg' } },
    identity: { kind: 'oidc-dcr', issuerUrl: 'https://id.family.test' },
    runtime: { image: 'rt:1' },
  },
};
const service: ServiceObject = {
  apiVersion: 'familyhub.dev/v1alpha1', kind: 'Service', metadata: { name: 'recipes', namespace: NS, uid: 'svc-uid' },
  spec: serviceSpecSchema.parse({
    familyHubRef: { name: 'home' }, image: 'ghcr.io/family/recipes:1.4.2', port: 8080, host: 'recipes.family.test',
    needs: { database: { enabled: true }, oidc: { enabled: true } },
  }),
} as ServiceObject;

const controller = (kind: string, name: string, uid: string) => [{ apiVersion: 'familyhub.dev/v1alpha1', kind, name, uid, controller: true }];
const claim = (status: Record<string, unknown>): KubeObject => ({
  apiVersion: 'familyhub.dev/v1alpha1', kind: 'DatabaseClaim', metadata: { name: 'recipes', namespace: NS, uid: 'claim-uid', ownerReferences: controller('Service', 'recipes', 'svc-uid') }, spec: {}, status,
});
const client = (status: Record<string, unknown>): KubeObject => ({
  apiVersion: 'familyhub.dev/v1alpha1', kind: 'OIDCClient', metadata: { name: 'recipes', namespace: NS, uid: 'client-uid', ownerReferences: controller('Service', 'recipes', 'svc-uid') }, spec: {}, status,
});
const secretOf = (name: string, kind: string, uid: string): KubeObject => ({
  apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS, ownerReferences: controller(kind, name.replace(/-(db|oidc)$/, ''), uid) }, data: { password: 'sha256:1' },
});
const secrets = [secretOf('recipes-db', 'DatabaseClaim', 'claim-uid'), secretOf('recipes-oidc', 'OIDCClient', 'client-uid')];


const env = (d: KubeObject) => Object.fromEntries((d.spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value]));
const published = { claim: { schema: 'fh_apps_recipes_1a2b', database: 'fh' }, client: { clientId: 'recipes-7f', issuerUrl: 'https://id.family.test' } };

describe('the Service\'s Deployment waits for what its children publish', () => {
  it('waits for the Secrets first, naming them', async () => {
    const o = await observe(service, cacheContext([hub, claim({}), client({})]));
    expect(o.missingSecrets).toEqual(['recipes-db', 'recipes-oidc']);
    expect(waitingFor(o)).toBe('Secrets recipes-db, recipes-oidc');
  });

  it('with the Secrets written but the statuses not yet: waits for the schema and the client id', async () => {
    const o = await observe(service, cacheContext([hub, claim({}), client({}), ...secrets]));
    expect(o.missingSecrets).toEqual([]);
    expect(waitingFor(o)).toBe('the schema of DatabaseClaim recipes and the client id of OIDCClient recipes');
    const half = await observe(service, cacheContext([hub, claim(published.claim), client({}), ...secrets]));
    expect(waitingFor(half)).toBe('the client id of OIDCClient recipes');
  });

  it('once both are published, nothing is missing and the first Deployment already carries every fact', async () => {
    const o = await observe(service, cacheContext([hub, claim(published.claim), client(published.client), ...secrets]));
    expect(waitingFor(o)).toBe('');
    expect(env(deploymentOf(o.input, o.hub, o.facts))).toMatchObject({
      DATABASE_SCHEMA: 'fh_apps_recipes_1a2b', DATABASE_NAME: 'fh', OIDC_CLIENT_ID: 'recipes-7f', OIDC_ISSUER: 'https://id.family.test',
    });
  });
});
