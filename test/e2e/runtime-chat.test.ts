// Chat service: two (and a third, killed) real replicas sharing PostgreSQL
// and Redis, clients on each, tokens from the real development IdP.
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';
import { CloseCode } from '../../src/runtime-services/chat/close-codes.js';
import { ChatClient as Client, createAppDatabase, secretsInRuntimeLogs, spawnRuntime, spawnedRuntimes, type RuntimeProcess } from './runtime-harness.js';

const DOMAIN = 'family.test';
const AUDIENCE = 'chat';
const AUDIT_STREAM = 'e2e:chat:audit';
const MAX_BYTES = 2048;
const REPLAY_LIMIT = 20;

let pgInst: LocalPostgres;
let redis: LocalRedis;
let idp: DevIdp;
let r1: RuntimeProcess;
let r2: RuntimeProcess;
let env: Record<string, string>;
const tokens: Record<string, string> = {};
const clients: Client[] = [];
let channel: string;

const track = (c: Client) => (clients.push(c), c);
const email = (u: string) => `${u}@${DOMAIN}`;

async function api(r: RuntimeProcess, user: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${r.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${tokens[user]}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: res.status === 204 ? undefined : ((await res.json()) as Record<string, unknown>) };
}

beforeAll(async () => {
  [pgInst, redis, idp] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN })]);
  const databaseUrl = await createAppDatabase(pgInst, 'chat_app', 'chat');
  env = {
    RUNTIME_SERVICES: 'chat',
    DATABASE_URL: databaseUrl,
    REDIS_URL: redis.url,
    OIDC_ISSUER_URL: idp.issuer,
    OIDC_AUDIENCE: AUDIENCE,
    OIDC_CLOCK_TOLERANCE_SEC: '1',
    AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
    AUDIT_STREAM,
    CHAT_MAX_MESSAGE_BYTES: String(MAX_BYTES),
    CHAT_RATE_PER_SEC: '20',
    CHAT_RATE_BURST: '40',
    CHAT_PRESENCE_TTL_MS: '1500',
    CHAT_REPLAY_LIMIT: String(REPLAY_LIMIT),
  };
  [r1, r2] = await Promise.all([spawnRuntime('chat-1', env), spawnRuntime('chat-2', env)]);
  for (const u of ['alice', 'bob', 'charlie']) {
    tokens[u] = await idp.issueAccessToken({ email: email(u), groups: u === 'alice' ? ['parents', 'admins'] : [], audience: AUDIENCE, expiresInSec: 600 });
  }
  const created = await api(r1, 'alice', 'POST', '/api/chat/channels', { name: 'family', members: [email('bob'), email('charlie')] });
  expect(created.status).toBe(201);
  channel = created.body!.id as string;
});

afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await Promise.all([r1?.proc.stop(), r2?.proc.stop()]);
  await Promise.all([pgInst?.stop(), redis?.stop(), idp?.stop()]);
});

describe('chat across two replicas', () => {
  it('reports its dependencies on /ready', async () => {
    const ready = (await (await fetch(`${r1.url}/ready`)).json()) as { ready: boolean; checks: Record<string, { ok: boolean }> };
    expect(ready.ready).toBe(true);
    expect(Object.keys(ready.checks).sort()).toEqual(['chat.postgres', 'chat.redis', 'chat.redis-subscriber']);
  });

  it('delivers messages from senders on both replicas to all members, in offset order', async () => {
    const alice = track(await Client.connect(r1.url, tokens.alice!));
    const bob = track(await Client.connect(r2.url, tokens.bob!));
    const charlie = track(await Client.connect(r1.url, tokens.charlie!));
    const charlie2 = track(await Client.connect(r2.url, tokens.charlie!));
    for (const c of [alice, bob, charlie, charlie2]) await c.join(channel);
    const PER_SENDER = 30;
    for (let i = 0; i < PER_SENDER; i++) {
      alice.send({ type: 'send', channel, text: `a${i}`, ref: `a${i}` });
      bob.send({ type: 'send', channel, text: `b${i}`, ref: `b${i}` });
    }
    for (const c of [alice, bob, charlie, charlie2]) await c.waitMessages(channel, 2 * PER_SENDER);
    const seen = alice.messages(channel);
    expect(seen.map((m) => m.offset)).toEqual(Array.from({ length: 2 * PER_SENDER }, (_, i) => i + 1));
    // Each sender's own messages keep their order.
    expect(seen.filter((m) => m.from === email('alice')).map((m) => m.text)).toEqual(Array.from({ length: PER_SENDER }, (_, i) => `a${i}`));
    expect(seen.filter((m) => m.from === email('bob')).map((m) => m.text)).toEqual(Array.from({ length: PER_SENDER }, (_, i) => `b${i}`));
    for (const c of [bob, charlie, charlie2]) {
      expect(c.messages(channel).map((m) => [m.offset, m.text])).toEqual(seen.map((m) => [m.offset, m.text]));
    }
    expect((alice.frames.filter((f) => f.type === 'ack') as unknown as { ref: string }[]).map((f) => f.ref)).toHaveLength(PER_SENDER);
    for (const c of [alice, bob, charlie, charlie2]) c.close();
  });

  it('emits audit events for messages and membership changes, without message text', async () => {
    const add = await fetch(`${r2.url}/api/chat/channels/${channel}/members`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.alice}`, 'content-type': 'application/json', 'x-request-id': 'e2e-add-dave' },
      body: JSON.stringify({ email: email('dave') }),
    });
    expect(add.status).toBe(204);
    expect(add.headers.get('x-request-id')).toBe('e2e-add-dave');
    expect((await api(r2, 'alice', 'DELETE', `/api/chat/channels/${channel}/members/${email('dave')}`)).status).toBe(204);
    const cmd = new Redis(redis.url);
    try {
      const entries = await cmd.xrange(AUDIT_STREAM, '-', '+');
      const events = entries.map(([, fields]) => JSON.parse(fields[1]!) as { actor: string; action: string; target: string; requestId?: string; details: Record<string, unknown> });
      const count = (action: string) => events.filter((e) => e.action === action).length;
      expect(count('chat.message.send')).toBe(60);
      expect(count('chat.channel.create')).toBe(1);
      expect(count('chat.member.add')).toBe(4); // alice, bob, charlie at creation + dave
      expect(events.find((e) => e.action === 'chat.member.add' && e.details.member === email('dave'))).toMatchObject({ requestId: 'e2e-add-dave' });
      expect(events.filter((e) => e.action === 'chat.member.remove')).toEqual([
        expect.objectContaining({ actor: email('alice'), target: `chat/channel/${channel}`, details: { member: email('dave') } }),
      ]);
      expect(JSON.stringify(events)).not.toContain('"a7"');
    } finally {
      cmd.disconnect();
    }
  });

  it('shows presence for connects, disconnects and a killed replica', async () => {
    const alice = track(await Client.connect(r1.url, tokens.alice!));
    await alice.join(channel);
    const charlie = track(await Client.connect(r2.url, tokens.charlie!));
    const joined = await charlie.join(channel);
    expect(joined.online).toEqual([email('alice'), email('charlie')]);
    await alice.next((f) => f.type === 'presence' && f.user === email('charlie') && f.state === 'online');
    charlie.close();
    await alice.next((f) => f.type === 'presence' && f.user === email('charlie') && f.state === 'offline');
    expect((await api(r1, 'alice', 'GET', `/api/chat/channels/${channel}/presence`)).body).toEqual({ online: [email('alice')] });

    const r3 = await spawnRuntime('chat-3', env);
    try {
      const bob = track(await Client.connect(r3.url, tokens.bob!));
      await bob.join(channel);
      await alice.next((f) => f.type === 'presence' && f.user === email('bob') && f.state === 'online');
      expect((await api(r1, 'alice', 'GET', '/api/chat/presence')).body).toEqual({ online: [email('alice'), email('bob')] });
      const killedAt = Date.now();
      await r3.proc.kill();
      await alice.next((f) => f.type === 'presence' && f.user === email('bob') && f.state === 'offline', 10_000);
      // TTL 1.5 s plus one sweep interval.
      expect(Date.now() - killedAt).toBeLessThan(4000);
      expect((await api(r2, 'alice', 'GET', `/api/chat/channels/${channel}/presence`)).body).toEqual({ online: [email('alice')] });
    } finally {
      await r3.proc.kill();
    }
    alice.close();
  });

  it('typing indicators reach the other members only', async () => {
    const alice = track(await Client.connect(r1.url, tokens.alice!));
    const bob = track(await Client.connect(r2.url, tokens.bob!));
    await alice.join(channel);
    await bob.join(channel);
    // Typing is ephemeral and best-effort (a member still catching up after
    // its join does not get it), so clients repeat it while typing; so does
    // this test, until bob sees one.
    const repeat = setInterval(() => alice.send({ type: 'typing', channel }), 300);
    try {
      alice.send({ type: 'typing', channel });
      await bob.next((f) => f.type === 'typing' && f.user === email('alice'));
    } finally {
      clearInterval(repeat);
    }
    alice.send({ type: 'send', channel, text: 'after typing' });
    await alice.next((f) => f.type === 'message' && f.text === 'after typing');
    expect(alice.frames.some((f) => f.type === 'typing')).toBe(false);
    alice.close();
    bob.close();
  });

  it('a client reconnecting with its last offset receives what it missed, or is told to reload', async () => {
    const alice = track(await Client.connect(r1.url, tokens.alice!));
    await alice.join(channel);
    let bob = track(await Client.connect(r2.url, tokens.bob!));
    const joined = await bob.join(channel);
    const last = joined.offset as number;
    bob.close();
    await bob.closed;
    for (let i = 0; i < 5; i++) alice.send({ type: 'send', channel, text: `missed ${i}` });
    await alice.next((f) => f.type === 'message' && f.text === 'missed 4');

    bob = track(await Client.connect(r1.url, tokens.bob!));
    bob.send({ type: 'join', channel, since: last });
    await bob.waitMessages(channel, 5);
    alice.send({ type: 'send', channel, text: 'live after recovery' });
    await bob.waitMessages(channel, 6);
    expect(bob.messages(channel).map((m) => [m.offset, m.text])).toEqual([
      ...Array.from({ length: 5 }, (_, i) => [last + 1 + i, `missed ${i}`]),
      [last + 6, 'live after recovery'],
    ]);
    const lastSeen = last + 6;
    bob.close();
    await bob.closed;

    for (let i = 0; i < REPLAY_LIMIT + 5; i++) alice.send({ type: 'send', channel, text: `while away ${i}` });
    await alice.next((f) => f.type === 'message' && f.text === `while away ${REPLAY_LIMIT + 4}`);
    bob = track(await Client.connect(r2.url, tokens.bob!));
    bob.send({ type: 'join', channel, since: lastSeen });
    const reload = await bob.next((f) => f.type === 'reload');
    expect(reload).toMatchObject({ channel, offset: lastSeen + REPLAY_LIMIT + 5 });
    expect(bob.messages(channel)).toHaveLength(0);
    // History is then paged over HTTP.
    const history = await api(r2, 'bob', 'GET', `/api/chat/channels/${channel}/messages?limit=3`);
    expect((history.body!.messages as { text: string }[]).map((m) => m.text)).toEqual([
      `while away ${REPLAY_LIMIT + 4}`, `while away ${REPLAY_LIMIT + 3}`, `while away ${REPLAY_LIMIT + 2}`,
    ]);
    alice.close();
    bob.close();
  });
  it('keeps direct channels private and stops delivery to a removed member', async () => {
    const dm = await api(r1, 'alice', 'POST', '/api/chat/direct', { email: email('bob') });
    expect(dm.status).toBe(201);
    const dmId = dm.body!.id as string;
    expect((await api(r2, 'bob', 'POST', '/api/chat/direct', { email: email('alice') })).body).toMatchObject({ id: dmId });
    const alice = track(await Client.connect(r1.url, tokens.alice!));
    const bob = track(await Client.connect(r2.url, tokens.bob!));
    const charlie = track(await Client.connect(r2.url, tokens.charlie!));
    await alice.join(dmId);
    await bob.join(dmId);
    charlie.send({ type: 'join', channel: dmId });
    await charlie.next((f) => f.type === 'error' && f.code === 'forbidden' && f.channel === dmId);
    charlie.send({ type: 'send', channel: dmId, text: 'let me in' });
    await charlie.next(() => charlie.frames.filter((x) => x.type === 'error' && x.code === 'forbidden').length === 2);
    alice.send({ type: 'send', channel: dmId, text: 'just us' });
    await bob.next((f) => f.type === 'message' && f.channel === dmId && f.text === 'just us');
    expect((await api(r1, 'charlie', 'GET', `/api/chat/channels/${encodeURIComponent(dmId)}/messages`)).status).toBe(404);

    // Group: the creator removes charlie while connected on another replica.
    const group = await api(r1, 'alice', 'POST', '/api/chat/channels', { name: 'removal', members: [email('charlie')] });
    const gid = group.body!.id as string;
    await alice.join(gid);
    await charlie.join(gid);
    alice.send({ type: 'send', channel: gid, text: 'before removal' });
    await charlie.next((f) => f.type === 'message' && f.text === 'before removal');
    expect((await api(r1, 'alice', 'DELETE', `/api/chat/channels/${gid}/members/${email('charlie')}`)).status).toBe(204);
    await charlie.next((f) => f.type === 'removed' && f.channel === gid);
    alice.send({ type: 'send', channel: gid, text: 'after removal' });
    await alice.next((f) => f.type === 'message' && f.text === 'after removal');
    // Charlie's replica receives the bus in publication order: a message he
    // does get, published after 'after removal', marks the point by which
    // that one would have reached him.
    const later = (await api(r1, 'alice', 'POST', '/api/chat/channels', { name: 'later', members: [email('charlie')] })).body!.id as string;
    await alice.join(later);
    await charlie.join(later);
    alice.send({ type: 'send', channel: later, text: 'published later' });
    await charlie.next((f) => f.type === 'message' && f.channel === later && f.text === 'published later');
    expect(charlie.messages(gid).map((m) => m.text)).toEqual(['before removal']);
    // A member that is not the creator cannot remove others.
    expect((await api(r2, 'charlie', 'DELETE', `/api/chat/channels/${channel}/members/${email('bob')}`)).status).toBe(403);
    for (const c of [alice, bob, charlie]) c.close();
  });
});

describe('chat refusals and limits', () => {
  it('refuses a missing, foreign-domain, expired or wrong-audience token at upgrade with a close code', async () => {
    const outsider = await idp.issueAccessToken({ email: 'mallory@outsider.example', audience: AUDIENCE, expiresInSec: 600 });
    const unverified = await idp.issueAccessToken({ email: email('eve'), emailVerified: false, audience: AUDIENCE, expiresInSec: 600 });
    const wrongAudience = await idp.issueAccessToken({ email: email('bob'), audience: 'audit', expiresInSec: 600 });
    const shortLived = await idp.issueAccessToken({ email: email('bob'), audience: AUDIENCE, expiresInSec: 1 });
    await new Promise((r) => setTimeout(r, 3000)); // 1 s lifetime + 1 s leeway
    const cases: [string | undefined, number, RegExp][] = [
      [undefined, CloseCode.Unauthenticated, /no access token/],
      [outsider, CloseCode.Forbidden, /domain outsider.example is not allowed/],
      [unverified, CloseCode.Forbidden, /not verified/],
      [wrongAudience, CloseCode.Unauthenticated, /aud/],
      [shortLived, CloseCode.Unauthenticated, /expired/],
      ['not-a-jwt', CloseCode.Unauthenticated, /token rejected/],
    ];
    for (const [token, code, reason] of cases) {
      const c = track(Client.open(r1.url, token));
      // A frame sent before the verdict must not be acted upon.
      c.ws.on('open', () => c.send({ type: 'send', channel, text: 'sneaky' }));
      const closed = await c.closed;
      expect(closed.code).toBe(code);
      expect(closed.reason).toMatch(reason);
      expect(c.frames).toEqual([]);
    }
    const history = await api(r1, 'alice', 'GET', `/api/chat/channels/${channel}/messages?limit=500`);
    expect((history.body!.messages as { text: string }[]).some((m) => m.text === 'sneaky')).toBe(false);
  });

  it('cuts off oversize and flooding clients without affecting others', async () => {
    const alice = track(await Client.connect(r1.url, tokens.alice!));
    const bob = track(await Client.connect(r2.url, tokens.bob!));
    const bigSender = track(await Client.connect(r1.url, tokens.charlie!));
    const flooder = track(await Client.connect(r2.url, tokens.charlie!));
    for (const c of [alice, bob, bigSender, flooder]) await c.join(channel);

    bigSender.send({ type: 'send', channel, text: 'x'.repeat(MAX_BYTES + 1) });
    expect(await bigSender.closed).toMatchObject({ code: CloseCode.MessageTooBig });
    for (let i = 0; i < 200; i++) flooder.send({ type: 'typing', channel });
    expect(await flooder.closed).toMatchObject({ code: CloseCode.RateLimited });

    const before = bob.messages(channel).length;
    for (let i = 0; i < 10; i++) alice.send({ type: 'send', channel, text: `still here ${i}` });
    await bob.waitMessages(channel, before + 10);
    expect(bob.messages(channel).slice(before).map((m) => m.text)).toEqual(Array.from({ length: 10 }, (_, i) => `still here ${i}`));
    expect(alice.ws.readyState).toBe(WebSocket.OPEN);
    expect(bob.ws.readyState).toBe(WebSocket.OPEN);
    const offsets = bob.messages(channel).map((m) => m.offset);
    expect(offsets.every((o, i) => i === 0 || o === offsets[i - 1]! + 1)).toBe(true);

    const metrics = await (await fetch(`${r1.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`chat_closes_total\\{code="${CloseCode.MessageTooBig}"\\} 1`));
    alice.close();
    bob.close();
  });

  it('a replica stopped with SIGTERM closes its sockets with 1012, announces them offline and exits cleanly', async () => {
    const r4 = await spawnRuntime('chat-4', env);
    const alice = track(await Client.connect(r1.url, tokens.alice!));
    await alice.join(channel);
    const bob = track(await Client.connect(r4.url, tokens.bob!));
    await bob.join(channel);
    await alice.next((f) => f.type === 'presence' && f.user === email('bob') && f.state === 'online');
    const onlineFrames = alice.frames.length;
    await r4.proc.stop();
    expect(r4.proc.child.exitCode).toBe(0);
    expect(await bob.closed).toMatchObject({ code: CloseCode.ServiceRestart });
    await alice.next((f) => f.type === 'presence' && f.user === email('bob') && f.state === 'offline' && alice.frames.indexOf(f) >= onlineFrames);
    alice.close();
  });

  it('drops a client that stops reading with 4010 instead of buffering without bound', async () => {
    const BIG = 60_000;
    const r5 = await spawnRuntime('chat-5', {
      // 1 MiB of user-space backlog: a reader that merely lags (bob, in this
      // busy test process) stays far below it once the kernel buffers absorb
      // the burst; one that stops reading blows through it. (64 KiB — one
      // message — cut off the lagging reader too on a loaded CI machine.)
      ...env, CHAT_RATE_PER_SEC: '5000', CHAT_RATE_BURST: '5000', CHAT_MAX_BUFFERED_BYTES: String(1024 * 1024), CHAT_MAX_MESSAGE_BYTES: String(BIG + 100),
    });
    try {
      const alice = track(await Client.connect(r5.url, tokens.alice!));
      const bob = track(await Client.connect(r5.url, tokens.bob!));
      const slow = track(await Client.connect(r5.url, tokens.charlie!));
      for (const c of [alice, bob, slow]) await c.join(channel);
      // Stop reading: the kernel buffers fill, then the server's send buffer.
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const before = bob.messages(channel).length;
      // 18 MB: well over what loopback socket buffers hold for a reader that
      // does not read (send buffer up to 4 MB, receive buffer up to 6 MB) plus the 1 MiB limit.
      const COUNT = 300;
      const text = 'y'.repeat(BIG - 100);
      for (let i = 0; i < COUNT; i++) alice.send({ type: 'send', channel, text: `${i} ${text}` });
      try {
        await bob.waitMessages(channel, before + COUNT, 60_000);
      } catch (err) {
        const m = (await (await fetch(`${r5.url}/metrics`)).text()).split('\n').filter((l) => l.startsWith('chat_'));
        console.log('slow-consumer test state (bob, alice, slow, alice buffered):', bob.messages(channel).length, alice.messages(channel).length, slow.messages(channel).length, alice.ws.bufferedAmount, m.join(' | '));
        throw err;
      }
      const got = bob.messages(channel).slice(before);
      expect(got.map((m) => Number(m.text.split(' ')[0]))).toEqual(Array.from({ length: COUNT }, (_, i) => i));
      const metrics = await (await fetch(`${r5.url}/metrics`)).text();
      expect(metrics).toMatch(new RegExp(`chat_closes_total\\{code="${CloseCode.SlowConsumer}"\\} 1`));
      (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
      // The close frame queues behind the unread data; if the client does not
      // drain it within 2 s the server terminates the socket (1006 client-side).
      expect([CloseCode.SlowConsumer, 1006]).toContain((await slow.closed).code);
      expect(slow.messages(channel).length).toBeLessThan(COUNT);
      expect(alice.ws.readyState).toBe(WebSocket.OPEN);
      expect(bob.ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      await r5.proc.stop();
    }
  });
});

describe('chat logs', () => {
  it('no access token or database password appears in the log of any replica the suite ran', () => {
    // chat-1, chat-2 and the three replicas individual cases started (one SIGKILLed, one SIGTERMed).
    expect(spawnedRuntimes.map((r) => r.proc.name).sort()).toEqual(['chat-1', 'chat-2', 'chat-3', 'chat-4', 'chat-5']);
    const secrets = {
      ...Object.fromEntries(Object.entries(tokens).map(([u, t]) => [`${u}'s access token`, t])),
      'app role password': decodeURIComponent(new URL(env.DATABASE_URL!).password),
      'superuser password': pgInst.password,
    };
    expect(Object.values(secrets).every((v) => v.length >= 8)).toBe(true);
    expect(secretsInRuntimeLogs(secrets)).toEqual([]);
  });
});
