// WebSocket close codes of the chat service (4000–4999 is the range RFC 6455
// leaves to applications). Clients decide from the code whether to refresh
// their token, back off, or reload history.
export const CloseCode = {
  /** Missing, invalid, expired or wrong-audience token at connect: get a new token. */
  Unauthenticated: 4001,
  /** The session's token expired and no fresh one was sent in-band: get a new token and reconnect. */
  TokenExpired: 4002,
  /** Valid token but the email is unverified or outside the family's domains. */
  Forbidden: 4003,
  /** Too many frames per second from this connection. */
  RateLimited: 4008,
  /** A chat message larger than CHAT_MAX_MESSAGE_BYTES. */
  MessageTooBig: 4009,
  /** The client did not read fast enough; reconnect with the last offset. */
  SlowConsumer: 4010,
  /** This user already has CHAT_MAX_CONNECTIONS_PER_USER sockets (all replicas together). */
  TooManyConnections: 4029,
  /** The per-user cap could not be checked (Redis unavailable): retry with backoff. */
  TryAgainLater: 1013,
  /** Frame beyond the transport hard limit (set by `ws` itself). */
  FrameTooBig: 1009,
  /** Replica shutting down: reconnect (to another replica). */
  ServiceRestart: 1012,
} as const;
