// Vault/OpenBao failures as the reconciler needs to see them: is the server
// away (retry, Degraded), did it refuse us (fix configuration), or does the
// thing we asked about simply not exist (a lease lost in a restart).

export class VaultRequestError extends Error {
  constructor(
    readonly operation: string,
    readonly statusCode: number | undefined,
    readonly detail: string,
    readonly code?: string,
  ) {
    super(`vault ${operation}: ${detail}${statusCode ? ` (HTTP ${statusCode})` : ''}`);
    this.name = 'VaultRequestError';
  }

  get unavailable(): boolean {
    return this.statusCode === undefined || this.statusCode === 503 || this.statusCode === 502 || this.statusCode === 429;
  }

  get forbidden(): boolean {
    return this.statusCode === 403 || this.statusCode === 401;
  }

  get notFound(): boolean {
    return this.statusCode === 404 || (this.statusCode === 400 && /invalid lease|lease not found|lease is not renewable|unknown role/i.test(this.detail));
  }
}

/** node-vault rejects with axios errors (no response) or ApiResponseError (with response). */
export function toVaultError(operation: string, err: unknown): VaultRequestError {
  if (err instanceof VaultRequestError) return err;
  const e = err as { message?: string; code?: string; response?: { statusCode?: number; body?: { errors?: string[] } } };
  const status = e.response?.statusCode;
  const detail = e.response?.body?.errors?.join('; ') || e.message || String(err);
  return new VaultRequestError(operation, status, detail.slice(0, 500), e.code);
}
