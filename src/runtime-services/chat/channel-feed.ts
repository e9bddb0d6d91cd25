// Per-channel live feed on one replica. Messages reach replicas over Redis
// pub/sub in publish order, which can differ from offset order when two
// replicas commit close together; the feed delivers strictly by offset,
// holding early arrivals briefly and filling real gaps from PostgreSQL.
import type { Logger } from 'pino';
import type { ChatConnection } from './connection.js';
import type { ChatMessage } from './protocol.js';

export interface FeedSource {
  messagesBetween(channel: string, after: number, upTo: number, limit: number): Promise<ChatMessage[]>;
}

export class ChannelFeed {
  readonly conns = new Set<ChatConnection>();
  /** Joins in progress hold the feed alive before their connection is added. */
  joining = 0;
  private next = 1;
  private readonly early = new Map<number, ChatMessage>();
  private gapTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly channel: string,
    private readonly source: FeedSource,
    private readonly gapFillMs: number,
    private readonly log: Logger,
    private readonly onDelivered: (count: number) => void,
  ) {}

  /** Everything up to `lastOffset` is history, served from PostgreSQL on join. */
  init(lastOffset: number): void {
    this.next = lastOffset + 1;
  }

  get delivered(): number {
    return this.next - 1;
  }

  onMessage(m: ChatMessage): void {
    if (m.offset < this.next) return;
    if (m.offset > this.next) {
      this.early.set(m.offset, m);
      this.gapTimer ??= setTimeout(() => void this.fillGap(), this.gapFillMs);
      return;
    }
    this.emit(m);
    for (let e = this.early.get(this.next); e; e = this.early.get(this.next)) {
      this.early.delete(e.offset);
      this.emit(e);
    }
    if (this.early.size === 0 && this.gapTimer) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
    }
  }

  private emit(m: ChatMessage): void {
    this.next = m.offset + 1;
    const data = JSON.stringify({ type: 'message', ...m });
    let sent = 0;
    for (const c of this.conns) if (c.deliver(this.channel, m.offset, data)) sent++;
    this.onDelivered(sent);
  }

  /** A publish was lost (e.g. its replica died after COMMIT): read it back. */
  private async fillGap(): Promise<void> {
    this.gapTimer = undefined;
    if (this.early.size === 0) return;
    const upTo = Math.max(...this.early.keys());
    try {
      const missing = await this.source.messagesBetween(this.channel, this.next - 1, upTo, upTo - this.next + 1);
      for (const m of missing) this.onMessage(m);
      if (this.early.size > 0) this.gapTimer ??= setTimeout(() => void this.fillGap(), this.gapFillMs);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, channel: this.channel }, 'filling a chat offset gap failed; will retry');
      this.gapTimer ??= setTimeout(() => void this.fillGap(), this.gapFillMs);
    }
  }

  broadcast(frame: object, except?: string): void {
    const data = JSON.stringify(frame);
    for (const c of this.conns) {
      if (except && c.user === except) continue;
      if (c.channels.get(this.channel)?.catchingUp === false) c.send(data);
    }
  }

  dispose(): void {
    clearTimeout(this.gapTimer);
    this.early.clear();
  }
}
