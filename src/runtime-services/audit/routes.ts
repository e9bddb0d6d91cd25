// HTTP API of the audit service: admin-only query and chain verification.
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { requireRole, requireUser } from '../auth/fastify-auth.js';
import type { TokenVerifier } from '../auth/jwt-verifier.js';
import { AuditQuerySchema, queryAuditEvents } from './query.js';
import { verifyChain } from './verify.js';

export function registerAuditRoutes(app: FastifyInstance, deps: { pool: pg.Pool; verifier: TokenVerifier; adminRole: string }) {
  const guard = [requireUser(deps.verifier), requireRole(deps.adminRole)];

  app.get('/api/audit/events', { preHandler: guard }, async (req, reply) => {
    const parsed = AuditQuerySchema.safeParse(req.query);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      return reply.code(400).send({ error: 'bad_request', message: `${issue.path.join('.')}: ${issue.message}` });
    }
    return queryAuditEvents(deps.pool, parsed.data);
  });

  app.get('/api/audit/verify', { preHandler: guard }, async () => verifyChain(deps.pool));
}
