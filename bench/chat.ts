// npm run bench:chat — chat fan-out with 2,000 connected clients (20 group
// channels × 100 members), against a bare `ws` broadcast server (no auth, no
// persistence, no Redis) driven by the same clients in the same run.
//
// Phase 1 (fixed load): 100 messages/s spread over the channels = 10,000
// deliveries/s; reports p50/p99 delivery latency (send → receive, one clock).
// Phase 2 (saturation): each channel's sender keeps a window of messages in
// flight (next send on ack); reports deliveries/s.
// Both servers run as child processes; the clients live in this process.
import path from 'node:path';
import pg from 'pg';
import { WebSocket, WebSocketServer } from 'ws';
import { startDevIdp } from '../hack/dev-idp/provider.js';
import { startPostgres } from '../hack/local/postgres.js';
import { freePort, startProcess, waitFor, workDir, type Managed } from '../hack/local/process.js';
import { startRedis } from '../hack/local/redis.js';

const CHANNELS = 20;
const USERS = 100;
const FIXED_MSGS_PER_SEC = Number(process.env.BENCH_CHAT_RATE ?? 100);
const PHASE_SECONDS = Number(process.env.BENCH_CHAT_SECONDS ?? 10);
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
} else {
  await main();
}

interface Target {
  name: string;
  wsUrl: string;
  tokens: string[];
  channelIds: string[];
}

interface PhaseResult {
  deliveries: number;
  seconds: number;
  deliveriesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  expected?: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function runTarget(t: Target): Promise<{ fixed: PhaseResult; saturation: PhaseResult }> {
  let recording = false;
  let received = 0;
  let latencies: number[] = [];
  let lastFrameAt = performance.now();
  const onData = (data: WebSocket.RawData) => {
    lastFrameAt = performance.now();
    if (!recording) return;
    const s = data.toString();
    // Cheap extraction: parsing every frame would make the client the bottleneck.
    const i = s.indexOf('"text":"');
    if (i === -1 || !s.startsWith('{"type":"message"')) return;
    received++;
    latencies.push(performance.now() - Number.parseFloat(s.slice(i + 8)));
  };

  const sockets: WebSocket[] = [];
  const senders: { ws: WebSocket; channel: string; acks: (() => void)[] }[] = [];
  const open = (userIdx: number) =>
    new Promise<WebSocket>((resolve, reject) => {
      const token = t.tokens[userIdx];
      const ws = new WebSocket(t.wsUrl, token ? { headers: { authorization: `Bearer ${token}` } } : {});
      ws.once('error', reject);
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
  const send = (s: (typeof senders)[number]) =>
    new Promise<void>((resolve) => {
      s.acks.push(resolve);
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
  await waitFor('fixed-rate deliveries', async () => received >= expected, { timeoutMs: 30_000, intervalMs: 50 }).catch(() => {});
  const fixedSeconds = (performance.now() - started) / 1000;
  recording = false;
  latencies.sort((a, b) => a - b);
  const fixed: PhaseResult = {
    deliveries: received, expected, seconds: fixedSeconds, deliveriesPerSec: received / fixedSeconds,
    p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99),
  };
  await new Promise((r) => setTimeout(r, 1000));

  // Phase 2: saturation with a window per sender.
  received = 0;
  latencies = [];
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
  const satSeconds = (performance.now() - satStart) / 1000;
  recording = false;
  latencies.sort((a, b) => a - b);
  const saturation: PhaseResult = {
    deliveries: received, seconds: satSeconds, deliveriesPerSec: received / satSeconds,
    p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99),
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
  const [pgInst, redis, idp] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN })]);
  const children: Managed[] = [];
  try {
    const admin = new pg.Client({ connectionString: pgInst.url });
    await admin.connect();
    await admin.query('CREATE DATABASE bench_chat');
    await admin.end();

    const chatPort = await freePort();
    children.push(
      await startChild('bench-chat-runtime', [path.resolve('src/runtime-services/main.ts')], {
        RUNTIME_SERVICES: 'chat', HOST: '127.0.0.1', PORT: String(chatPort), LOG_LEVEL: 'warn', REPLICA_ID: 'bench',
        DATABASE_URL: `postgres://postgres:${pgInst.password}@127.0.0.1:${pgInst.port}/bench_chat`, REDIS_URL: redis.url,
        OIDC_ISSUER_URL: idp.issuer, OIDC_AUDIENCE: 'chat', AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
        CHAT_RATE_PER_SEC: '100000', CHAT_RATE_BURST: '100000', AUDIT_STREAM: 'bench:chat:audit',
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

    const bare = await runTarget({ name: 'bare', wsUrl: `ws://127.0.0.1:${barePort}`, tokens: [], channelIds: channelIds.map((_, i) => `c${i}`) });
    const chat = await runTarget({ name: 'chat', wsUrl: `ws://127.0.0.1:${chatPort}/api/chat/ws`, tokens, channelIds });
    const round = (r: PhaseResult) => ({
      ...r, seconds: Number(r.seconds.toFixed(2)), deliveriesPerSec: Math.round(r.deliveriesPerSec),
      p50Ms: Number(r.p50Ms.toFixed(1)), p99Ms: Number(r.p99Ms.toFixed(1)),
    });
    const ratio = chat.saturation.deliveriesPerSec / bare.saturation.deliveriesPerSec;
    console.log(JSON.stringify({
      clients: CHANNELS * USERS,
      channels: CHANNELS,
      fixedLoadDeliveriesPerSec: FIXED_MSGS_PER_SEC * USERS,
      bare: { fixed: round(bare.fixed), saturation: round(bare.saturation) },
      chat: { fixed: round(chat.fixed), saturation: round(chat.saturation) },
      saturationThroughputRatio: Number(ratio.toFixed(3)),
      goal: 'ratio >= 0.5 and chat p99 < 100 ms at 10k deliveries/s',
      met: ratio >= 0.5 && chat.fixed.p99Ms < 100 && chat.fixed.deliveries === chat.fixed.expected,
    }, null, 2));
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await Promise.all([pgInst.stop(), redis.stop(), idp.stop()]);
  }
}
