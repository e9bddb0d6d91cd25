// The audit event every runtime service emits for a state change. Field
// choice follows the Kubernetes audit.k8s.io Event: who (user → actor), what
// (verb → action), on what (objectRef → target), when (timestamps), how it
// ended (responseStatus → outcome), and the request id (auditID) tying it to
// logs.
import { z } from 'zod';

export const AuditEventSchema = z.object({
  actor: z.string().min(1).max(320),
  action: z.string().min(1).max(200),
  target: z.string().min(1).max(500),
  outcome: z.enum(['success', 'failure']),
  requestId: z.string().max(128).optional(),
  source: z.string().max(64).optional(),
  timestamp: z.string().datetime({ offset: true }),
  details: z.record(z.unknown()).default({}),
});

export type AuditEvent = z.infer<typeof AuditEventSchema>;

export type AuditEventInput = Omit<AuditEvent, 'timestamp' | 'details'> & {
  timestamp?: Date;
  details?: Record<string, unknown>;
};

/** Stream entries carry one JSON field so a consumer parses once per entry. */
export const STREAM_FIELD = 'e';

const str = (v: unknown, max: number): boolean => typeof v === 'string' && v.length > 0 && v.length <= max;
const optStr = (v: unknown, max: number): boolean => v === undefined || v === null || (typeof v === 'string' && v.length <= max);

/**
 * The same rules as AuditEventSchema, hand-written for the hot paths
 * (every publish and every consumed entry), where zod costs more than the
 * database insert. Returns the first offending field.
 */
export function invalidAuditField(e: Record<string, unknown>): string | undefined {
  if (!str(e.actor, 320)) return 'actor';
  if (!str(e.action, 200)) return 'action';
  if (!str(e.target, 500)) return 'target';
  if (e.outcome !== 'success' && e.outcome !== 'failure') return 'outcome';
  if (!optStr(e.requestId, 128)) return 'requestId';
  if (!optStr(e.source, 64)) return 'source';
  if (typeof e.timestamp !== 'string' || Number.isNaN(Date.parse(e.timestamp))) return 'timestamp';
  if (e.details !== undefined && (typeof e.details !== 'object' || e.details === null || Array.isArray(e.details))) return 'details';
  return undefined;
}
