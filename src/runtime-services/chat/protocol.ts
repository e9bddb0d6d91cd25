// Frames exchanged on the chat WebSocket. Client frames are validated; server
// frames are plain objects serialised once per fan-out.
import { z } from 'zod';
import { MAX_SAFE_OFFSET, freeText, plainText } from '../base/validation.js';

export const channelId = plainText(200);

export const ClientFrameSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('join'), channel: channelId, since: z.number().int().min(0).max(MAX_SAFE_OFFSET).optional() }),
  z.object({ type: z.literal('leave'), channel: channelId }),
  z.object({ type: z.literal('send'), channel: channelId, text: freeText(), ref: plainText(64).optional() }),
  z.object({ type: z.literal('typing'), channel: channelId }),
  /** In-band token refresh: the session continues under the new token's lifetime. */
  z.object({ type: z.literal('auth'), token: z.string().min(1).max(16_384) }),
]);

export type ClientFrame = z.infer<typeof ClientFrameSchema>;

export interface ChatMessage {
  channel: string;
  offset: number;
  id: string;
  from: string;
  text: string;
  ts: string;
}

/** What replicas exchange over Redis pub/sub, one Redis channel per chat channel. */
export type BusEvent =
  | { t: 'm'; m: ChatMessage }
  | { t: 'p'; channel: string; user: string; state: 'online' | 'offline' }
  | { t: 'y'; channel: string; user: string }
  | { t: 'x'; channel: string; user: string; change: 'added' | 'removed' };

export function busEventChannel(e: BusEvent): string {
  return e.t === 'm' ? e.m.channel : e.channel;
}
