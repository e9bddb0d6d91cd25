// The per-user connection cap, across replicas: one Redis sorted set per
// user, one member per open socket (`<replica>:<connection>`) scored with
// its expiry. Live replicas refresh their members like presence entries, so
// the sockets of a crashed replica stop counting after the presence TTL.
import type { Redis } from 'ioredis';

const key = (user: string) => `chat:conns:${user}`;

// Drop expired members, then add only while under the cap: one script, so
// two replicas admitting the same user at once cannot both pass.
const ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`;

export class ConnectionQuota {
  private readonly mine = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly replicaId: string,
    private readonly maxPerUser: number,
    private readonly ttlMs: number,
  ) {}

  private member(connId: number): string {
    return `${this.replicaId}:${connId}`;
  }

  /** Resolves false when the user already holds the maximum number of sockets. */
  async acquire(user: string, connId: number): Promise<boolean> {
    const now = Date.now();
    const ok = await this.redis.eval(ACQUIRE, 1, key(user), String(now), String(now + this.ttlMs), String(this.maxPerUser), this.member(connId), String(this.ttlMs * 2));
    if (ok === 1) this.mine.set(this.member(connId), user);
    return ok === 1;
  }

  async release(user: string, connId: number): Promise<void> {
    this.mine.delete(this.member(connId));
    await this.redis.zrem(key(user), this.member(connId));
  }

  start(): void {
    this.timer = setInterval(() => void this.refresh().catch(() => {}), Math.max(100, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async refresh(): Promise<void> {
    if (this.mine.size === 0) return;
    const expiry = Date.now() + this.ttlMs;
    const p = this.redis.pipeline();
    for (const [member, user] of this.mine) {
      p.zadd(key(user), 'XX', expiry, member);
      p.pexpire(key(user), this.ttlMs * 2);
    }
    await p.exec();
  }
}
