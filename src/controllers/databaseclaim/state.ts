// What the operator remembers about a claim's credentials between reconciles.
// It lives in an annotation on the claim's own Secret (never in status: lease
// ids let a token holder renew or revoke), so it travels with the
// credentials it describes and disappears with them.
import { z } from 'zod';
import { credentialsModes } from '../../crds/databaseclaim.js';

export const STATE_ANNOTATION = 'familyhub.dev/credentials-state';
export const CREDENTIALS_HASH_ANNOTATION = 'familyhub.dev/credentials-hash';

const lease = z.object({
  leaseId: z.string().optional(),
  username: z.string(),
  issuedAt: z.number(),
  expiresAt: z.number(),
  maxExpiresAt: z.number(),
  leaseDurationMs: z.number(),
});

const retired = z.object({
  leaseId: z.string().optional(),
  username: z.string(),
  revokeAt: z.number(),
});

export const credentialsStateSchema = z.object({
  mode: z.enum(credentialsModes),
  rotateGeneration: z.number().int().min(0),
  lastRotatedAt: z.number().optional(),
  current: lease.optional(),
  retired: z.array(retired).default([]),
});

export type CredentialsState = z.infer<typeof credentialsStateSchema>;
export type LeaseState = z.infer<typeof lease>;
export type RetiredLogin = z.infer<typeof retired>;

/** A missing or unreadable annotation means "nothing known": the caller issues afresh. */
export function readState(annotations: Record<string, string> | undefined): CredentialsState | undefined {
  const raw = annotations?.[STATE_ANNOTATION];
  if (!raw) return undefined;
  try {
    const parsed = credentialsStateSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function writeState(s: CredentialsState): string {
  return JSON.stringify(s);
}
