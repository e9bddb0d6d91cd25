// Reading a token's claims in tests: "a token came back" proves little; the
// claims say which issuer signed it for which client. Not a verification
// (the runtime's verifier has its own tests): decoding is enough to tell a
// token for this client from any other non-empty string.
export function jwtClaims(token: string | undefined): Record<string, unknown> {
  const parts = (token ?? '').split('.');
  if (parts.length !== 3) throw new Error(`not a JWS compact token (${parts.length} parts)`);
  return JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}
