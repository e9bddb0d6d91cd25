// Per-object metrics through the running operator's /metrics:
// familyhub_object_ready{kind,namespace,name,condition} follows each object's
// Ready condition and disappears with the object, and
// familyhub_credentials_expiry_timestamp_seconds carries a DatabaseClaim's
// Vault lease expiry and an OIDCClient's next scheduled rotation, and
// familyhub_object_suspended marks a Service that applies nothing on purpose. Real
// control plane, PostgreSQL, OpenBao and development IdP; the operator as a
// process under the RBAC of config/rbac.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { waitFor } from '../../hack/local/process.js';
import { parseDuration } from '../../src/crds/duration.js';
import { API, condition, isReady, secret, waitForObject } from '../support/kube.js';
import { NS, claim, startDbEnv, type DbEnv } from './databaseclaim-harness.js';

let env: DbEnv;
let idp: DevIdp;

interface Sample { name: string; labels: Record<string, string>; value: number }

/** The exposition text as samples (label values here never hold quotes or commas). */
async function scrape(): Promise<Sample[]> {
  const text = await env.op.metrics();
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(l)!;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    return { name: m[1]!, labels, value: Number(m[3]) };
  });
}

const readySeries = (all: Sample[], kind: string, name: string) =>
  Object.fromEntries(all.filter((s) => s.name === 'familyhub_object_ready' && s.labels.kind === kind && s.labels.namespace === NS && s.labels.name === name).map((s) => [s.labels.condition!, s.value]));
const suspendedSeries = (all: Sample[], kind: string, name: string) =>
  all.find((s) => s.name === 'familyhub_object_suspended' && s.labels.kind === kind && s.labels.namespace === NS && s.labels.name === name)?.value;
const expirySeries = (all: Sample[], kind: string, name: string) =>
  all.find((s) => s.name === 'familyhub_credentials_expiry_timestamp_seconds' && s.labels.kind === kind && s.labels.namespace === NS && s.labels.name === name)?.value;

beforeAll(async () => {
  idp = await startDevIdp({ allowedDomain: 'example.org' });
  env = await startDbEnv({ env: { FAMILYHUB_CONTROLLERS: 'databaseclaim,oidcclient,service', FAMILYHUB_IDP_RETRY_MS: '1000' } });
  await secret(env.kube, NS, 'idp-token', { token: idp.initialAccessToken });
  // The harness's hub with a reachable IdP, so OIDCClients register.
  const hub = (await env.kube.get(API, 'FamilyHub', NS, 'home'))!;
  await env.kube.apply({
    apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: NS },
    spec: { ...hub.spec, identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } } },
  }, { fieldManager: 'e2e-test' });
});

afterAll(async () => {
  await env?.stop();
  await idp?.stop();
});

describe('per-object metrics on /metrics', () => {
  it('a Ready DatabaseClaim: Ready series True=1, False=0, Unknown=0, and its lease expiry as a timestamp', async () => {
    await env.kube.apply(claim('photos', { extensions: ['pgcrypto'] }), { fieldManager: 'e2e-test' });
    const o = await waitForObject(env.kube, { kind: 'DatabaseClaim', namespace: NS, name: 'photos' }, 'Ready', isReady, 90_000);
    expect(o.status.leaseExpiresAt).toBeTruthy();
    let all: Sample[] = [];
    // The status write reaches the cache through the watch a moment later.
    await waitFor('photos in /metrics', async () => expirySeries(all = await scrape(), 'DatabaseClaim', 'photos') !== undefined, { timeoutMs: 30_000 });
    const latest = (await env.kube.get(API, 'DatabaseClaim', NS, 'photos'))!;
    expect(readySeries(all, 'DatabaseClaim', 'photos')).toEqual({ True: 1, False: 0, Unknown: 0 });
    // Renewals move the lease; the metric is the one in status at scrape time (or the renewal after it).
    expect(expirySeries(all, 'DatabaseClaim', 'photos')! * 1000).toBeGreaterThanOrEqual(Date.parse(o.status.leaseExpiresAt));
    expect(expirySeries(all, 'DatabaseClaim', 'photos')! * 1000).toBeLessThanOrEqual(Date.parse(latest.status.leaseExpiresAt));
    // Only kinds this process reconciles have series (no FamilyHub controller runs here).
    expect(all.filter((s) => s.name === 'familyhub_object_ready' && s.labels.kind === 'FamilyHub')).toEqual([]);
  });

  it('a DatabaseClaim the hub refuses (extension not allowed): False=1, and no expiry series', async () => {
    await env.kube.apply(claim('maps', { extensions: ['postgis'] }), { fieldManager: 'e2e-test' });
    await waitForObject(env.kube, { kind: 'DatabaseClaim', namespace: NS, name: 'maps' }, 'Ready=False', (o) => condition(o, 'Ready')?.status === 'False');
    let all: Sample[] = [];
    await waitFor('maps False in /metrics', async () => readySeries(all = await scrape(), 'DatabaseClaim', 'maps').False === 1, { timeoutMs: 30_000 });
    expect(readySeries(all, 'DatabaseClaim', 'maps')).toEqual({ True: 0, False: 1, Unknown: 0 });
    expect(expirySeries(all, 'DatabaseClaim', 'maps')).toBeUndefined();
  });

  it('a confidential OIDCClient with rotation.interval: expiry = lastRotatedAt + interval; none without an interval', async () => {
    const client = (name: string, rotation: Record<string, unknown>) => ({
      apiVersion: API, kind: 'OIDCClient', metadata: { name, namespace: NS },
      spec: { familyHubRef: { name: 'home' }, redirectUris: [`https://${name}.example.org/cb`], rotation },
    });
    await env.kube.apply(client('notes', { interval: '720h' }), { fieldManager: 'e2e-test' });
    await env.kube.apply(client('wiki', {}), { fieldManager: 'e2e-test' });
    const notes = await waitForObject(env.kube, { kind: 'OIDCClient', namespace: NS, name: 'notes' }, 'Ready', isReady, 90_000);
    await waitForObject(env.kube, { kind: 'OIDCClient', namespace: NS, name: 'wiki' }, 'Ready', isReady, 90_000);
    let all: Sample[] = [];
    await waitFor('notes expiry in /metrics', async () => expirySeries(all = await scrape(), 'OIDCClient', 'notes') !== undefined, { timeoutMs: 30_000 });
    expect(expirySeries(all, 'OIDCClient', 'notes')).toBe((Date.parse(notes.status.lastRotatedAt) + parseDuration('720h')) / 1000);
    await waitFor('wiki Ready in /metrics', async () => readySeries(all = await scrape(), 'OIDCClient', 'wiki').True === 1, { timeoutMs: 30_000 });
    expect(expirySeries(all, 'OIDCClient', 'wiki')).toBeUndefined();
  });

  it('a suspended Service: familyhub_object_suspended 1 (the alerts on "not Ready" leave it out), 0 once it applies again', async () => {
    const svc = (suspend: boolean) => ({
      apiVersion: API, kind: 'Service', metadata: { name: 'paused', namespace: NS },
      spec: { familyHubRef: { name: 'home' }, image: 'ghcr.io/family/paused:1.0.0', port: 8080, host: 'paused.home.example.org', suspend },
    });
    await env.kube.apply(svc(true), { fieldManager: 'e2e-test' });
    let all: Sample[] = [];
    await waitFor('paused suspended in /metrics', async () => suspendedSeries(all = await scrape(), 'Service', 'paused') === 1, { timeoutMs: 30_000 });
    expect(readySeries(all, 'Service', 'paused')).toEqual({ True: 0, False: 1, Unknown: 0 });
    expect(suspendedSeries(all, 'DatabaseClaim', 'maps')).toBe(0);
    await env.kube.apply(svc(false), { fieldManager: 'e2e-test' });
    await waitFor('paused no longer suspended in /metrics', async () => suspendedSeries(all = await scrape(), 'Service', 'paused') === 0, { timeoutMs: 30_000 });
    await env.kube.delete(API, 'Service', NS, 'paused');
  });

  it('deleting an object removes its series', async () => {
    await env.kube.delete(API, 'DatabaseClaim', NS, 'photos');
    await waitFor('photos gone from the apiserver', async () => !(await env.kube.get(API, 'DatabaseClaim', NS, 'photos')), { timeoutMs: 60_000 });
    let all: Sample[] = [];
    await waitFor('photos gone from /metrics', async () => Object.keys(readySeries(all = await scrape(), 'DatabaseClaim', 'photos')).length === 0, { timeoutMs: 30_000 });
    expect(expirySeries(all, 'DatabaseClaim', 'photos')).toBeUndefined();
    // The others stay.
    expect(readySeries(all, 'DatabaseClaim', 'maps').False).toBe(1);
    expect(readySeries(all, 'OIDCClient', 'notes').True).toBe(1);
  });
});
