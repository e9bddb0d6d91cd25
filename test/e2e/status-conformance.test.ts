// What Argo CD (deploy/argocd/health, run in gopher-lua by hack/go/luahealth)
// and kstatus (sigs.k8s.io/cli-utils, run by hack/go/kstatus) make of real
// FamilyHub objects, and the GitOps no-drift proof: the samples applied the
// way Argo CD applies them (its tracking label and annotation set), reconciled
// to Ready by the running operator on a plain control plane with PostgreSQL,
// the dev IdP and Traefik.
//
// Every kind is driven into three states: Ready (Healthy / Current), not yet
// done (Progressing / InProgress: unobserved by any controller, or waiting for
// something on its way) and a terminal error (Degraded / Failed: Stalled).
// FAMILYHUB_EXPORT_TESTDATA=1 rewrites deploy/argocd/health/*/*/testdata and
// health_test.yaml from these live objects (test/unit/argocd-health.test.ts
// checks the checked-in files).
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installGatewayCrds } from '../../hack/local/gateway-crds.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { publishBackend } from '../../hack/local/netns-backend.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { workDir } from '../../hack/local/process.js';
import { startTraefik, type Traefik } from '../../hack/local/traefik.js';
// Registers Gateway, HTTPRoute and Middleware with the client (the children listed below).
import '../../src/controllers/route/reconciler.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { API, condition, isReady, namespace, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { HEALTH_DIR, NODE_SUITE_FILES, writeKindTestdata } from '../support/argocd-testdata.js';
import { ARGO_ANNOTATION, ARGO_LABEL, descendants, operatorFields, tracked as trackedWith, trackedSample } from '../support/gitops.js';
import { applyTlsSecret, domainCertificate } from '../support/tls.js';
import { goTool } from '../support/tools.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const NS = 'family';
const GW_NS = 'gateway';
const KINDS = ['FamilyHub', 'DatabaseClaim', 'OIDCClient', 'Route', 'Service'] as const;
type Kind = (typeof KINDS)[number];
const EXPORT = process.env.FAMILYHUB_EXPORT_TESTDATA === '1';
const APP = 'familyhub-samples';

type Health = { status: string; message: string };
type KStatus = { kind: string; name: string; status: string; message: string };
/** The state a test drove the object into, and what both tools must call it. */
type State = { file: string; health: 'Healthy' | 'Progressing' | 'Degraded' | 'Suspended'; kstatus: 'Current' | 'InProgress' | 'Failed' };
const READY = (name: string): State => ({ file: `healthy_${name}`, health: 'Healthy', kstatus: 'Current' });
const CONVERGING = (name: string): State => ({ file: `progressing_${name}`, health: 'Progressing', kstatus: 'InProgress' });
const TERMINAL = (name: string): State => ({ file: `degraded_${name}`, health: 'Degraded', kstatus: 'Failed' });
// kstatus has no "suspended": its last rule reads Ready=False as InProgress (docs/argocd.md).
const SUSPENDED = (name: string): State => ({ file: `suspended_${name}`, health: 'Suspended', kstatus: 'InProgress' });

let pg: LocalPostgres;
let idp: DevIdp;
let cp: ControlPlane;
let kube: KubeClient;
let traefik: Traefik;
let op: RunningOperator | undefined;
let luahealth: string;
let kstatus: string;
const tmp = workDir('status-conformance');
/** Exported objects per kind: testdata file → expected health. */
const exported = new Map<Kind, Array<{ state: State; obj: KubeObject; health: Health }>>();

const sample = (file: string) => trackedSample(file, NS, APP);
const tracked = (o: KubeObject) => trackedWith(o, APP);

/** The sample FamilyHub, its connections pointed at what runs here (no Redis, Vault or runtime services). */
function sampleHub(): KubeObject {
  const h = sample('familyhub.yaml');
  const { redis: _redis, vault: _vault, ...spec } = h.spec;
  return {
    ...h,
    spec: {
      ...spec,
      postgres: { ...spec.postgres, host: pg.host, port: pg.port, database: pg.database, sslMode: 'disable' },
      identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
      gateway: { ...spec.gateway, gatewayClassName: 'traefik', listeners: { httpPort: traefik.httpPort, httpsPort: traefik.httpsPort }, authService: { url: 'http://127.0.0.1:9' } },
      runtime: { image: spec.runtime.image },
    },
  };
}

function hubLike(name: string, patch: Record<string, unknown>): KubeObject {
  const h = sampleHub();
  return { ...h, metadata: { name, namespace: NS }, spec: { ...h.spec, ...patch } };
}

const apply = (o: KubeObject) => kube.apply(o, { fieldManager: 'e2e-test' });
const get = (kind: string, name: string) => kube.get(API, kind, NS, name);
const observed = (o: KubeObject) => o.status?.observedGeneration === o.metadata.generation;
const wait = (kind: Kind, name: string, what: string, pred: (o: KubeObject) => boolean) =>
  waitForObject(kube, { kind, namespace: NS, name }, what, pred, 90_000);
const stalled = (reason: string) => (o: KubeObject) => observed(o) && condition(o, 'Stalled')?.status === 'True' && condition(o, 'Stalled')?.reason === reason;
const reconciling = (o: KubeObject) => observed(o) && condition(o, 'Reconciling')?.status === 'True';

function writeJson(objs: KubeObject[]): string[] {
  return objs.map((o, i) => {
    const f = path.join(tmp, `${Date.now()}-${i}-${o.kind}-${o.metadata.name}.json`);
    writeFileSync(f, JSON.stringify(o));
    return f;
  });
}

function healthOf(kind: Kind, objs: KubeObject[]): Health[] {
  const out = execFileSync(luahealth, ['run', path.join(HEALTH_DIR, kind, 'health.lua'), ...writeJson(objs)], { encoding: 'utf8' });
  return out.trim().split('\n').map((l) => {
    const { status, message } = JSON.parse(l) as Health;
    return { status, message };
  });
}

function kstatusOf(objs: KubeObject[]): KStatus[] {
  const out = execFileSync(kstatus, writeJson(objs), { encoding: 'utf8' });
  return out.trim().split('\n').map((l) => JSON.parse(l) as KStatus);
}

/** Runs both tools on the live object, checks them against the state, and keeps it for export. */
function expectState(obj: KubeObject, state: State): Health {
  const kind = obj.kind as Kind;
  const [health] = healthOf(kind, [obj]);
  const [ks] = kstatusOf([obj]);
  const where = `${kind} ${obj.metadata.name} (${state.file}): ${JSON.stringify(obj.status ?? null)}`;
  expect(health!.status, `Argo CD health of ${where}`).toBe(state.health);
  expect(ks!.status, `kstatus of ${where}`).toBe(state.kstatus);
  expect(health!.message, 'the health message says why').not.toBe('');
  const list = exported.get(kind) ?? [];
  if (!list.some((e) => e.state.file === state.file)) list.push({ state, obj, health: health! });
  exported.set(kind, list);
  return health!;
}

function writeTestdata(): void {
  for (const kind of KINDS) {
    const nodeFiles = NODE_SUITE_FILES[kind] ?? [];
    writeKindTestdata(kind, (exported.get(kind) ?? []).map((e) => ({ file: e.state.file, obj: e.obj, health: e.health })), (f) => !nodeFiles.includes(f));
  }
}

async function ensureOperator(): Promise<void> {
  op ??= await startOperator({
    kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
    env: { FAMILYHUB_LEADER_ELECTION: 'false', FAMILYHUB_RECHECK_MS: '1000', FAMILYHUB_STALLED_RETRY_MS: '600000' },
  });
}

// The manifests as a GitOps repository holds them; the Service sample needs a node to be Ready.
let samples: KubeObject[];
const readySamples = () => samples.filter((s) => s.kind !== 'Service');

beforeAll(async () => {
  luahealth = goTool('luahealth');
  kstatus = goTool('kstatus');
  [pg, idp, cp] = await Promise.all([startPostgres(), startDevIdp({ allowedDomain: 'example.org' }), startControlPlane({ audit: false })]);
  kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installGatewayCrds(cp.kubeConfig, ['gateway-api', 'traefik']);
  await installRbac(cp.kubeConfig);
  await Promise.all([namespace(kube, NS), namespace(kube, GW_NS)]);
  traefik = await startTraefik(cp);
  const cert = domainCertificate('family.example.org');
  await applyTlsSecret(kube, GW_NS, cert);
  // The Route sample's backend: a Service with an endpoint, so Traefik resolves
  // the reference (no request is sent to it; the apiserver refuses loopback
  // endpoints, so a documentation address).
  await publishBackend(kube, { address: '192.0.2.1', port: 9 }, { namespace: NS, name: 'photos', servicePort: 8080 });
  await secret(kube, NS, 'postgres-admin', { username: pg.user, password: pg.password });
  await secret(kube, NS, 'idp-token', { token: idp.initialAccessToken });
  // An extension lives in one schema per database: the Service sample's
  // claim would race the DatabaseClaim sample for pgcrypto (the loser is
  // Stalled with SchemaConflict), so its claim asks for none here.
  const svc = sample('service.yaml');
  svc.spec.needs.database.extensions = [];
  samples = [sampleHub(), ...['databaseclaim.yaml', 'oidcclient.yaml', 'route.yaml'].map(sample), svc];
}, 600_000);

afterAll(async () => {
  // Only a complete run is exported: every kind Healthy, Progressing and
  // Degraded (a Service Progressing, Degraded and Suspended: its Healthy case
  // comes from test/e2e/node-service-sample.test.ts, on a node).
  const complete = KINDS.every((k) => new Set((exported.get(k) ?? []).map((e) => e.state.health)).size === 3);
  if (EXPORT && complete) writeTestdata();
  await op?.stop();
  await traefik?.stop();
  await cp?.stop();
  await idp?.stop();
  await pg?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('status conformance: Argo CD health (gopher-lua) and kstatus on live objects', () => {
  it('an object no controller has seen yet is Progressing / InProgress, not Current (the CRD defaults status.observedGeneration to 0)', async () => {
    for (const s of samples) await apply(s);
    for (const s of samples) {
      const o = (await get(s.kind!, s.metadata.name))!;
      expect(o.status).toEqual({ observedGeneration: 0 });
      expectState(o, CONVERGING('unobserved'));
    }
    const [ks] = kstatusOf([(await get('DatabaseClaim', 'photos'))!]);
    expect(ks!.message).toMatch(/generation is 1, but latest observed generation is 0/);
  });

  it('Ready for the current generation: Healthy / Current', async () => {
    await ensureOperator();
    for (const s of readySamples()) {
      const o = await wait(s.kind as Kind, s.metadata.name, 'Ready', isReady);
      expect(condition(o, 'Reconciling')).toMatchObject({ status: 'False', reason: 'Idle' });
      expect(condition(o, 'Stalled')).toBeUndefined();
      expectState(o, READY('ready'));
    }
    // A Service is not Ready here: its Deployment needs the deployment
    // controller and a node, which a plain control plane does not run
    // (test/e2e/node-operator.test.ts has Services Ready on a real node).
  });

  it('work under way: Reconciling=True beside Ready=False gives Progressing / InProgress', async () => {
    // The Service sample: its Deployment waits for a deployment controller and a node this control plane does not run.
    const svc = await wait('Service', 'recipes', 'Reconciling', (o) => reconciling(o) && condition(o, 'Available')?.reason === 'Progressing');
    expect(condition(svc, 'Ready')?.status).toBe('False');
    expect(condition(svc, 'Stalled')).toBeUndefined();
    expect(expectState(svc, CONVERGING('deployment_not_observed')).message).toContain('Available');

    // A hub whose database server refuses connections: re-checked until it answers.
    await apply(hubLike('waiting', { postgres: { ...sampleHub().spec.postgres, port: 1 }, gateway: { gatewayName: 'elsewhere', gatewayNamespace: GW_NS, gatewayClassName: 'nobody', provider: 'traefik', listeners: { httpPort: 8000, httpsPort: 8443 }, authService: { url: 'http://127.0.0.1:9' } } }));
    const hub = await wait('FamilyHub', 'waiting', 'Reconciling', (o) => reconciling(o) && condition(o, 'PostgresReady')?.status === 'False');
    expect(expectState(hub, CONVERGING('postgres_unavailable')).message).toContain(condition(hub, 'PostgresReady')!.reason);

    // A Route on a gateway no controller serves: its HTTPRoute is not accepted yet.
    await apply(tracked({ apiVersion: API, kind: 'Route', metadata: { name: 'pending', namespace: NS },
      spec: { familyHubRef: { name: 'waiting' }, hostname: 'pending.family.example.org', backendRef: { name: 'photos', port: 8080 } } }));
    const route = await wait('Route', 'pending', 'Reconciling', (o) => reconciling(o) && condition(o, 'GatewayAccepted')?.status === 'False');
    expectState(route, CONVERGING('gateway_not_accepted'));

    // A change of spec the operator has not observed yet (it is stopped meanwhile).
    await op!.stop();
    op = undefined;
    const claim = await apply({ ...sample('databaseclaim.yaml'), spec: { ...sample('databaseclaim.yaml').spec, extensions: [] } });
    expect(claim.metadata.generation).toBe(2);
    expectState((await get('DatabaseClaim', 'photos'))!, CONVERGING('generation_not_observed'));
    await ensureOperator();
    await apply(sample('databaseclaim.yaml'));
    await wait('DatabaseClaim', 'photos', 'Ready at generation 3', (o) => isReady(o) && o.metadata.generation === 3);
  });

  it('terminal errors: Stalled=True beside Degraded gives Degraded / Failed', async () => {
    // FamilyHub: its platform ConfigMap's name is taken by someone else.
    await kube.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'rogue-platform', namespace: NS }, data: { domain: 'someone.else' } }, { fieldManager: 'someone-else' });
    await apply(hubLike('rogue', { gateway: undefined }));
    // DatabaseClaim: an extension the hub does not allow (the case: InProgress forever before).
    await apply(tracked({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name: 'geo', namespace: NS }, spec: { familyHubRef: { name: 'home' }, schemaName: 'geo', extensions: ['postgis'] } }));
    // OIDCClient: its credentials Secret belongs to someone else.
    await secret(kube, NS, 'taken-oidc', { client_id: 'not-ours' });
    await apply(tracked({ ...sample('oidcclient.yaml'), metadata: { name: 'taken', namespace: NS } }));
    // Route: a hostname outside the hub's domain.
    await apply(tracked({ apiVersion: API, kind: 'Route', metadata: { name: 'outside', namespace: NS }, spec: { familyHubRef: { name: 'home' }, hostname: 'photos.example.com', backendRef: { name: 'photos', port: 8080 } } }));
    // Service: its Deployment's name is taken.
    await kube.apply({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'taken', namespace: NS },
      spec: { replicas: 0, selector: { matchLabels: { app: 'taken' } }, template: { metadata: { labels: { app: 'taken' } }, spec: { containers: [{ name: 'x', image: 'someone/else:1' }] } } } }, { fieldManager: 'someone-else' });
    await apply(tracked({ apiVersion: API, kind: 'Service', metadata: { name: 'taken', namespace: NS }, spec: { familyHubRef: { name: 'home' }, image: 'ghcr.io/family/taken:1.0.0', port: 8080, host: 'taken.family.example.org', replicas: 0 } }));
    // OIDCClient: a scope the IdP does not offer (Progressing forever before: a plain False condition).
    await apply(tracked({ ...sample('oidcclient.yaml'), metadata: { name: 'odd-scope', namespace: NS }, spec: { ...sample('oidcclient.yaml').spec, optionalScopes: ['superpowers'] } }));
    // Service: its DatabaseClaim is stalled on an extension the hub refuses; the Service is stalled with it.
    await apply(tracked({ apiVersion: API, kind: 'Service', metadata: { name: 'geo-app', namespace: NS }, spec: { familyHubRef: { name: 'home' }, image: 'ghcr.io/family/geo:1.0.0', port: 8080, host: 'geo.family.example.org', needs: { database: { enabled: true, extensions: ['postgis'] } } } }));

    const cases: Array<[Kind, string, string, string]> = [
      ['FamilyHub', 'rogue', 'ChildConflict', 'child_conflict'],
      ['DatabaseClaim', 'geo', 'ExtensionNotAllowed', 'extension_not_allowed'],
      ['OIDCClient', 'taken', 'SecretConflict', 'secret_conflict'],
      ['Route', 'outside', 'HostnameOutsideDomain', 'hostname_outside_domain'],
      ['Service', 'taken', 'ChildConflict', 'child_conflict'],
      ['OIDCClient', 'odd-scope', 'UnknownScope', 'unknown_scope'],
      ['Service', 'geo-app', 'ExtensionNotAllowed', 'database_extension_not_allowed'],
    ];
    for (const [kind, name, reason, file] of cases) {
      const o = await wait(kind, name, `Stalled ${reason}`, stalled(reason));
      expect(condition(o, 'Degraded')).toMatchObject({ status: 'True', reason });
      expect(condition(o, 'Ready')).toMatchObject({ status: 'False', reason });
      expect(condition(o, 'Reconciling')).toMatchObject({ status: 'False', reason: 'Stalled' });
      const h = expectState(o, TERMINAL(file));
      expect(h.message).toContain(reason);
    }
    // What the refusal learnt stays beside it: the IdP answered, only the scope is missing.
    const odd = (await get('OIDCClient', 'odd-scope'))!;
    expect(condition(odd, 'IdPReachable')).toMatchObject({ status: 'True' });
    expect(condition(odd, 'ClientReady')).toMatchObject({ status: 'False', reason: 'UnknownScope', message: expect.stringContaining('superpowers') });
    const geo = (await get('Service', 'geo-app'))!;
    expect(condition(geo, 'DatabaseReady')).toMatchObject({ status: 'False', reason: 'ExtensionNotAllowed', message: expect.stringMatching(/^DatabaseClaim geo-app: .*postgis/) });
  });

  it('a Service that applies nothing on purpose (plan mode, spec.suspend): Suspended / InProgress, nothing Degraded, nothing created', async () => {
    const base = { familyHubRef: { name: 'home' }, image: 'ghcr.io/family/later:1.0.0', port: 8080, needs: { database: { enabled: true } } };
    await apply(tracked({ apiVersion: API, kind: 'Service', metadata: { name: 'planned', namespace: NS, annotations: { 'familyhub.dev/plan': 'true' } }, spec: { ...base, host: 'planned.family.example.org' } }));
    await apply(tracked({ apiVersion: API, kind: 'Service', metadata: { name: 'paused', namespace: NS }, spec: { ...base, host: 'paused.family.example.org', suspend: true } }));
    for (const [name, reason, file] of [['planned', 'PlanMode', 'plan_mode'], ['paused', 'Suspended', 'suspended']] as const) {
      const o = await wait('Service', name, `Suspended ${reason}`, (x) => observed(x) && condition(x, 'Suspended')?.status === 'True');
      expect(condition(o, 'Suspended')).toMatchObject({ reason });
      expect(condition(o, 'Reconciling')).toMatchObject({ status: 'False', reason });
      expect(condition(o, 'Degraded')).toMatchObject({ status: 'False' });
      expect(condition(o, 'Stalled')).toBeUndefined();
      expect(o.status.plan.summary).toMatch(/1 to create/);
      expect(expectState(o, SUSPENDED(file)).message).toContain(reason);
      expect(await get('DatabaseClaim', name)).toBeUndefined();
    }
  });

  // In export mode the files are about to be rewritten from this run.
  it.skipIf(EXPORT)('the checked-in testdata still pass their health_test.yaml in gopher-lua', () => {
    const out = execFileSync(luahealth, ['test', HEALTH_DIR], { encoding: 'utf8' });
    expect(out).toMatch(/\b(\d+) passed, 0 failed/);
  });
});

describe('GitOps: no drift between the samples and what the operator leaves', () => {
  it('a server-side dry-run apply of each sample by another field manager changes nothing, without conflicts', async () => {
    for (const s of readySamples()) {
      const live = (await get(s.kind!, s.metadata.name))!;
      expect(isReady(live)).toBe(true);
      const dry = await kube.apply(s, { fieldManager: 'argocd-controller', force: false, dryRun: true });
      expect(dry.metadata.generation, `${s.kind}/${s.metadata.name}: a dry-run apply would change the spec`).toBe(live.metadata.generation);
      expect(isDeepStrictEqual(dry.spec, live.spec), `${s.kind}/${s.metadata.name} spec after dry-run apply: ${JSON.stringify(dry.spec)} vs ${JSON.stringify(live.spec)}`).toBe(true);
      expect(dry.metadata.labels).toEqual(live.metadata.labels);
      expect(dry.metadata.annotations).toEqual(live.metadata.annotations);
    }
  });

  it('the operator owns nothing of a sample outside its status and its finalizer', async () => {
    for (const s of readySamples()) {
      const live = (await get(s.kind!, s.metadata.name))!;
      const owned = operatorFields(live);
      expect(owned.writesStatus, `${s.kind}/${s.metadata.name}: the operator writes status`).toBe(true);
      expect(owned.outsideStatus, `${s.kind}/${s.metadata.name}: fields the operator owns outside status`).toEqual([]);
    }
  });

  it('no child of a sample carries Argo CD\'s tracking label or annotation (Argo CD would prune it or show it out of sync)', async () => {
    const roots = (await Promise.all(samples.map((s) => get(s.kind!, s.metadata.name)))).map((o) => o!.metadata.uid);
    const kinds: Array<[string, string]> = [
      ['v1', 'ConfigMap'], ['v1', 'Secret'], ['v1', 'Service'], ['apps/v1', 'Deployment'],
      ['gateway.networking.k8s.io/v1', 'HTTPRoute'], ['gateway.networking.k8s.io/v1', 'Gateway'], ['traefik.io/v1alpha1', 'Middleware'],
      [API, 'DatabaseClaim'], [API, 'OIDCClient'], [API, 'Route'],
    ];
    const children = await descendants(kube, roots, kinds);
    const found = children.map((c) => `${c.kind}/${c.metadata.name}`);
    // What the samples reconcile into: the hub's ConfigMap, the claim's and client's Secrets, the Route's HTTPRoute, the Service's claim.
    expect(found).toEqual(expect.arrayContaining(['ConfigMap/home-platform', 'Secret/photos-oidc', 'HTTPRoute/photos', 'DatabaseClaim/recipes']));
    for (const c of children) {
      expect(c.metadata.labels?.[ARGO_LABEL], `${c.kind}/${c.metadata.name}`).toBeUndefined();
      expect(c.metadata.annotations?.[ARGO_ANNOTATION], `${c.kind}/${c.metadata.name}`).toBeUndefined();
    }
  });
});

