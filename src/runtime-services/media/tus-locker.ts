// A tus upload lock shared by every replica, in Redis, so two replicas never
// append to the same partial upload at once (the partial files live on the
// shared volume). SET NX PX with a random token; the holder extends the
// expiry while it writes, and a crashed holder's lock expires by itself.
import { randomUUID } from 'node:crypto';
import { ERRORS, type Lock, type Locker, type RequestRelease } from '@tus/server';
import type { Redis } from 'ioredis';

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;

export class RedisLocker implements Locker {
  constructor(
    private readonly redis: Redis,
    private readonly opts: { prefix: string; ttlMs: number; acquireTimeoutMs: number },
  ) {}

  newLock(id: string): Lock {
    const key = `${this.opts.prefix}tus-lock:${id}`;
    const token = randomUUID();
    const { redis, opts } = this;
    let renew: NodeJS.Timeout | undefined;
    return {
      async lock(signal: AbortSignal, _cancelReq: RequestRelease) {
        const deadline = Date.now() + opts.acquireTimeoutMs;
        for (let wait = 20; ; wait = Math.min(wait * 2, 500)) {
          if ((await redis.set(key, token, 'PX', opts.ttlMs, 'NX')) === 'OK') break;
          if (signal.aborted || Date.now() > deadline) throw ERRORS.ERR_LOCK_TIMEOUT;
          await new Promise((r) => setTimeout(r, wait));
        }
        renew = setInterval(() => {
          redis.eval(EXTEND, 1, key, token, String(opts.ttlMs)).catch(() => {});
        }, Math.max(100, Math.floor(opts.ttlMs / 3)));
        renew.unref();
      },
      async unlock() {
        clearInterval(renew);
        await redis.eval(RELEASE, 1, key, token);
      },
    };
  }
}
