// Presence in Redis sorted sets: one member per (user, replica) scored with
// its expiry time. Live replicas refresh their entries every TTL/3; a crashed
// replica's entries simply expire, and whichever replica sweeps them first
// (ZREM returns 1 for exactly one caller) announces the user offline.
import type { Redis } from 'ioredis';

const SEP = '\n';
const channelKey = (channel: string) => `chat:presence:ch:${channel}`;
const USERS_KEY = 'chat:presence:users';

export class PresenceStore {
  constructor(
    private readonly redis: Redis,
    private readonly replicaId: string,
    private readonly ttlMs: number,
  ) {}

  private member(user: string) {
    return `${user}${SEP}${this.replicaId}`;
  }

  /** Marks `user` online here; resolves true if no replica had them online before. */
  async enter(channel: string, user: string): Promise<boolean> {
    const wasOnline = await this.isOnline(channel, user);
    const expiry = Date.now() + this.ttlMs;
    await this.redis.multi().zadd(channelKey(channel), expiry, this.member(user)).zadd(USERS_KEY, expiry, this.member(user)).exec();
    return !wasOnline;
  }

  /** Removes this replica's entry; resolves true if the user is now offline everywhere. */
  async leave(channel: string, user: string): Promise<boolean> {
    await this.redis.zrem(channelKey(channel), this.member(user));
    return !(await this.isOnline(channel, user));
  }

  async leaveGlobal(user: string): Promise<void> {
    await this.redis.zrem(USERS_KEY, this.member(user));
  }

  /** Refreshes every (channel, user) this replica holds, in one round trip. */
  async heartbeat(entries: Iterable<[channel: string, user: string]>, users: Iterable<string>): Promise<void> {
    const expiry = Date.now() + this.ttlMs;
    const p = this.redis.pipeline();
    for (const [channel, user] of entries) p.zadd(channelKey(channel), expiry, this.member(user));
    for (const user of users) p.zadd(USERS_KEY, expiry, this.member(user));
    if (p.length > 0) await p.exec();
  }

  async isOnline(channel: string, user: string): Promise<boolean> {
    return (await this.onlineIn(channel)).includes(user);
  }

  async onlineIn(channel: string): Promise<string[]> {
    const live = await this.redis.zrangebyscore(channelKey(channel), Date.now(), '+inf');
    return [...new Set(live.map((m) => m.slice(0, m.indexOf(SEP))))].sort();
  }

  async onlineUsers(): Promise<string[]> {
    const live = await this.redis.zrangebyscore(USERS_KEY, Date.now(), '+inf');
    return [...new Set(live.map((m) => m.slice(0, m.indexOf(SEP))))].sort();
  }

  /** Removes expired entries of `channel`; returns users this call took offline. */
  async sweep(channel: string): Promise<string[]> {
    const now = Date.now();
    const expired = await this.redis.zrangebyscore(channelKey(channel), '-inf', now);
    const offline: string[] = [];
    for (const m of expired) {
      if ((await this.redis.zrem(channelKey(channel), m)) !== 1) continue;
      const user = m.slice(0, m.indexOf(SEP));
      if (!(await this.isOnline(channel, user))) offline.push(user);
    }
    await this.redis.zremrangebyscore(USERS_KEY, '-inf', now);
    return [...new Set(offline)];
  }
}
