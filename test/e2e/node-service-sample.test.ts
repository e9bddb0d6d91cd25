// The Service sample (config/samples/service.yaml) the way Argo CD syncs it,
// on a real node: its pods run (kubelet, containerd), so the Service becomes
// Ready with its database, OIDC client and Route, which a plain control plane
// cannot do (test/e2e/status-conformance.test.ts proves the other samples).
// Then the GitOps no-drift proof for it: a server-side dry-run apply by
// another field manager changes nothing, the operator owns only status and
// its finalizer, and no child carries Argo CD's tracking label or
// annotation. Its Healthy / Current object is exported as Argo CD health
// testdata (FAMILYHUB_EXPORT_TESTDATA=1). Needs root (skipped otherwise).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { buildProjectImage } from '../../hack/images/images.js';
import { installGatewayCrds } from '../../hack/local/gateway-crds.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { BRIDGE_ADDRESS, POD_CIDR, startCluster, type Cluster } from '../../hack/local/node.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { workDir } from '../../hack/local/process.js';
import { startTraefik, type Traefik } from '../../hack/local/traefik.js';
import '../../src/controllers/route/reconciler.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { registerResource } from '../../src/core/resources.js';
import { HEALTH_DIR, NODE_SUITE_FILES, writeKindTestdata } from '../support/argocd-testdata.js';
import { ARGO_ANNOTATION, ARGO_LABEL, descendants, operatorFields, trackedSample } from '../support/gitops.js';
import { API, condition, isReady, namespace, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { applyTlsSecret, domainCertificate } from '../support/tls.js';
import { goTool } from '../support/tools.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

// Kinds the walk over the Service's descendants lists that no controller here declares.
registerResource({ apiVersion: 'apps/v1', kind: 'ReplicaSet', plural: 'replicasets', namespaced: true });
registerResource({ apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: true });

const NS = 'family';
const GW_NS = 'gateway';
const isRoot = process.getuid?.() === 0;
const EXPORT = process.env.FAMILYHUB_EXPORT_TESTDATA === '1';
const APP_NAME = 'familyhub-samples';

// The sample's app, standing in for ghcr.io/family/recipes (no registry
// here): it answers the sample's readiness probe on /healthz.
const APP = `const http=require('http');
const srv=http.createServer((q,s)=>{s.end(q.url==='/healthz'?'ok':JSON.stringify({url:process.env.PUBLIC_URL}))});
srv.listen(Number(process.env.PORT));
process.on('SIGTERM',()=>srv.close(()=>process.exit(0)));`;

const sample = (file: string) => trackedSample(file, NS, APP_NAME);

describe.skipIf(!isRoot)('the Service sample on a real node: Ready, Healthy / Current, no drift', () => {
  let cluster: Cluster;
  let kube: KubeClient;
  let pg: LocalPostgres;
  let idp: DevIdp;
  let traefik: Traefik;
  let op: RunningOperator;
  let luahealth: string;
  let kstatus: string;
  let svcSample: KubeObject;
  const tmp = workDir('node-service-sample');
  const get = (kind: string, name: string) => kube.get(API, kind, NS, name);

  beforeAll(async () => {
    luahealth = goTool('luahealth');
    kstatus = goTool('kstatus');
    cluster = await startCluster({ audit: false });
    kube = new KubeClient(cluster.cp.kubeConfig);
    const image = await buildProjectImage({ from: 'head' });
    await cluster.node.importImage(image.archive);
    [pg, idp] = await Promise.all([startPostgres({ podAccess: { address: BRIDGE_ADDRESS, cidr: POD_CIDR } }), startDevIdp({ allowedDomain: 'example.org' })]);
    await installCrds(cluster.cp.kubeConfig);
    await installGatewayCrds(cluster.cp.kubeConfig, ['gateway-api', 'traefik']);
    await installRbac(cluster.cp.kubeConfig);
    await Promise.all([namespace(kube, NS), namespace(kube, GW_NS)]);
    traefik = await startTraefik(cluster.cp);
    const cert = domainCertificate('family.example.org');
    await applyTlsSecret(kube, GW_NS, cert);
    await secret(kube, NS, 'postgres-admin', { username: pg.user, password: pg.password });
    await secret(kube, NS, 'idp-token', { token: idp.initialAccessToken });
    // The sample FamilyHub, its connections pointed at what runs here (no Redis, Vault or runtime services).
    const h = sample('familyhub.yaml');
    const { redis: _redis, vault: _vault, ...spec } = h.spec;
    await kube.apply({
      ...h,
      spec: {
        ...spec,
        postgres: { ...spec.postgres, host: BRIDGE_ADDRESS, port: pg.port, database: pg.database, sslMode: 'disable' },
        identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
        gateway: { ...spec.gateway, gatewayClassName: 'traefik', listeners: { httpPort: traefik.httpPort, httpsPort: traefik.httpsPort }, authService: { url: 'http://127.0.0.1:9' } },
        runtime: { image: spec.runtime.image },
      },
    }, { fieldManager: 'e2e-test' });
    op = await startOperator({
      kubeconfigPath: await cluster.cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
      name: 'operator-node-service-sample',
      env: { FAMILYHUB_LEADER_ELECTION: 'false', FAMILYHUB_RECHECK_MS: '1000', FAMILYHUB_DEPENDENCY_RETRY_MS: '2000' },
    });
    // The sample as a GitOps repository holds it, with an image this node has
    // (and the command that image needs to serve the sample's probe).
    const s = sample('service.yaml');
    svcSample = { ...s, spec: { ...s.spec, image: image.ref, command: ['node', '-e', APP] } };
  }, 900_000);

  afterAll(async () => {
    await op?.stop();
    await traefik?.stop();
    await cluster?.stop();
    await Promise.allSettled([idp?.stop(), pg?.stop()]);
  }, 120_000);

  it('becomes Ready with its database, OIDC client, pods and Route: Argo CD Healthy, kstatus Current', async () => {
    await kube.apply(svcSample, { fieldManager: 'e2e-test' });
    const o = await waitForObject(kube, { kind: 'Service', namespace: NS, name: 'recipes' }, 'Ready', isReady, 240_000);
    for (const c of ['DatabaseReady', 'IdentityReady', 'Available', 'RouteReady']) expect(condition(o, c), c).toMatchObject({ status: 'True' });
    expect(o.status.readyReplicas).toBe(2);
    expect(condition(o, 'Reconciling')).toMatchObject({ status: 'False', reason: 'Idle' });
    expect(condition(o, 'Stalled')).toBeUndefined();

    const file = path.join(tmp, 'recipes.json');
    writeFileSync(file, JSON.stringify(o));
    const health = JSON.parse(execFileSync(luahealth, ['run', path.join(HEALTH_DIR, 'Service', 'health.lua'), file], { encoding: 'utf8' }).trim()) as { status: string; message: string };
    const ks = JSON.parse(execFileSync(kstatus, [file], { encoding: 'utf8' }).trim()) as { status: string; message: string };
    expect(health.status, JSON.stringify(o.status)).toBe('Healthy');
    expect(health.message).not.toBe('');
    expect(ks.status, ks.message).toBe('Current');
    if (EXPORT) {
      const files = NODE_SUITE_FILES.Service!;
      writeKindTestdata('Service', [{ file: 'healthy_ready', obj: o, health: { status: health.status, message: health.message } }], (f) => files.includes(f));
    }
  });

  it('GitOps: a dry-run apply of the sample by another field manager changes nothing; the operator owns only status and its finalizer', async () => {
    const live = (await get('Service', 'recipes'))!;
    expect(isReady(live)).toBe(true);
    const dry = await kube.apply(svcSample, { fieldManager: 'argocd-controller', force: false, dryRun: true });
    expect(dry.metadata.generation, 'a dry-run apply would change the spec').toBe(live.metadata.generation);
    expect(isDeepStrictEqual(dry.spec, live.spec), `spec after dry-run apply: ${JSON.stringify(dry.spec)} vs ${JSON.stringify(live.spec)}`).toBe(true);
    expect(dry.metadata.labels).toEqual(live.metadata.labels);
    expect(dry.metadata.annotations).toEqual(live.metadata.annotations);

    const owned = operatorFields(live);
    expect(owned.writesStatus).toBe(true);
    expect(owned.outsideStatus, 'fields the operator owns outside status').toEqual([]);
  });

  it('GitOps: no child of the Service (and their children) carries Argo CD\'s tracking label or annotation', async () => {
    const kinds: Array<[string, string]> = [
      ['v1', 'Secret'], ['v1', 'Service'], ['apps/v1', 'Deployment'], ['apps/v1', 'ReplicaSet'], ['v1', 'Pod'],
      ['gateway.networking.k8s.io/v1', 'HTTPRoute'], ['traefik.io/v1alpha1', 'Middleware'],
      [API, 'DatabaseClaim'], [API, 'OIDCClient'], [API, 'Route'],
    ];
    const children = await descendants(kube, [(await get('Service', 'recipes'))!.metadata.uid], kinds, NS);
    const found = children.map((c) => `${c.kind}/${c.metadata.name}`);
    expect(found).toEqual(expect.arrayContaining([
      'DatabaseClaim/recipes', 'OIDCClient/recipes', 'Route/recipes', 'Deployment/recipes', 'Service/recipes',
      'Secret/recipes-db', 'Secret/recipes-oidc', 'HTTPRoute/recipes',
    ]));
    // One rollout: the first Deployment already carries the children's facts
    // (it once rolled again a second later, when the claim's schema and the
    // client id arrived after their Secrets).
    const sets = children.filter((c) => c.kind === 'ReplicaSet');
    expect(sets.map((r) => r.metadata.annotations?.['deployment.kubernetes.io/revision'])).toEqual(['1']);
    const pods = children.filter((c) => c.kind === 'Pod');
    expect(pods, pods.map((p) => `${p.metadata.name} hash ${p.metadata.labels?.['pod-template-hash']} deleting ${p.metadata.deletionTimestamp ?? '-'}`).join('; ')).toHaveLength(2);
    for (const c of children) {
      expect(c.metadata.labels?.[ARGO_LABEL], `${c.kind}/${c.metadata.name}`).toBeUndefined();
      expect(c.metadata.annotations?.[ARGO_ANNOTATION], `${c.kind}/${c.metadata.name}`).toBeUndefined();
    }
  });
});
