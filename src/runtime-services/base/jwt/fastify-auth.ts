// Route guards for fastify. Each service calls useAuth inside its own
// (encapsulated) plugin, so the `principal` request decoration exists only
// in the contexts of services that authenticate, never on the root.
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { bearerToken, type TokenVerifier } from './verifier.js';
import { AuthError, type Principal } from './principal.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by requireUser; null on routes without it. */
    principal: Principal | null;
  }
}

function refuse(req: FastifyRequest, reply: FastifyReply, err: AuthError) {
  req.log.info({ reason: err.message, kind: err.kind }, 'request refused');
  if (err.kind === 'unauthenticated') {
    reply.header('www-authenticate', 'Bearer error="invalid_token"');
    return reply.code(401).send({ error: 'unauthenticated', message: err.message });
  }
  return reply.code(403).send({ error: 'forbidden', message: err.message });
}

export interface AuthGuards {
  requireUser: preHandlerAsyncHookHandler;
  requireRole(role: string): preHandlerAsyncHookHandler;
}

export function useAuth(app: FastifyInstance, verifier: TokenVerifier): AuthGuards {
  app.decorateRequest('principal', null);
  const requireUser: preHandlerAsyncHookHandler = async function (req, reply) {
    try {
      req.principal = await verifier.verify(bearerToken(req.headers.authorization) ?? '');
    } catch (err) {
      if (err instanceof AuthError) return refuse(req, reply, err);
      throw err;
    }
  };
  const requireRole = (role: string): preHandlerAsyncHookHandler =>
    async function (req, reply) {
      if (!req.principal?.roles.includes(role)) {
        return refuse(req, reply, new AuthError('forbidden', `role ${role} required`));
      }
    };
  return { requireUser, requireRole };
}

/** The principal of a request that passed requireUser. */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new Error(`route ${req.routeOptions.url} reads the principal without requireUser`);
  return req.principal;
}
