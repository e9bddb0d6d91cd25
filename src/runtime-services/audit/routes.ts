// HTTP API of the audit service (under its prefix): admin-only query and chain verification.
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import type { AuthGuards } from '../base/jwt/fastify-auth.js';
import { badRequest } from '../base/validation.js';
import { AuditQuerySchema, queryAuditEvents } from './query.js';
import { VerifyTimeout, type AuditVerifier } from './verify.js';

export function registerAuditRoutes(app: FastifyInstance, deps: { pool: pg.Pool; verifier: AuditVerifier; guards: AuthGuards; adminRole: string }) {
  const guard = [deps.guards.requireUser, deps.guards.requireRole(deps.adminRole)];

  app.get('/events', { preHandler: guard }, async (req, reply) => {
    const parsed = AuditQuerySchema.safeParse(req.query);
    if (!parsed.success) return badRequest(reply, parsed.error);
    return queryAuditEvents(deps.pool, parsed.data);
  });

  app.get('/verify', { preHandler: guard }, async (req, reply) => {
    // Parallel callers share one run (AuditVerifier), on the verifier's own pool.
    const shared = deps.verifier.busy;
    try {
      const result = await deps.verifier.verify();
      return { ...result, shared };
    } catch (err) {
      // 57014: a page query hit the verifier pool's statement_timeout.
      if (err instanceof VerifyTimeout || (err as { code?: string }).code === '57014') {
        req.log.warn({ err: (err as Error).message }, 'audit verification timed out');
        return reply.code(503).send({ error: 'timeout', message: 'verification did not finish in time; use the CLI for a full run' });
      }
      throw err;
    }
  });
}
