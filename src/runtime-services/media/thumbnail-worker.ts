// Generates thumbnails after an upload committed, off the request path. The
// queue is in memory; PostgreSQL's `thumb_state = 'pending'` is the durable
// record, so work a crashed replica never finished is picked up at start.
// Two replicas doing the same blob is harmless: blob keys are fixed and the
// state changes only from pending.
import type { Logger } from 'pino';
import type { AuditPublisher } from '../audit-publisher/publisher.js';
import type { BlobStore } from './blob-store.js';
import { assertDecodable, thumbnails, type ImageLimits } from './images.js';
import type { MediaStore } from './store.js';

export const thumbKey = (hash: string, size: number) => `t-${hash}-${size}`;

export class ThumbnailWorker {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private running = 0;
  private idle: (() => void)[] = [];
  private stopped = false;

  constructor(
    private readonly blobs: BlobStore,
    private readonly store: MediaStore,
    private readonly audit: AuditPublisher,
    private readonly opts: { sizes: number[]; limits: ImageLimits; concurrency: number },
    private readonly log: Logger,
    private readonly onDone: (ok: boolean, seconds: number) => void = () => {},
  ) {}

  enqueue(hash: string): void {
    if (this.stopped || this.queued.has(hash)) return;
    this.queued.add(hash);
    this.queue.push(hash);
    this.pump();
  }

  async resumePending(): Promise<void> {
    for (const p of await this.store.pendingThumbnails(1000)) this.enqueue(p.hash);
  }

  /** Resolves when nothing is queued or running (drain, tests). */
  whenIdle(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.queue.length = 0;
    return this.whenIdle();
  }

  private pump(): void {
    while (this.running < this.opts.concurrency && this.queue.length) {
      const hash = this.queue.shift()!;
      this.running++;
      void this.process(hash).finally(() => {
        this.running--;
        this.queued.delete(hash);
        this.pump();
        if (this.running === 0 && this.queue.length === 0) for (const r of this.idle.splice(0)) r();
      });
    }
  }

  private async process(hash: string): Promise<void> {
    const started = process.hrtime.bigint();
    try {
      await assertDecodable(await this.blobs.read(hash, { start: 0, end: 64 * 1024 - 1 }), this.opts.limits).catch(async (err) => {
        // The header may sit past the first 64 KiB (JPEG with a large EXIF block).
        if (!/exceeds the limit|no dimensions/.test((err as Error).message)) return assertDecodable(await this.blobs.read(hash), this.opts.limits);
        throw err;
      });
      const made = await thumbnails(await this.blobs.read(hash), this.opts.sizes, this.opts.limits);
      for (const t of made) await this.blobs.put(thumbKey(hash, t.size), t.bytes);
      if (await this.store.setThumbState(hash, 'done')) {
        await this.audit.publish({ actor: 'media', action: 'media.thumbnail.create', target: `media/blob/${hash}`, outcome: 'success', details: { sizes: made.map((t) => `${t.width}x${t.height}`) } });
      }
      this.onDone(true, Number(process.hrtime.bigint() - started) / 1e9);
    } catch (err) {
      const reason = (err as Error).message.slice(0, 300);
      this.log.warn({ hash, err: reason }, 'thumbnail generation failed');
      await this.store.setThumbState(hash, 'failed', reason).catch(() => {});
      await this.audit.publish({ actor: 'media', action: 'media.thumbnail.create', target: `media/blob/${hash}`, outcome: 'failure', details: { reason } }).catch(() => {});
      this.onDone(false, Number(process.hrtime.bigint() - started) / 1e9);
    }
  }
}
