// The service host: each service is an encapsulated fastify plugin under its
// own prefix. Two WebSocket services side by side must not see each other's
// hooks, decorators or limits, and the root must carry none of them.
import pino from 'pino';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { useAuth } from '../../src/runtime-services/base/jwt/fastify-auth.js';
import { defineService } from '../../src/runtime-services/base/service.js';
import { loadConfig } from '../../src/runtime-services/config.js';
import { startRuntime, type Runtime } from '../../src/runtime-services/runtime.js';

const upgrades: Record<string, number> = { a: 0, b: 0 };

const socketService = (name: 'a' | 'b') =>
  defineService({
    name,
    prefix: `/api/${name}`,
    websocket: true,
    settings: z.object({ [`${name.toUpperCase()}_MAX_TEXT`]: z.coerce.number().int().default(name === 'a' ? 4 : 64) }),
    create: ({ settings }) => ({
      readiness: { self: async () => {} },
      async plugin(app) {
        useAuth(app, { verify: async () => Promise.reject(new Error('not used')) });
        const max = settings[`${name.toUpperCase()}_MAX_TEXT`] as number;
        app.addHook('onRequest', async (_req, reply) => {
          reply.header('x-service', name);
        });
        app.get('/info', async (req) => ({ name, hasPrincipal: 'principal' in req }));
        app.get('/ws', { websocket: true }, (socket) => {
          upgrades[name]!++;
          socket.on('message', (d) => socket.send(d.toString().length > max ? `${name}:too long` : `${name}:ok`));
        });
      },
      start: async () => {},
      drain: async () => {},
      close: async () => {},
    }),
  });

let runtime: Runtime;
let url: string;

beforeAll(async () => {
  const defs = [socketService('a'), socketService('b')];
  const config = loadConfig(
    { RUNTIME_SERVICES: 'a,b', HOST: '127.0.0.1', PORT: '0', OIDC_ISSUER_URL: 'http://127.0.0.1:9', OIDC_AUDIENCE: 'x', AUTH_ALLOWED_EMAIL_DOMAINS: 'family.test' },
    defs,
  );
  runtime = await startRuntime(config, pino({ level: 'silent' }));
  url = `http://127.0.0.1:${runtime.port}`;
});

afterAll(async () => {
  await runtime?.shutdown();
});

async function exchange(path: string, text: string): Promise<string> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}${path}`);
  try {
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const reply = new Promise<string>((resolve) => ws.once('message', (d) => resolve(d.toString())));
    ws.send(text);
    return await reply;
  } finally {
    ws.close();
  }
}

describe('runtime service plugins', () => {
  it('routes each service under its prefix with only its own hooks', async () => {
    const a = await fetch(`${url}/api/a/info`);
    expect(a.headers.get('x-service')).toBe('a');
    expect(await a.json()).toEqual({ name: 'a', hasPrincipal: true });
    const b = await fetch(`${url}/api/b/info`);
    expect(b.headers.get('x-service')).toBe('b');
    const health = await fetch(`${url}/health`);
    expect(health.headers.get('x-service')).toBeNull();
    expect((await fetch(`${url}/info`)).status).toBe(404);
  });

  it('keeps the principal decoration off the root', () => {
    expect(runtime.app.hasRequestDecorator('principal')).toBe(false);
  });

  it('hands each WebSocket upgrade to exactly one service, with that service\'s own limits', async () => {
    expect(await exchange('/api/a/ws', 'hello world')).toBe('a:too long');
    expect(await exchange('/api/b/ws', 'hello world')).toBe('b:ok');
    expect(upgrades).toEqual({ a: 1, b: 1 });
  });

  it('names readiness probes after their service', async () => {
    expect(await (await fetch(`${url}/ready`)).json()).toEqual({ ready: true, checks: { 'a.self': { ok: true }, 'b.self': { ok: true } } });
  });
});
