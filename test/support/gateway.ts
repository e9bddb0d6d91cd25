// Helpers for gateway e2e tests: write and read objects of kinds the core's
// static resource table does not know (Gateway API, Traefik, Envoy Gateway),
// and send requests through the gateway with a chosen Host / SNI.
import http from 'node:http';
import https from 'node:https';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';

const PLURALS: Record<string, string> = {
  Gateway: 'gateways',
  GatewayClass: 'gatewayclasses',
  HTTPRoute: 'httproutes',
  Middleware: 'middlewares',
  SecurityPolicy: 'securitypolicies',
  BackendTrafficPolicy: 'backendtrafficpolicies',
  ReferenceGrant: 'referencegrants',
};

export function objectPath(o: { apiVersion: string; kind: string; namespace?: string; name?: string }): string {
  const plural = PLURALS[o.kind];
  if (!plural) throw new Error(`no plural known for ${o.kind}`);
  const ns = o.namespace ? `/namespaces/${o.namespace}` : '';
  return `/apis/${o.apiVersion}${ns}/${plural}${o.name ? `/${o.name}` : ''}`;
}

export async function applyObject(kube: KubeClient, obj: KubeObject, fieldManager = 'e2e-test'): Promise<KubeObject> {
  return kube.request('PATCH', objectPath({ apiVersion: obj.apiVersion!, kind: obj.kind!, namespace: obj.metadata.namespace, name: obj.metadata.name }), {
    body: obj,
    contentType: 'application/apply-patch+yaml',
    query: { fieldManager, force: true },
  });
}

export async function getObject(kube: KubeClient, ref: { apiVersion: string; kind: string; namespace?: string; name: string }): Promise<KubeObject | undefined> {
  try {
    return await kube.request('GET', objectPath(ref));
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode === 404) return undefined;
    throw e;
  }
}

export async function deleteObject(kube: KubeClient, ref: { apiVersion: string; kind: string; namespace?: string; name: string }): Promise<void> {
  try {
    await kube.request('DELETE', objectPath(ref));
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode !== 404) throw e;
  }
}

export interface GatewayResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json<T = any>(): T;
}

/**
 * One request to the gateway on 127.0.0.1:port with the given Host (and SNI
 * for HTTPS), as a client resolving that name to the gateway would send it.
 */
export function gatewayRequest(opts: {
  port: number;
  host: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  tls?: { ca: string | Buffer };
  agent?: http.Agent;
  body?: string;
}): Promise<GatewayResponse> {
  const mod = opts.tls ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request({
      host: '127.0.0.1',
      port: opts.port,
      path: opts.path ?? '/',
      method: opts.method ?? 'GET',
      headers: { host: opts.host, ...opts.headers },
      // SNI is the bare name; the Host header keeps a non-default port, as browsers send it.
      ...(opts.tls ? { servername: opts.host.replace(/:\d+$/, ''), ca: opts.tls.ca } : {}),
      agent: opts.agent,
      timeout: 10_000,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) }));
    });
    req.on('timeout', () => req.destroy(new Error(`request to ${opts.host}${opts.path ?? '/'} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}
