// The controller core's contract, with test reconcilers running in-process
// on a real apiserver: a controller that owns another controller's kind sees
// that controller's status writes; a child kind the apiserver does not serve
// is a Degraded condition with backoff, not a silent 500 ms loop; the
// reconciler's status is the whole status (a field it stops reporting is
// removed); a spec that does not parse is Stalled, not retried on a timer.
import pino from 'pino';
import { z } from 'zod';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds } from '../../hack/local/manifests.js';
import { ensureOwned } from '../../src/core/children.js';
import type { ControllerDefinition } from '../../src/core/controller.js';
import { KubeClient, ownerReference } from '../../src/core/kube-client.js';
import { Manager } from '../../src/core/manager.js';
import { ReconcileError, type KubeObject, type Reconciler } from '../../src/core/reconciler.js';
import { registerResource } from '../../src/core/resources.js';
import { resourceTypes } from '../../src/crds/index.js';
import { API, condition, namespace, waitForObject } from '../support/kube.js';

const NS = 'core-v2';
const anySpec = z.record(z.unknown());
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

describe('controller core v2 on a real apiserver', () => {
  let cp: ControlPlane;
  let kube: KubeClient;
  const managers: Manager[] = [];

  const run = async (...defs: ControllerDefinition<any, any>[]) => {
    // Resync far away: whatever a test sees must come from watch events.
    const mgr = new Manager({ kubeConfig: cp.kubeConfig, log, port: 0, bindAddress: '127.0.0.1', controllers: { resyncMs: 10 * 60_000, concurrency: 2, stalledRetryMs: 10 * 60_000 } });
    for (const d of defs) mgr.add(d);
    await mgr.start();
    managers.push(mgr);
    return mgr;
  };

  beforeAll(async () => {
    cp = await startControlPlane({ audit: false });
    kube = new KubeClient(cp.kubeConfig);
    await installCrds(cp.kubeConfig);
    await namespace(kube, NS);
  });

  // Each test's controllers watch the same kinds: stop them before the next test.
  afterEach(async () => {
    for (const m of managers.splice(0)) await m.stop();
  });

  afterAll(async () => {
    await cp?.stop();
  });

  it('a controller that owns another controller\'s kind sees the child\'s status change within a second', async () => {
    const childStatusAt: number[] = [];
    const parentSaw: { at: number; url?: string }[] = [];
    const child: Reconciler<Record<string, unknown>> = {
      name: 'route-test',
      async reconcile(obj) {
        childStatusAt.push(Date.now());
        return { status: { url: `https://${String(obj.spec.hostname)}/` }, conditions: [{ type: 'Accepted', status: 'True', reason: 'Test', message: 'ok' }] };
      },
    };
    const parent: Reconciler<Record<string, unknown>> = {
      name: 'service-test',
      async reconcile(obj, ctx) {
        const route = await ctx.cache.get(resourceTypes.Route, obj.metadata.namespace, obj.metadata.name);
        parentSaw.push({ at: Date.now(), url: route?.status?.url });
        return {};
      },
    };
    await run(
      { resource: resourceTypes.Route, specSchema: anySpec, reconciler: child },
      { resource: resourceTypes.Service, specSchema: anySpec, reconciler: parent, owns: [resourceTypes.Route] },
    );
    const svc = await kube.create<KubeObject>({
      apiVersion: API, kind: 'Service', metadata: { name: 'web', namespace: NS },
      spec: { familyHubRef: { name: 'home' }, image: 'localhost/web:1', port: 8080, host: 'web.family.test' },
    });
    // The parent has reconciled once (no Route yet) before the child exists.
    await expect.poll(() => parentSaw.length, { timeout: 10_000 }).toBeGreaterThan(0);
    await kube.create({
      apiVersion: API, kind: 'Route',
      metadata: { name: 'web', namespace: NS, ownerReferences: [ownerReference(svc)] },
      spec: { familyHubRef: { name: 'home' }, hostname: 'web.family.test', backendRef: { name: 'web', port: 8080 } },
    });
    await waitForObject(kube, { kind: 'Route', namespace: NS, name: 'web' }, 'status written by the child controller', (o) => !!o.status?.url);
    const written = Date.now();
    await expect.poll(() => parentSaw.find((p) => p.url === 'https://web.family.test/'), { timeout: 1_000, interval: 20 }).toBeTruthy();
    expect(parentSaw.find((p) => p.url)!.at - written).toBeLessThan(1_000);
  });

  it('a child kind the apiserver does not serve is Degraded with the kind named, retried with backoff', async () => {
    const widget = registerResource({ apiVersion: 'example.test/v1', kind: 'Widget', plural: 'widgets', namespaced: true });
    let attempts = 0;
    const reconciler: Reconciler<Record<string, unknown>> = {
      name: 'claim-widgets',
      async reconcile(obj, ctx) {
        attempts++;
        await ensureOwned(ctx, obj, { apiVersion: widget.apiVersion, kind: widget.kind, metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace }, spec: {} });
        return {};
      },
    };
    // Owning a kind that is not served must not keep the caches from syncing.
    await run({ resource: resourceTypes.DatabaseClaim, specSchema: anySpec, reconciler, owns: [widget] });
    await kube.create({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name: 'w1', namespace: NS }, spec: { familyHubRef: { name: 'home' } } });
    const o = await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'w1' }, 'Degraded', (x) => condition(x, 'Degraded')?.status === 'True');
    expect(condition(o, 'Degraded')).toMatchObject({ reason: 'KindNotInstalled' });
    expect(condition(o, 'Degraded')!.message).toContain('widgets.example.test/v1');
    const start = attempts;
    await new Promise((r) => setTimeout(r, 5_000));
    // Exponential backoff from 200 ms: at most ~5 tries in 5 s (a fixed 500 ms loop makes 10).
    expect(attempts - start).toBeLessThanOrEqual(6);
    expect(attempts - start).toBeGreaterThanOrEqual(2);

    // Once the CRD exists the next retry succeeds and the owned informer serves the kind.
    await kube.create({
      apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'widgets.example.test' },
      spec: {
        group: 'example.test', scope: 'Namespaced', names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
      },
    });
    await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'w1' }, 'Ready once the kind is served', (x) => condition(x, 'Ready')?.status === 'True', 60_000);
    expect(await kube.get('example.test/v1', 'Widget', NS, 'w1')).toMatchObject({ metadata: { ownerReferences: [expect.objectContaining({ kind: 'DatabaseClaim', name: 'w1', controller: true })] } });
  });

  it('a 409 from a kube call is retried with backoff and shows as Degraded Conflict once it repeats', async () => {
    let attempts = 0;
    const reconciler: Reconciler<Record<string, unknown>> = {
      name: 'claim-conflicts',
      async reconcile(obj, ctx) {
        attempts++;
        // Exists already: 409 AlreadyExists on every attempt.
        await ctx.kube.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'taken', namespace: obj.metadata.namespace } });
        return {};
      },
    };
    await kube.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'taken', namespace: NS } });
    await run({ resource: resourceTypes.DatabaseClaim, specSchema: anySpec, reconciler });
    await kube.create({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name: 'c409', namespace: NS }, spec: { familyHubRef: { name: 'home' } } });
    const o = await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'c409' }, 'Degraded', (x) => condition(x, 'Degraded')?.status === 'True');
    expect(condition(o, 'Degraded')).toMatchObject({ reason: 'Conflict' });
    expect(condition(o, 'Degraded')!.message).toMatch(/already exists/);
    // A single conflict is routine: the status is written only from the third in a row.
    expect(attempts).toBeGreaterThanOrEqual(3);
    const start = attempts;
    await new Promise((r) => setTimeout(r, 5_000));
    // Exponential backoff from 200 ms; a fixed 500 ms loop makes 10 tries in 5 s.
    expect(attempts - start).toBeLessThanOrEqual(6);
    expect(attempts - start).toBeGreaterThanOrEqual(1);
  });

  it('the reconciler\'s status is the whole status: a field it stops reporting is removed', async () => {
    let withLease = true;
    const reconciler: Reconciler<Record<string, unknown>> = {
      name: 'claim-status',
      async reconcile() {
        return { status: { schema: 'fh_a', ...(withLease ? { leaseExpiresAt: '2030-01-01T00:00:00Z' } : {}) } };
      },
    };
    await run({ resource: resourceTypes.DatabaseClaim, specSchema: anySpec, reconciler });
    await kube.create({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name: 's1', namespace: NS }, spec: { familyHubRef: { name: 'home' } } });
    await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 's1' }, 'leaseExpiresAt reported', (o) => o.status?.leaseExpiresAt === '2030-01-01T00:00:00Z');
    withLease = false;
    // A spec change triggers the next reconcile.
    await kube.mergePatch(API, 'DatabaseClaim', NS, 's1', { spec: { deletionPolicy: 'Delete' } });
    const o = await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 's1' }, 'observed the new generation', (x) => x.status?.observedGeneration === x.metadata.generation);
    expect(o.status.schema).toBe('fh_a');
    expect(o.status).not.toHaveProperty('leaseExpiresAt');
  });

  it('a spec the schema refuses is Stalled (InvalidSpec naming the field) and not retried until it changes', async () => {
    let attempts = 0;
    const reconciler: Reconciler<{ size: number }> = {
      name: 'claim-invalid',
      async reconcile() {
        attempts++;
        return {};
      },
    };
    const strict = z.object({ familyHubRef: z.object({ name: z.literal('ok') }) }).passthrough().transform((s) => ({ size: 1, ...s }));
    await run({ resource: resourceTypes.DatabaseClaim, specSchema: strict, reconciler });
    await kube.create({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name: 'bad', namespace: NS }, spec: { familyHubRef: { name: 'home' } } });
    const o = await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'bad' }, 'Stalled', (x) => condition(x, 'Stalled')?.status === 'True');
    expect(condition(o, 'Stalled')).toMatchObject({ reason: 'InvalidSpec' });
    expect(condition(o, 'Stalled')!.message).toMatch(/spec\.familyHubRef\.name/);
    expect(condition(o, 'Ready')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    const rv = o.metadata.resourceVersion;
    await new Promise((r) => setTimeout(r, 2_000));
    expect(attempts).toBe(0);
    expect((await kube.get(API, 'DatabaseClaim', NS, 'bad'))!.metadata.resourceVersion).toBe(rv);
  });

  it('a reported condition marked terminal is Stalled (not Reconciling), the rest of the result is kept; a suspended result is Suspended with nothing Degraded; a terminal throw writes the facts it carries', async () => {
    const mode: Record<string, 'stalled' | 'suspended' | 'throw' | 'ok'> = { t1: 'stalled', t2: 'suspended', t3: 'throw' };
    const reconciler: Reconciler<Record<string, unknown>> = {
      name: 'claim-outlook',
      async reconcile(obj) {
        const m = mode[obj.metadata.name] ?? 'ok';
        const reached = { type: 'Reached', status: 'True' as const, reason: 'Answered', message: 'the dependency answered' };
        if (m === 'throw') throw new ReconcileError('UnknownThing', 'not offered', { conditionType: 'ThingReady', terminal: true, conditions: [reached] });
        if (m === 'suspended') return { status: { schema: 'fh_s' }, conditions: [{ type: 'Applied', status: 'False', reason: 'PlanMode', message: 'nothing is written' }], suspended: { reason: 'PlanMode', message: 'nothing is written' } };
        return {
          status: { schema: 'fh_t' },
          conditions: [
            { type: 'Other', status: 'False', reason: 'OnItsWay', message: 'soon' },
            ...(m === 'stalled' ? [{ type: 'ChildReady', status: 'False' as const, reason: 'ExtensionNotAllowed', message: 'child refused', terminal: true }] : []),
          ],
        };
      },
    };
    await run({ resource: resourceTypes.DatabaseClaim, specSchema: anySpec, reconciler });
    for (const name of ['t1', 't2', 't3']) await kube.create({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name, namespace: NS }, spec: { familyHubRef: { name: 'home' } } });
    const seen = (name: string) => waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name }, 'reconciled', (x) => x.status?.observedGeneration === x.metadata.generation && !!condition(x, 'Ready'));

    const t1 = await seen('t1');
    // The condition that waiting cannot cure names the state, ahead of one that is on its way.
    expect(condition(t1, 'Ready')).toMatchObject({ status: 'False', reason: 'ExtensionNotAllowed' });
    expect(condition(t1, 'Stalled')).toMatchObject({ status: 'True', reason: 'ExtensionNotAllowed', message: 'ChildReady: child refused' });
    expect(condition(t1, 'Reconciling')).toMatchObject({ status: 'False', reason: 'Stalled' });
    expect(condition(t1, 'Degraded')).toMatchObject({ status: 'True', reason: 'ExtensionNotAllowed' });
    expect(condition(t1, 'Other')).toMatchObject({ status: 'False', reason: 'OnItsWay' });
    expect(condition(t1, 'ChildReady')).not.toHaveProperty('terminal');
    expect(t1.status.schema).toBe('fh_t');

    const t2 = await seen('t2');
    expect(condition(t2, 'Suspended')).toMatchObject({ status: 'True', reason: 'PlanMode' });
    expect(condition(t2, 'Reconciling')).toMatchObject({ status: 'False', reason: 'PlanMode' });
    expect(condition(t2, 'Degraded')).toMatchObject({ status: 'False' });
    expect(condition(t2, 'Ready')).toMatchObject({ status: 'False', reason: 'PlanMode' });
    expect(condition(t2, 'Stalled')).toBeUndefined();

    const t3 = await seen('t3');
    expect(condition(t3, 'Stalled')).toMatchObject({ status: 'True', reason: 'UnknownThing' });
    expect(condition(t3, 'ThingReady')).toMatchObject({ status: 'False', reason: 'UnknownThing' });
    expect(condition(t3, 'Reached')).toMatchObject({ status: 'True', reason: 'Answered' });

    // Once the cause is gone: Stalled and Suspended are removed, not left behind.
    mode.t1 = 'ok';
    mode.t2 = 'ok';
    await kube.mergePatch(API, 'DatabaseClaim', NS, 't1', { spec: { deletionPolicy: 'Delete' } });
    await kube.mergePatch(API, 'DatabaseClaim', NS, 't2', { spec: { deletionPolicy: 'Delete' } });
    const t1b = await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 't1' }, 'generation 2', (x) => x.status?.observedGeneration === 2);
    expect(condition(t1b, 'Stalled')).toBeUndefined();
    expect(condition(t1b, 'Reconciling')).toMatchObject({ status: 'True', reason: 'OnItsWay' });
    const t2b = await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 't2' }, 'generation 2', (x) => x.status?.observedGeneration === 2);
    expect(condition(t2b, 'Suspended')).toBeUndefined();
    expect(condition(t2b, 'Degraded')).toMatchObject({ status: 'True', reason: 'OnItsWay' });
  });

  it('/readyz is 503 while a kind the operator reconciles is not served (an optional owned kind does not count), 200 once it is', async () => {
    const gadget = registerResource({ apiVersion: 'example.test/v1', kind: 'Gadget', plural: 'gadgets', namespaced: true });
    const optional = registerResource({ apiVersion: 'example.test/v1', kind: 'Doohickey', plural: 'doohickeys', namespaced: true });
    const reconciler: Reconciler<Record<string, unknown>> = { name: 'gadgets', async reconcile() { return {}; } };
    const mgr = await run({ resource: gadget, specSchema: anySpec, reconciler, owns: [optional] });
    const readyz = async () => (await fetch(`http://127.0.0.1:${mgr.address}/readyz`)).status;
    expect(await readyz()).toBe(503);
    await kube.create({
      apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'gadgets.example.test' },
      spec: {
        group: 'example.test', scope: 'Namespaced', names: { plural: 'gadgets', singular: 'gadget', kind: 'Gadget' },
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
      },
    });
    // The informer retries its list with backoff (at most 10 s apart).
    await expect.poll(readyz, { timeout: 30_000, interval: 250 }).toBe(200);
  });

  it('a status that goes X, Y, X in quick succession ends at X, also when the reconcile after Y starts from a cache that has not seen Y', async () => {
    const configMap = registerResource({ apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true });
    const isOn = async (ctx: Parameters<Reconciler['reconcile']>[1]) => (await ctx.cache.get(configMap, NS, 'switch'))?.data?.on === 'true';
    let offReported: () => void = () => {};
    let afterOff: ((sawY: boolean) => void) | undefined;
    let expectAfterOff = false;
    const reconciler: Reconciler<Record<string, unknown>> = {
      name: 'claim-switch',
      async reconcile(obj, ctx) {
        const on = await isOn(ctx);
        if (!on) {
          // Held until the switch is on again: that event marks this key
          // dirty, so the next reconcile starts right after this one's status write.
          offReported();
          while (!(await isOn(ctx))) await new Promise((r) => setTimeout(r, 5));
          expectAfterOff = true;
        } else if (expectAfterOff) {
          expectAfterOff = false;
          afterOff?.(condition(obj, 'Ready')?.status === 'False');
        }
        return { conditions: [{ type: 'Switch', status: on ? 'True' : 'False', reason: on ? 'On' : 'Off', message: on ? 'on' : 'off' }] };
      },
    };
    const key = `${NS}/switched`;
    await run({ resource: resourceTypes.DatabaseClaim, specSchema: anySpec, reconciler, watches: [{ resource: configMap, map: () => [key] }] });
    const flip = (on: boolean) => kube.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'switch', namespace: NS }, data: { on: String(on) } }, { fieldManager: 'e2e-test' });
    await flip(true);
    await kube.create({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name: 'switched', namespace: NS }, spec: { familyHubRef: { name: 'home' } } });
    const ready = (status: string) => (o: KubeObject) => condition(o, 'Ready')?.status === status;
    // The race is the cache's to win or lose: try until the reconcile after Y starts from a cache without Y.
    let staleStarts = 0;
    for (let attempt = 0; attempt < 20 && staleStarts === 0; attempt++) {
      await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'switched' }, 'Ready (X)', ready('True'), 10_000);
      const held = new Promise<void>((r) => { offReported = r; });
      const after = new Promise<boolean>((r) => { afterOff = r; });
      await flip(false);
      await held;
      await flip(true);
      if (!(await after)) staleStarts++;
      // Whatever the cache showed, the apiserver must end at X: nothing else wakes this object.
      await waitForObject(kube, { kind: 'DatabaseClaim', namespace: NS, name: 'switched' }, 'Ready again (X after Y)', ready('True'), 5_000);
    }
    expect(staleStarts, 'the reconcile after Y never started from a stale cache: the case was not exercised').toBeGreaterThan(0);
  });
});
