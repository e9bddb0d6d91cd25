// The root server every service inherits: a driver's error never reaches the
// client, request ids are only echoed when safe, and every answer carries nosniff.
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createHttpServer } from '../../src/runtime-services/base/http-server.js';

async function server() {
  const app = await createHttpServer({ logger: pino({ level: 'silent' }), registry: new Registry(), readiness: [
    { key: 'svc.db', probe: async () => Promise.reject(new Error('connect ECONNREFUSED 10.0.0.5:5432 password authentication failed for user "svc"')) },
  ], isShuttingDown: () => false });
  await app.register(async (scope) => {
    scope.get('/boom', async () => {
      throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021', severity: 'ERROR' });
    });
    scope.post('/echo', async (req) => req.body);
  }, { prefix: '/api/x' });
  return app;
}

describe('runtime root server', () => {
  it('answers a failed request with a generic 500 and the request id, not the driver text', async () => {
    const app = await server();
    const res = await app.inject({ method: 'GET', url: '/api/x/boom', headers: { 'x-request-id': 'req-1' } });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: 'internal', message: 'internal error', requestId: 'req-1' });
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it('keeps fastify\'s own 4xx message (bad JSON) and hides readiness causes', async () => {
    const app = await server();
    const bad = await app.inject({ method: 'POST', url: '/api/x/echo', headers: { 'content-type': 'application/json' }, payload: '{bad' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'bad_request' });
    const ready = await app.inject({ method: 'GET', url: '/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({ ready: false, checks: { 'svc.db': { ok: false } } });
  });

  it('replaces an unsafe x-request-id instead of echoing it', async () => {
    const app = await server();
    const res = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'a b\n"c' } });
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const kept = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'ingress-42' } });
    expect(kept.headers['x-request-id']).toBe('ingress-42');
  });
});
