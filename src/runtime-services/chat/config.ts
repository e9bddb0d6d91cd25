// Settings of the chat service (parsed only when RUNTIME_SERVICES names chat).
import { z } from 'zod';
import { postgresSettings, redisSettings } from '../base/connections.js';
import { int } from '../config.js';

export const ChatSettingsSchema = z.object({
  ...postgresSettings,
  ...redisSettings,
  /** Where chat publishes its audit events (the audit service's stream). */
  AUDIT_STREAM: z.string().min(1).default('familyhub:audit'),
  CHAT_DB_POOL_MAX: int(10, 1).pipe(z.number().max(100)),
  CHAT_MAX_MESSAGE_BYTES: int(4096, 1),
  CHAT_RATE_PER_SEC: int(20, 1),
  CHAT_RATE_BURST: int(40, 1),
  CHAT_MAX_BUFFERED_BYTES: int(1_048_576, 1024),
  CHAT_MAX_CONNECTIONS_PER_USER: int(10, 1).pipe(z.number().max(1000)),
  /** How long before its token expires a socket gets `token_expiring`. */
  CHAT_TOKEN_NOTICE_MS: int(30_000, 0),
  CHAT_PRESENCE_TTL_MS: int(15_000, 500),
  CHAT_REPLAY_LIMIT: int(1000, 1),
  CHAT_GAP_FILL_MS: int(250, 10),
});

export type ChatSettings = z.infer<typeof ChatSettingsSchema>;
