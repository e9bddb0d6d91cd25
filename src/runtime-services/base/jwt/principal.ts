// The caller as the runtime services see it after the token checks passed.
export interface Principal {
  subject: string;
  email: string;
  roles: string[];
  /** When the token stops being valid (ms since epoch): long-lived sockets close then. */
  expiresAt: number;
}

export type AuthFailure = 'unauthenticated' | 'forbidden';

/** `kind` decides the answer: 401 / close 4001 vs 403 / close 4003. */
export class AuthError extends Error {
  constructor(
    readonly kind: AuthFailure,
    message: string,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}
