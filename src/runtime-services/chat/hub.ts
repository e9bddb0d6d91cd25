// The chat hub of one replica: which local connections watch which channel,
// the Redis pub/sub fan-out between replicas, presence bookkeeping and the
// audit events of state changes.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AuditPublisher } from '../audit-publisher/publisher.js';
import { ChannelFeed } from './channel-feed.js';
import type { ChatConnection } from './connection.js';
import type { PresenceStore } from './presence.js';
import { busEventChannel, type BusEvent } from './protocol.js';
import type { ChatStore } from './store.js';

const BUS_PREFIX = 'chat:ch:';

export interface HubMetrics {
  messages(): void;
  deliveries(n: number): void;
}

export interface HubOptions {
  gapFillMs: number;
  replayLimit: number;
  presenceTtlMs: number;
}

export class ChatHub {
  private readonly feeds = new Map<string, ChannelFeed>();
  private readonly feedReady = new Map<string, Promise<void>>();
  /** channel → user → local connection count, for presence. */
  private readonly local = new Map<string, Map<string, number>>();
  private readonly users = new Map<string, number>();
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly store: ChatStore,
    private readonly presence: PresenceStore,
    private readonly pub: Redis,
    private readonly sub: Redis,
    private readonly audit: AuditPublisher,
    private readonly opts: HubOptions,
    private readonly metrics: HubMetrics,
    private readonly log: Logger,
  ) {
    sub.on('message', (redisChannel: string, payload: string) => {
      if (!redisChannel.startsWith(BUS_PREFIX)) return;
      try {
        this.onBus(JSON.parse(payload) as BusEvent);
      } catch (err) {
        this.log.warn({ err: (err as Error).message, redisChannel }, 'dropping unreadable chat bus event');
      }
    });
  }

  start(): void {
    this.timers.push(setInterval(() => void this.heartbeat(), Math.max(100, Math.floor(this.opts.presenceTtlMs / 3))));
    this.timers.push(setInterval(() => void this.sweep(), Math.max(100, Math.floor(this.opts.presenceTtlMs / 2))));
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  async publish(e: BusEvent): Promise<void> {
    await this.pub.publish(BUS_PREFIX + busEventChannel(e), JSON.stringify(e));
  }

  private onBus(e: BusEvent): void {
    const feed = this.feeds.get(busEventChannel(e));
    if (!feed) return;
    switch (e.t) {
      case 'm':
        feed.onMessage(e.m);
        break;
      case 'p':
        feed.broadcast({ type: 'presence', channel: e.channel, user: e.user, state: e.state });
        break;
      case 'y':
        feed.broadcast({ type: 'typing', channel: e.channel, user: e.user }, e.user);
        break;
      case 'x':
        feed.broadcast({ type: 'member', channel: e.channel, user: e.user, change: e.change });
        if (e.change === 'removed') {
          for (const c of [...feed.conns]) {
            if (c.user !== e.user) continue;
            c.sendFrame({ type: 'removed', channel: e.channel });
            void this.leave(c, e.channel);
          }
        }
        break;
    }
  }

  private feedFor(channel: string): { feed: ChannelFeed; ready: Promise<void> } {
    let feed = this.feeds.get(channel);
    if (!feed) {
      const created = new ChannelFeed(channel, this.store, this.opts.gapFillMs, this.log, (n) => this.metrics.deliveries(n));
      feed = created;
      this.feeds.set(channel, created);
      // Subscribe before reading the last offset: anything committed after
      // the read is then guaranteed to arrive over the bus.
      const ready = this.sub
        .subscribe(BUS_PREFIX + channel)
        .then(() => this.store.lastOffset(channel))
        .then((last) => created.init(last));
      ready.catch(() => {
        this.feeds.delete(channel);
        this.feedReady.delete(channel);
      });
      this.feedReady.set(channel, ready);
    }
    return { feed, ready: this.feedReady.get(channel)! };
  }

  connect(conn: ChatConnection): void {
    this.users.set(conn.user, (this.users.get(conn.user) ?? 0) + 1);
    void this.presence.heartbeat([], [conn.user]).catch(() => {});
  }

  async join(conn: ChatConnection, channel: string, since: number | undefined): Promise<void> {
    if (conn.channels.has(channel)) return;
    if (!(await this.store.isMember(channel, conn.user))) {
      conn.sendFrame({ type: 'error', code: 'forbidden', channel, message: 'not a member of this channel' });
      return;
    }
    const { feed, ready } = this.feedFor(channel);
    feed.joining++;
    try {
      await ready;
      if (conn.closed) return;
      conn.startChannel(channel);
      feed.conns.add(conn);
    } finally {
      feed.joining--;
    }
    const upTo = feed.delivered;
    const firstHere = this.countLocal(channel, conn.user, +1) === 1;
    const online = firstHere && (await this.presence.enter(channel, conn.user));
    conn.sendFrame({ type: 'joined', channel, offset: upTo, online: await this.presence.onlineIn(channel) });
    if (online) await this.publish({ t: 'p', channel, user: conn.user, state: 'online' });

    if (since !== undefined && since < upTo) {
      if (upTo - since > this.opts.replayLimit) {
        // Too far behind to replay over the socket: the client fetches
        // history over HTTP instead.
        conn.sendFrame({ type: 'reload', channel, offset: upTo, reason: `more than ${this.opts.replayLimit} messages missed` });
      } else {
        const missed = await this.store.messagesBetween(channel, since, upTo, this.opts.replayLimit);
        for (const m of missed) conn.send(JSON.stringify({ type: 'message', ...m }));
      }
    }
    conn.finishCatchUp(channel, upTo);
  }

  async leave(conn: ChatConnection, channel: string): Promise<void> {
    if (!conn.channels.delete(channel)) return;
    const feed = this.feeds.get(channel);
    feed?.conns.delete(conn);
    if (feed && feed.conns.size === 0 && feed.joining === 0) {
      this.feeds.delete(channel);
      this.feedReady.delete(channel);
      feed.dispose();
      await this.sub.unsubscribe(BUS_PREFIX + channel).catch(() => {});
    }
    if (this.countLocal(channel, conn.user, -1) === 0 && (await this.presence.leave(channel, conn.user))) {
      await this.publish({ t: 'p', channel, user: conn.user, state: 'offline' });
    }
  }

  async disconnect(conn: ChatConnection): Promise<void> {
    conn.closed = true;
    await Promise.all([...conn.channels.keys()].map((ch) => this.leave(conn, ch)));
    const left = (this.users.get(conn.user) ?? 1) - 1;
    if (left <= 0) {
      this.users.delete(conn.user);
      await this.presence.leaveGlobal(conn.user);
    } else this.users.set(conn.user, left);
  }

  async send(conn: ChatConnection, channel: string, text: string, ref: string | undefined, requestId: string): Promise<void> {
    const m = await this.store.appendMessage(channel, conn.user, text);
    if (!m) {
      conn.sendFrame({ type: 'error', code: 'forbidden', channel, ref, message: 'not a member of this channel' });
      return;
    }
    this.metrics.messages();
    await this.publish({ t: 'm', m });
    conn.sendFrame({ type: 'ack', channel, ref, offset: m.offset, id: m.id });
    await this.audit
      .publish({
        actor: conn.user, action: 'chat.message.send', target: `chat/channel/${channel}`, outcome: 'success', requestId,
        details: { offset: m.offset, messageId: m.id, bytes: Buffer.byteLength(text) },
      })
      .catch((err: Error) => this.log.error({ err: err.message, channel }, 'audit event for chat message was not published'));
  }

  async typing(conn: ChatConnection, channel: string): Promise<void> {
    if (!conn.channels.has(channel)) return;
    await this.publish({ t: 'y', channel, user: conn.user });
  }

  /** Closes every local connection (shutdown) and takes their presence down. */
  async closeAll(code: number, reason: string, conns: Iterable<ChatConnection>): Promise<void> {
    const list = [...conns];
    for (const c of list) c.close(code, reason);
    await Promise.all(list.map((c) => this.disconnect(c)));
  }

  private countLocal(channel: string, user: string, delta: number): number {
    let perUser = this.local.get(channel);
    if (!perUser) this.local.set(channel, (perUser = new Map()));
    const n = (perUser.get(user) ?? 0) + delta;
    if (n <= 0) {
      perUser.delete(user);
      if (perUser.size === 0) this.local.delete(channel);
      return 0;
    }
    perUser.set(user, n);
    return n;
  }

  private async heartbeat(): Promise<void> {
    const pairs: [string, string][] = [];
    for (const [channel, perUser] of this.local) for (const user of perUser.keys()) pairs.push([channel, user]);
    try {
      await this.presence.heartbeat(pairs, this.users.keys());
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'presence heartbeat failed');
    }
  }

  /** Announces users whose replica stopped heartbeating (crashed). */
  private async sweep(): Promise<void> {
    for (const channel of this.feeds.keys()) {
      try {
        for (const user of await this.presence.sweep(channel)) {
          await this.publish({ t: 'p', channel, user, state: 'offline' });
        }
      } catch (err) {
        this.log.warn({ err: (err as Error).message, channel }, 'presence sweep failed');
      }
    }
  }
}
