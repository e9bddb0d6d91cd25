// The hub's runtime Services as pure functions of the hub, and the
// RuntimeReady roll-up from what those Services report.
import { describe, expect, it } from 'vitest';
import {
  DATABASE_URL_FROM_FILE, auditStream, runtimeBlocker, runtimeCondition, runtimeEndpoints, runtimeServiceOf,
} from '../../src/controllers/familyhub/runtime.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { familyHubSpecSchema, serviceSpecSchema, type FamilyHubSpecInput } from '../../src/crds/index.js';
import type { Hub } from '../../src/platform/hub.js';
import {
  RUNTIME_SERVICE_NAMES, effectiveAuthService, enabledRuntimeServices, runtimeServiceOnHost, type RuntimeServiceName,
} from '../../src/platform/runtime.js';
import { hostnameProblem } from '../../src/controllers/route/hostnames.js';

const hub = (over: Partial<FamilyHubSpecInput> = {}): Hub => ({
  apiVersion: 'familyhub.dev/v1alpha1', kind: 'FamilyHub', metadata: { name: 'home', namespace: 'family', uid: 'hub-uid' },
  spec: familyHubSpecSchema.parse({
    domain: 'family.test', allowedEmailDomains: ['family.test', 'example.org'],
    postgres: { host: 'pg', database: 'fh', adminCredentialsSecretRef: { name: 'pg' } },
    redis: { host: 'redis.family.svc', port: 6380 },
    identity: { kind: 'oidc-dcr', issuerUrl: 'https://id.family.test' },
    runtime: { image: 'ghcr.io/family/runtime:1', services: { chat: { enabled: true, replicas: 2 }, audit: { enabled: true }, auth: { enabled: true } } },
    ...over,
  }),
});
const envOf = (o: KubeObject) => Object.fromEntries((o.spec.env as Array<{ name: string; value: string }>).map((e) => [e.name, e.value]));
const withGateway = { gateway: { gatewayName: 'gw', gatewayNamespace: 'gateway', listeners: { httpsPort: 8443 } } };

describe('FamilyHub runtime Services', () => {
  it('one valid Service per enabled runtime service, each starting only its service, deterministic', () => {
    const h = hub();
    expect(enabledRuntimeServices(h)).toEqual(['audit', 'auth', 'chat']);
    for (const svc of RUNTIME_SERVICE_NAMES) {
      const s = runtimeServiceOf(h, svc);
      // What the Service CRD (and its CEL rules) accept, defaults and all.
      expect(() => serviceSpecSchema.parse(s.spec), svc).not.toThrow();
      expect(JSON.stringify(s)).toBe(JSON.stringify(runtimeServiceOf(hub(), svc)));
      expect(s.metadata).toMatchObject({ name: `home-${svc}`, namespace: 'family', labels: { 'familyhub.dev/familyhub': 'home', 'familyhub.dev/runtime-service': svc } });
      expect(s.spec).toMatchObject({ familyHubRef: { name: 'home' }, image: 'ghcr.io/family/runtime:1', port: 8080 });
      expect(envOf(s).RUNTIME_SERVICES).toBe(svc);
    }
    expect(runtimeServiceOf(h, 'chat').spec.replicas).toBe(2);
  });

  it('wires the hub: issuer, audience, domains, Redis and a per-hub audit stream as plain env; the database as a file', () => {
    const chat = envOf(runtimeServiceOf(hub(), 'chat'));
    expect(chat).toMatchObject({
      OIDC_ISSUER_URL: 'https://id.family.test', OIDC_AUDIENCE: 'familyhub', AUTH_ALLOWED_EMAIL_DOMAINS: 'example.org,family.test',
      REDIS_URL: 'redis://redis.family.svc:6380', AUDIT_STREAM: auditStream(hub()), DATABASE_URL: DATABASE_URL_FROM_FILE,
    });
    expect(auditStream(hub())).toBe('familyhub:family:home:audit');
    // No value is a credential: the database login is only named by its file.
    expect(Object.values(chat).join(' ')).not.toMatch(/postgres(ql)?:\/\//);
    expect(runtimeServiceOf(hub(), 'chat').spec.needs).toEqual({ database: { enabled: true, schemaName: 'chat' } });
  });

  it('audit writes with its claim\'s role into the audit schema the operator migrates; auth gets an OIDC client and no database', () => {
    expect(runtimeServiceOf(hub(), 'audit').spec.needs).toEqual({ database: { enabled: true } });
    const auth = runtimeServiceOf(hub(withGateway), 'auth');
    expect(auth.spec.needs).toEqual({ oidc: { enabled: true, redirectPaths: ['/auth/callback'] }, route: { auth: { required: false } } });
    expect(auth.spec.host).toBe('auth.family.test');
    expect(envOf(auth)).toMatchObject({ AUTH_DOMAIN: 'family.test', AUTH_PUBLIC_URL: 'https://auth.family.test:8443', AUTH_SCOPES: 'openid email profile' });
    // The login asks for what the auth Service's OIDCClient is registered with: the hub's scopes, never more.
    const groups = hub({ ...withGateway, identity: { kind: 'oidc-dcr', issuerUrl: 'https://id.family.test', defaultScopes: ['email', 'groups'] } });
    expect(envOf(runtimeServiceOf(groups, 'auth')).AUTH_SCOPES).toBe('openid email groups');
    expect(envOf(auth).DATABASE_URL).toBeUndefined();
  });

  it('publishes on <svc>.<domain> behind login only when the hub has a gateway', () => {
    expect(runtimeServiceOf(hub(), 'chat').spec.needs?.route).toBeUndefined();
    const chat = runtimeServiceOf(hub(withGateway), 'chat');
    expect(chat.spec.host).toBe('chat.family.test');
    expect(chat.spec.needs?.route).toEqual({ auth: { required: true } });
    const custom = runtimeServiceOf(hub({ gateway: { ...withGateway.gateway, authService: { url: 'http://auth:8080', hostname: 'login.family.test' } } }), 'auth');
    expect(custom.spec.host).toBe('login.family.test');
  });

  it('refuses to wire services that need Redis without one; a Redis password is no blocker (mounted by the Service controller, never env)', () => {
    expect(runtimeBlocker(hub())).toBeUndefined();
    expect(runtimeBlocker(hub({ redis: undefined }))).toMatchObject({ reason: 'RedisNotConfigured' });
    const withPassword = hub({ redis: { host: 'r', passwordSecretRef: { name: 'redis' } } });
    expect(runtimeBlocker(withPassword)).toBeUndefined();
    const env = runtimeServiceOf(withPassword, 'chat').spec.env!;
    expect(env.map((e) => e.name)).not.toContain('REDIS_PASSWORD_FILE');
    expect(env.find((e) => e.name === 'REDIS_URL')?.value).toBe('redis://r:6379');
    // The auth service alone needs no Redis.
    expect(runtimeBlocker(hub({ redis: undefined, runtime: { image: 'x', services: { auth: { enabled: true } } } }))).toBeUndefined();
  });

  it('RuntimeReady is True only when every Service is Ready at its generation; otherwise the first one\'s reason', () => {
    const h = hub();
    const enabled = enabledRuntimeServices(h);
    const svc = (name: RuntimeServiceName, ready: { status: string; reason: string; message?: string } | undefined, gen = 1, observed = 1, url?: string): KubeObject => ({
      metadata: { name: `home-${name}`, generation: gen },
      status: { ...(url ? { url } : {}), conditions: ready ? [{ type: 'Ready', observedGeneration: observed, ...ready }] : [] },
    });
    const all = (f: (n: RuntimeServiceName) => KubeObject | undefined) => new Map(enabled.map((n) => [n, f(n)]));
    expect(runtimeCondition(enabled, all((n) => svc(n, { status: 'True', reason: 'Ready' })))).toMatchObject({ status: 'True', reason: 'ServicesReady' });
    expect(runtimeCondition(enabled, all((n) => (n === 'chat' ? undefined : svc(n, { status: 'True', reason: 'Ready' }))))).toMatchObject({ status: 'False', reason: 'Pending' });
    const degraded = all((n) => svc(n, n === 'auth' ? { status: 'False', reason: 'ErrImagePull', message: 'image not found' } : { status: 'False', reason: 'Progressing' }));
    // audit comes first in service order.
    expect(runtimeCondition(enabled, degraded)).toMatchObject({ status: 'False', reason: 'Progressing', message: expect.stringMatching(/^audit: /) });
    const onlyAuth = all((n) => svc(n, n === 'auth' ? { status: 'False', reason: 'ErrImagePull', message: 'image not found' } : { status: 'True', reason: 'Ready' }));
    expect(runtimeCondition(enabled, onlyAuth)).toEqual({ type: 'RuntimeReady', status: 'False', reason: 'ErrImagePull', message: 'auth: image not found' });
    // A Ready from before the last spec change does not count.
    expect(runtimeCondition(enabled, all((n) => svc(n, { status: 'True', reason: 'Ready' }, 2, 1)))).toMatchObject({ status: 'False', reason: 'Pending' });

    const eps = runtimeEndpoints(h, enabled, all((n) => (n === 'chat' ? svc(n, undefined, 1, 1, 'https://chat.family.test/') : undefined)));
    expect(eps).toEqual({ audit: 'https://audit.family.test/', auth: 'https://auth.family.test/', chat: 'https://chat.family.test/' });
  });
});

describe('the hub\'s own auth service and hostnames, as the Route controller sees them', () => {
  it('gateway.authService defaults to the hub\'s auth Service while auth runs, derived and never written into the spec', () => {
    const h = hub(withGateway);
    const before = JSON.stringify(h.spec);
    expect(effectiveAuthService(h)).toEqual({ serviceRef: { name: 'home-auth', namespace: 'family', port: 8080 } });
    expect(JSON.stringify(h.spec)).toBe(before);
    expect(h.spec.gateway?.authService).toBeUndefined();
    // The spec's own choice wins; without the auth service there is no default.
    const named = hub({ gateway: { ...withGateway.gateway, authService: { url: 'http://auth.elsewhere:9000' } } });
    expect(effectiveAuthService(named)).toEqual({ url: 'http://auth.elsewhere:9000' });
    const noAuth = hub({ ...withGateway, runtime: { image: 'ghcr.io/family/runtime:1', services: { chat: { enabled: true } } } });
    expect(effectiveAuthService(noAuth)).toBeUndefined();
  });

  it('a platform hostname is refused unless the Route is the hub\'s own; the IdP\'s host always', () => {
    const h = hub({ ...withGateway, identity: { kind: 'oidc-dcr', issuerUrl: 'https://id.family.test' } });
    expect(runtimeServiceOnHost(h, 'chat.family.test')).toBe('chat');
    expect(runtimeServiceOnHost(h, 'auth.family.test')).toBe('auth');
    // media is not enabled: no runtime Service of the hub serves it.
    expect(runtimeServiceOnHost(h, 'media.family.test')).toBeUndefined();
    expect(hostnameProblem('chat.family.test', h)?.reason).toBe('HostnameReserved');
    expect(hostnameProblem('chat.family.test', h, true)).toBeUndefined();
    expect(hostnameProblem('id.family.test', h, true)?.reason).toBe('HostnameReserved');
    expect(hostnameProblem('chat.elsewhere.test', h, true)?.reason).toBe('HostnameOutsideDomain');
  });
});
