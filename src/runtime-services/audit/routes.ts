// HTTP API of the audit service (under its prefix): admin-only query and chain verification.
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import type { AuthGuards } from '../base/jwt/fastify-auth.js';
import { AuditQuerySchema, queryAuditEvents } from './query.js';
import { verifyChain } from './verify.js';

export function registerAuditRoutes(app: FastifyInstance, deps: { pool: pg.Pool; guards: AuthGuards; adminRole: string }) {
  const guard = [deps.guards.requireUser, deps.guards.requireRole(deps.adminRole)];

  app.get('/events', { preHandler: guard }, async (req, reply) => {
    const parsed = AuditQuerySchema.safeParse(req.query);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      return reply.code(400).send({ error: 'bad_request', message: `${issue.path.join('.')}: ${issue.message}` });
    }
    return queryAuditEvents(deps.pool, parsed.data);
  });

  app.get('/verify', { preHandler: guard }, async () => verifyChain(deps.pool));
}
