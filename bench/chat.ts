// npm run bench:chat — chat fan-out with 2,000 connected clients (20 group
// channels × 100 members), three servers driven by the same clients:
//   bare      — a bare `ws` broadcast server (no auth, no persistence, no
//               Redis): the physical ceiling of fan-out on this machine;
//   chat      — the real runtime (RUNTIME_SERVICES=chat);
//   reference — chat's real work per message without the service: bare `ws`,
//               the same PostgreSQL insert (ChatStore.appendMessage), Redis
//               pub/sub fan-out to the local sockets, and the audit XADD chat
//               publishes per message; no auth, no presence, no rate limits.
// chat/reference is the service's own overhead; chat/bare the distance to
// the ceiling. Order bare → chat → reference → … → bare (BENCH_ROUNDS).
//
// Phase 1 (fixed load): 100 messages/s spread over the channels = 10,000
// deliveries/s; p50/p99 delivery latency (send → receive, one clock) over
// every expected delivery: one that has not arrived 30 s after the last send
// is a failure, counted, and ranks as infinitely late in the percentiles.
// Phase 2 (saturation): each channel's sender keeps a window of messages in
// flight (next send on ack, or after an ack timeout, which is a failure);
// deliveries/s until the last delivery, missing deliveries counted.
// All servers run as child processes; the clients live in this process.
import path from 'node:path';
import pg from 'pg';
import { WebSocket, WebSocketServer } from 'ws';
import { startDevIdp } from '../hack/dev-idp/provider.js';
import { startPostgres } from '../hack/local/postgres.js';
import { freePort, startProcess, waitFor, workDir, type Managed } from '../hack/local/process.js';
import { startRedis } from '../hack/local/redis.js';
import { Redis } from 'ioredis';
import { ChatStore } from '../src/runtime-services/chat/store.js';
import { createAuditPublisher } from '../src/runtime-services/audit-publisher/publisher.js';
import { Bench, roundsFromEnv } from './harness.js';

const CHANNELS = 20;
const USERS = 100;
const FIXED_MSGS_PER_SEC = Number(process.env.BENCH_CHAT_RATE ?? 100);
const PHASE_SECONDS = Number(process.env.BENCH_CHAT_SECONDS ?? 6);
const ROUNDS = roundsFromEnv(2);
const DELIVERY_TIMEOUT_MS = 30_000;
const ACK_TIMEOUT_MS = 10_000;
const WINDOW = 8;
const DOMAIN = 'family.test';

// ---- bare baseline server (child process mode) ----
if (process.argv[2] === '--bare') {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[3]) });
  const members = new Map<string, Set<WebSocket>>();
  const offsets = new Map<string, number>();
  wss.on('connection', (ws) => {
    ws.send(JSON.stringify({ type: 'ready' }));
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as { type: string; channel: string; text?: string; ref?: string };
      if (f.type === 'join') {
        if (!members.has(f.channel)) members.set(f.channel, new Set());
        members.get(f.channel)!.add(ws);
        ws.send(JSON.stringify({ type: 'joined', channel: f.channel, offset: offsets.get(f.channel) ?? 0 }));
      } else if (f.type === 'send') {
        const offset = (offsets.get(f.channel) ?? 0) + 1;
        offsets.set(f.channel, offset);
        const out = JSON.stringify({ type: 'message', channel: f.channel, offset, id: String(offset), from: 'bare', text: f.text, ts: new Date().toISOString() });
        for (const m of members.get(f.channel) ?? []) m.send(out);
        ws.send(JSON.stringify({ type: 'ack', channel: f.channel, ref: f.ref, offset }));
      }
    });
  });
  wss.on('listening', () => console.log('bare server listening'));
} else if (process.argv[2] === '--reference') {
  await referenceServer(Number(process.argv[3]), process.env.BENCH_DATABASE_URL!, process.env.BENCH_REDIS_URL!);
} else {
  await main();
}

/** Chat's per-message work (insert, pub/sub fan-out, audit XADD) behind a bare ws server. */
async function referenceServer(port: number, databaseUrl: string, redisUrl: string) {
  // Same pool size as chat's default CHAT_DB_POOL_MAX.
  const store = new ChatStore(new pg.Pool({ connectionString: databaseUrl, max: 10 }));
  await store.migrate();
  const members = Array.from({ length: USERS }, (_, u) => `user${u}@${DOMAIN}`);
  for (let c = 0; c < CHANNELS; c++) await store.createChannel({ id: `c${c}`, kind: 'group', name: `ref-${c}`, createdBy: members[0]!, members });
  const pub = new Redis(redisUrl);
  const sub = new Redis(redisUrl);
  const audit = createAuditPublisher(pub, { stream: 'bench:chat:reference:audit', source: 'reference' });
  const local = new Map<string, Set<WebSocket>>();
  sub.on('message', (bus: string, payload: string) => {
    const m = JSON.parse(payload) as { channel: string; offset: number; id: string; from: string; text: string; ts: string };
    const out = JSON.stringify({ type: 'message', ...m });
    for (const ws of local.get(bus.slice(4)) ?? []) ws.send(out);
  });
  const wss = new WebSocketServer({ host: '127.0.0.1', port });
  wss.on('connection', (ws) => {
    ws.send(JSON.stringify({ type: 'ready' }));
    ws.on('message', async (data) => {
      const f = JSON.parse(data.toString()) as { type: string; channel: string; text?: string; ref?: string };
      if (f.type === 'join') {
        if (!local.has(f.channel)) {
          local.set(f.channel, new Set());
          await sub.subscribe(`ref:${f.channel}`);
        }
        local.get(f.channel)!.add(ws);
        ws.send(JSON.stringify({ type: 'joined', channel: f.channel, offset: 0 }));
      } else if (f.type === 'send') {
        const m = await store.appendMessage(f.channel, members[0]!, f.text ?? '');
        if (!m) throw new Error(`reference: ${members[0]} is not a member of ${f.channel}`);
        await pub.publish(`ref:${f.channel}`, JSON.stringify(m));
        ws.send(JSON.stringify({ type: 'ack', channel: f.channel, ref: f.ref, offset: m.offset, id: m.id }));
        await audit.publish({ actor: members[0]!, action: 'chat.message.send', target: `chat/channel/${f.channel}`, outcome: 'success', requestId: f.ref ?? 'ref', details: { offset: m.offset, messageId: m.id, bytes: Buffer.byteLength(m.text) } });
      }
    });
  });
  wss.on('listening', () => console.log('reference server listening'));
}

interface Target {
  name: string;
  wsUrl: string;
  tokens: string[];
  channelIds: string[];
}

interface PhaseResult {
  deliveries: number;
  expected: number;
  /** Expected deliveries that never arrived, plus sends never acked. */
  failures: number;
  unacked: number;
  seconds: number;
  deliveriesPerSec: number;
  /** Over every expected delivery; null when more than 1 % (50 %) never arrived. */
  p50Ms: number | null;
  p99Ms: number | null;
}

/** Nearest-rank percentile over `expected` deliveries of which `latencies` arrived (the rest rank last). */
function percentileOfExpected(latencies: number[], expected: number, p: number): number | null {
  const rank = Math.max(1, Math.ceil((p / 100) * expected));
  if (rank > latencies.length) return null;
  const sorted = [...latencies].sort((a, b) => a - b);
  return sorted[rank - 1]!;
}

async function runTarget(t: Target): Promise<{ fixed: PhaseResult; saturation: PhaseResult }> {
  let recording = false;
  let received = 0;
  let latencies: number[] = [];
  let lastFrameAt = performance.now();
  let lastDeliveryAt = 0;
  const onData = (data: WebSocket.RawData) => {
    lastFrameAt = performance.now();
    if (!recording) return;
    const s = data.toString();
    // Cheap extraction: parsing every frame would make the client the bottleneck.
    const i = s.indexOf('"text":"');
    if (i === -1 || !s.startsWith('{"type":"message"')) return;
    received++;
    lastDeliveryAt = performance.now();
    latencies.push(lastDeliveryAt - Number.parseFloat(s.slice(i + 8)));
  };

  const sockets: WebSocket[] = [];
  const senders: { ws: WebSocket; channel: string; acks: (() => void)[] }[] = [];
  const open = (userIdx: number) =>
    new Promise<WebSocket>((resolve, reject) => {
      const token = t.tokens[userIdx];
      const ws = new WebSocket(t.wsUrl, token ? { headers: { authorization: `Bearer ${token}` } } : {});
      ws.once('error', reject);
      // A server that refuses the socket closes it: fail instead of waiting for "ready" forever.
      ws.once('close', (code, reason) => reject(new Error(`${t.name}: socket closed before ready (${code} ${reason})`)));
      ws.once('message', () => resolve(ws)); // "ready"
    });
  const join = (ws: WebSocket, channel: string) =>
    new Promise<void>((resolve) => {
      const onJoined = (d: WebSocket.RawData) => {
        if (d.toString().startsWith('{"type":"joined"')) {
          ws.off('message', onJoined);
          resolve();
        }
      };
      ws.on('message', onJoined);
      ws.send(JSON.stringify({ type: 'join', channel }));
    });

  for (let u = 0; u < USERS; u++) {
    await Promise.all(
      t.channelIds.map(async (channel, c) => {
        const ws = await open(u);
        sockets.push(ws);
        await join(ws, channel);
        ws.on('message', onData);
        if (u === 0) {
          const s = { ws, channel, acks: [] as (() => void)[] };
          ws.on('message', (d) => {
            if (d.toString().startsWith('{"type":"ack"')) s.acks.shift()?.();
          });
          senders[c] = s;
        }
      }),
    );
  }
  // Measure from quiet: 2,000 joins announce presence to 100 members each.
  await waitFor('join traffic drained', async () => performance.now() - lastFrameAt > 1500, { timeoutMs: 120_000, intervalMs: 100 });
  let unacked = 0;
  let sent = 0;
  // An ack that does not come within ACK_TIMEOUT_MS is a failure; the
  // sender moves on so a lost ack cannot stall the phase.
  const send = (s: (typeof senders)[number]) =>
    new Promise<void>((resolve) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        unacked++;
        resolve();
      }, ACK_TIMEOUT_MS);
      s.acks.push(() => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
      });
      sent++;
      s.ws.send(JSON.stringify({ type: 'send', channel: s.channel, text: `${performance.now()}` }));
    });

  // Phase 1: fixed rate.
  recording = true;
  received = 0;
  latencies = [];
  const total = FIXED_MSGS_PER_SEC * PHASE_SECONDS;
  const started = performance.now();
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / FIXED_MSGS_PER_SEC;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    void send(senders[i % CHANNELS]!);
  }
  const expected = total * USERS;
  // Not arrived within the timeout: counted below as failures, not swallowed.
  await waitFor('fixed-rate deliveries', async () => received >= expected, { timeoutMs: DELIVERY_TIMEOUT_MS, intervalMs: 50 }).catch(() => {});
  const fixedSeconds = (Math.max(lastDeliveryAt, started) - started) / 1000;
  recording = false;
  const fixed: PhaseResult = {
    deliveries: received, expected, failures: Math.max(0, expected - received) + unacked, unacked, seconds: fixedSeconds, deliveriesPerSec: received / fixedSeconds,
    p50Ms: percentileOfExpected(latencies, expected, 50), p99Ms: percentileOfExpected(latencies, expected, 99),
  };
  // Quiet again before the next phase (late acks of phase 1 included).
  await waitFor('phase 1 drained', async () => performance.now() - lastFrameAt > 1000, { timeoutMs: 60_000, intervalMs: 100 });

  // Phase 2: saturation with a window per sender.
  received = 0;
  latencies = [];
  unacked = 0;
  sent = 0;
  recording = true;
  const satStart = performance.now();
  const deadline = satStart + PHASE_SECONDS * 1000;
  await Promise.all(
    senders.map(async (s) => {
      const inFlight = new Set<Promise<void>>();
      while (performance.now() < deadline) {
        const p = send(s).then(() => void inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= WINDOW) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    }),
  );
  const satExpected = sent * USERS;
  await waitFor('saturation deliveries', async () => received >= satExpected, { timeoutMs: DELIVERY_TIMEOUT_MS, intervalMs: 50 }).catch(() => {});
  // Until the last delivery, not the last ack: fan-out still queued counts.
  const satSeconds = (Math.max(lastDeliveryAt, satStart) - satStart) / 1000;
  recording = false;
  const saturation: PhaseResult = {
    deliveries: received, expected: satExpected, failures: Math.max(0, satExpected - received) + unacked, unacked, seconds: satSeconds,
    deliveriesPerSec: received / satSeconds,
    p50Ms: percentileOfExpected(latencies, satExpected, 50), p99Ms: percentileOfExpected(latencies, satExpected, 99),
  };
  for (const ws of sockets) ws.terminate();
  return { fixed, saturation };
}

async function startChild(name: string, args: string[], env: Record<string, string>, readyUrl: string): Promise<Managed> {
  const proc = startProcess(name, process.execPath, ['--import', import.meta.resolve('tsx'), ...args], { cwd: workDir(name), env });
  await waitFor(`${name} ready`, async () => (await fetch(readyUrl).catch(() => undefined))?.status !== undefined, { proc, timeoutMs: 60_000 });
  return proc;
}

async function main() {
  const bench = new Bench('chat', 'deliveries/s', { clients: CHANNELS * USERS, channels: CHANNELS, fixedLoadDeliveriesPerSec: FIXED_MSGS_PER_SEC * USERS, phaseSeconds: PHASE_SECONDS, window: WINDOW, rounds: ROUNDS });
  const [pgInst, redis, idp] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN })]);
  const children: Managed[] = [];
  try {
    const admin = new pg.Client({ connectionString: pgInst.url });
    await admin.connect();
    await admin.query('CREATE DATABASE bench_chat');
    await admin.query('CREATE DATABASE bench_chat_reference');
    await admin.end();

    const chatPort = await freePort();
    children.push(
      await startChild('bench-chat-runtime', [path.resolve('src/runtime-services/main.ts')], {
        RUNTIME_SERVICES: 'chat', HOST: '127.0.0.1', PORT: String(chatPort), LOG_LEVEL: 'warn', REPLICA_ID: 'bench',
        DATABASE_URL: `postgres://postgres:${pgInst.password}@127.0.0.1:${pgInst.port}/bench_chat`, REDIS_URL: redis.url,
        OIDC_ISSUER_URL: idp.issuer, OIDC_AUDIENCE: 'chat', AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
        CHAT_RATE_PER_SEC: '100000', CHAT_RATE_BURST: '100000', AUDIT_STREAM: 'bench:chat:audit',
        // Each user holds one socket per channel (20); the default cap is 10.
        CHAT_MAX_CONNECTIONS_PER_USER: String(CHANNELS * 2),
      }, `http://127.0.0.1:${chatPort}/ready`),
    );
    const tokens: string[] = [];
    for (let u = 0; u < USERS; u++) tokens.push(await idp.issueAccessToken({ email: `user${u}@${DOMAIN}`, audience: 'chat', expiresInSec: 3600 }));
    const channelIds: string[] = [];
    for (let c = 0; c < CHANNELS; c++) {
      const res = await fetch(`http://127.0.0.1:${chatPort}/api/chat/channels`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens[0]}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `bench-${c}`, members: Array.from({ length: USERS - 1 }, (_, u) => `user${u + 1}@${DOMAIN}`) }),
      });
      if (res.status !== 201) throw new Error(`creating channel failed: ${res.status} ${await res.text()}`);
      channelIds.push(((await res.json()) as { id: string }).id);
    }

    const barePort = await freePort();
    children.push(await startChild('bench-chat-bare', [path.resolve('bench/chat.ts'), '--bare', String(barePort)], {}, `http://127.0.0.1:${barePort}/`));
    const refPort = await freePort();
    children.push(await startChild('bench-chat-reference', [path.resolve('bench/chat.ts'), '--reference', String(refPort)], {
      BENCH_DATABASE_URL: `postgres://postgres:${pgInst.password}@127.0.0.1:${pgInst.port}/bench_chat_reference`, BENCH_REDIS_URL: redis.url,
    }, `http://127.0.0.1:${refPort}/`));

    const round = (r: PhaseResult) => ({
      ...r, seconds: Number(r.seconds.toFixed(2)), deliveriesPerSec: Math.round(r.deliveriesPerSec),
      p50Ms: r.p50Ms === null ? null : Number(r.p50Ms.toFixed(1)), p99Ms: r.p99Ms === null ? null : Number(r.p99Ms.toFixed(1)),
    });
    const targets: Record<string, Target> = {
      bare: { name: 'bare', wsUrl: `ws://127.0.0.1:${barePort}`, tokens: [], channelIds: channelIds.map((_, i) => `c${i}`) },
      chat: { name: 'chat', wsUrl: `ws://127.0.0.1:${chatPort}/api/chat/ws`, tokens, channelIds },
      reference: { name: 'reference', wsUrl: `ws://127.0.0.1:${refPort}`, tokens: [], channelIds: channelIds.map((_, i) => `c${i}`) },
    };
    const side = (name: string) => async () => {
      const r = await runTarget(targets[name]!);
      const fixed = round(r.fixed);
      const saturation = round(r.saturation);
      console.log(`    ${name}: fixed ${fixed.deliveries}/${fixed.expected} p50 ${fixed.p50Ms} p99 ${fixed.p99Ms} ms; saturation ${saturation.deliveriesPerSec}/s, ${saturation.failures} failures`);
      return { value: r.saturation.deliveriesPerSec, extra: { fixed, saturation } };
    };
    await bench.rounds(ROUNDS, `${CHANNELS * USERS} clients`, [['bare', side('bare')], ['chat', side('chat')], ['reference', side('reference')]]);
    const g = `${CHANNELS * USERS} clients`;
    bench.ratio('chat/reference', 'chat', 'reference', g, "saturation deliveries/s: the service's own overhead over its per-message work (insert, pub/sub, audit XADD)");
    bench.ratio('chat/bare', 'chat', 'bare', g, 'saturation deliveries/s against the bare ws broadcast ceiling (goal ≥ 0.5)');
    for (const name of Object.keys(targets)) {
      const runs = bench.runs.filter((x) => x.side === name).map((x) => x.extra as { fixed: ReturnType<typeof round>; saturation: ReturnType<typeof round> });
      const failures = runs.reduce((a, x) => a + x.fixed.failures + x.saturation.failures, 0);
      bench.figures[name] = {
        saturation: bench.sideSpread(name, g),
        fixedP50Ms: runs.map((x) => x.fixed.p50Ms), fixedP99Ms: runs.map((x) => x.fixed.p99Ms),
        failures,
      };
      bench.check(`${name}: every expected delivery arrived`, failures === 0, `${failures} deliveries timed out or sends unacked over ${runs.length} runs`);
    }
    bench.notes.push(`fixed load ${FIXED_MSGS_PER_SEC * USERS} deliveries/s for ${PHASE_SECONDS} s; p99 over every expected delivery (a missing one ranks last; null = more than 1 % missing); goal: chat p99 < 100 ms`);
  } finally {
    bench.finish();
    await Promise.all(children.map((c) => c.stop()));
    await Promise.all([pgInst.stop(), redis.stop(), idp.stop()]);
  }
}
