// Route guards for fastify: every API route takes `requireUser`, admin
// endpoints add `requireRole(adminRole)`.
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { bearerToken, type TokenVerifier } from './jwt-verifier.js';
import { AuthError, type Principal } from './principal.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
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

export function requireUser(verifier: TokenVerifier): preHandlerAsyncHookHandler {
  return async function (req, reply) {
    try {
      req.principal = await verifier.verify(bearerToken(req.headers.authorization) ?? '');
    } catch (err) {
      if (err instanceof AuthError) return refuse(req, reply, err);
      throw err;
    }
  };
}

export function requireRole(role: string): preHandlerAsyncHookHandler {
  return async function (req, reply) {
    if (!req.principal?.roles.includes(role)) {
      return refuse(req, reply, new AuthError('forbidden', `role ${role} required`));
    }
  };
}
