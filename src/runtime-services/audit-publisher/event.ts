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
