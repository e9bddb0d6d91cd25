// A PostgreSQL pool whose login lives in a mounted Secret file and changes
// under it. The kubelet never rewrites a Secret volume's files in place: it
// writes a new timestamped directory, points a temporary symlink at it and
// renames that over `..data` (the files themselves are symlinks through
// `..data`). So the directory is watched, not the file — a watch on the
// file would follow the old inode and never fire. On a change the file is
// read again; a different URL opens a new pool, new work goes there at
// once, and the old pool is ended: idle connections close now, checked-out
// ones (a transaction in flight) when they are released. A slow poll backs
// the watch, since inotify events can be missed (or be unavailable).
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Logger } from 'pino';

export interface FilePoolOptions {
  /** file:///var/run/familyhub/database/uri */
  fileUrl: string;
  name: string;
  log: Logger;
  /** Builds one generation's pool from the URL read from the file. */
  open(url: string): pg.Pool;
  /** Re-read interval besides the directory watch (default 10 s). */
  pollMs?: number;
  /** Quiet period after a directory event before the file is read (the kubelet's swap is several renames). */
  settleMs?: number;
}

export function isFileUrl(url: string): boolean {
  return url.startsWith('file:');
}

/**
 * Implements the part of pg.Pool the services use (query, connect, end,
 * on, the counters), always on the current generation.
 */
export class FileCredentialPool {
  private current: pg.Pool;
  private url: string;
  private readonly file: string;
  private readonly draining = new Set<Promise<void>>();
  private watcher?: FSWatcher;
  private poll?: NodeJS.Timeout;
  private settle?: NodeJS.Timeout;
  private reading?: Promise<void>;
  private closed = false;
  /** Pools opened since start (1 = never rotated); for tests and metrics. */
  generation = 1;

  /** Reads the file once; a missing file or one without a postgres:// URL stops start-up here. */
  constructor(private readonly opts: FilePoolOptions) {
    this.file = fileURLToPath(opts.fileUrl);
    this.url = parseUrl(this.file, readFileSync(this.file, 'utf8'));
    this.current = opts.open(this.url);
    this.watchDirectory();
    this.poll = setInterval(() => void this.check(), opts.pollMs ?? 10_000);
    this.poll.unref();
  }

  private watchDirectory(): void {
    try {
      this.watcher = watch(path.dirname(this.file), { persistent: false }, () => {
        clearTimeout(this.settle);
        this.settle = setTimeout(() => void this.check(), this.opts.settleMs ?? 100);
        this.settle.unref();
      });
      this.watcher.on('error', (err) => this.opts.log.warn({ err: err.message, pool: this.opts.name }, 'credential directory watch failed; polling only'));
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message, pool: this.opts.name }, 'cannot watch the credential directory; polling only');
    }
  }

  /** One read at a time; a change opens the next generation. */
  check(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.reading ??= this.reload().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async reload(): Promise<void> {
    let next: string;
    try {
      next = await readUrl(this.file);
    } catch (err) {
      // Mid-swap or briefly unmounted: keep the working pool, the next event or poll retries.
      this.opts.log.debug({ err: (err as Error).message, pool: this.opts.name }, 'credential file not readable; keeping the current pool');
      return;
    }
    if (next === this.url || this.closed) return;
    const old = this.current;
    this.url = next;
    this.current = this.opts.open(next);
    this.generation += 1;
    this.opts.log.info({ pool: this.opts.name, generation: this.generation }, 'database credentials changed; new connections use the new login, the old pool drains');
    const drained = old.end().catch((err: Error) => this.opts.log.warn({ err: err.message, pool: this.opts.name }, 'closing the previous pool failed'));
    this.draining.add(drained);
    void drained.finally(() => this.draining.delete(drained));
  }

  query(...args: unknown[]): unknown {
    return (this.current.query as (...a: unknown[]) => unknown).apply(this.current, args);
  }

  connect(...args: unknown[]): unknown {
    return (this.current.connect as (...a: unknown[]) => unknown).apply(this.current, args);
  }

  on(event: string, listener: (...a: unknown[]) => void): this {
    // Listeners belong to every generation; the ones createPgPool adds are attached by open().
    this.current.on(event as 'error', listener as () => void);
    return this;
  }

  get totalCount(): number {
    return this.current.totalCount;
  }

  get idleCount(): number {
    return this.current.idleCount;
  }

  get waitingCount(): number {
    return this.current.waitingCount;
  }

  get ending(): boolean {
    return this.closed;
  }

  async end(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.close();
    clearInterval(this.poll);
    clearTimeout(this.settle);
    await this.reading?.catch(() => {});
    await Promise.all([this.current.end(), ...this.draining]);
  }
}

async function readUrl(file: string): Promise<string> {
  return parseUrl(file, await readFile(file, 'utf8'));
}

function parseUrl(file: string, text: string): string {
  const url = text.trim();
  // The message names the file, never its content.
  if (!/^postgres(ql)?:\/\//.test(url)) throw new Error(`${file} does not hold a postgres:// URL`);
  return url;
}
