// HTTP API of chat (under its prefix): channel and membership management,
// history paging and presence. Membership changes go through membership.ts.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { principalOf, type AuthGuards } from '../base/jwt/fastify-auth.js';
import { MAX_SAFE_OFFSET, badRequest, plainText } from '../base/validation.js';
import type { Membership, Refusal } from './membership.js';
import type { PresenceStore } from './presence.js';
import { channelId } from './protocol.js';
import type { ChatStore } from './store.js';

const email = z.string().max(320).email().transform((s) => s.toLowerCase());
const CreateGroupSchema = z.object({ name: plainText(100), members: z.array(email).max(200).default([]) });
const DirectSchema = z.object({ email });
const MemberSchema = z.object({ email });
const ChannelParams = z.object({ id: channelId });
const MemberParams = z.object({ id: channelId, email });
const HistorySchema = z.object({
  before: z.coerce.number().int().min(1).max(MAX_SAFE_OFFSET).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export interface ChatRouteDeps {
  store: ChatStore;
  membership: Membership;
  presence: PresenceStore;
  guards: AuthGuards;
}

const refuse = (reply: FastifyReply, r: Refusal) => reply.code(r.status).send({ error: r.error, message: r.message });
const isRefusal = (x: object): x is Refusal => 'status' in x;

export function registerChatRoutes(app: FastifyInstance, deps: ChatRouteDeps): void {
  const preHandler = deps.guards.requireUser;

  app.post('/channels', { preHandler }, async (req, reply) => {
    const body = CreateGroupSchema.safeParse(req.body);
    if (!body.success) return badRequest(reply, body.error);
    const res = await deps.membership.createGroup(principalOf(req), req.id, body.data.name, body.data.members);
    if (isRefusal(res)) return refuse(reply, res);
    return reply.code(201).send({ id: res.id, kind: 'group', name: body.data.name, members: res.members });
  });

  app.post('/direct', { preHandler }, async (req, reply) => {
    const body = DirectSchema.safeParse(req.body);
    if (!body.success) return badRequest(reply, body.error);
    const res = await deps.membership.openDirect(principalOf(req), req.id, body.data.email);
    if (isRefusal(res)) return refuse(reply, res);
    return reply.code(res.created ? 201 : 200).send({ id: res.id, kind: 'direct' });
  });

  app.get('/channels', { preHandler }, async (req) => ({ channels: await deps.store.channelsOf(principalOf(req).email) }));

  app.post('/channels/:id/members', { preHandler }, async (req, reply) => {
    const params = ChannelParams.safeParse(req.params);
    if (!params.success) return badRequest(reply, params.error);
    const body = MemberSchema.safeParse(req.body);
    if (!body.success) return badRequest(reply, body.error);
    const refusal = await deps.membership.change(principalOf(req), req.id, params.data.id, 'add', body.data.email);
    return refusal ? refuse(reply, refusal) : reply.code(204).send();
  });

  app.delete('/channels/:id/members/:email', { preHandler }, async (req, reply) => {
    const params = MemberParams.safeParse(req.params);
    if (!params.success) return badRequest(reply, params.error);
    const refusal = await deps.membership.change(principalOf(req), req.id, params.data.id, 'remove', params.data.email);
    return refusal ? refuse(reply, refusal) : reply.code(204).send();
  });

  app.get('/channels/:id/messages', { preHandler }, async (req, reply) => {
    const params = ChannelParams.safeParse(req.params);
    if (!params.success) return badRequest(reply, params.error);
    const q = HistorySchema.safeParse(req.query);
    if (!q.success) return badRequest(reply, q.error);
    if (!(await deps.store.isMember(params.data.id, principalOf(req).email))) return reply.code(404).send({ error: 'not_found' });
    return { messages: await deps.store.messagesBefore(params.data.id, q.data.before, q.data.limit) };
  });

  app.get('/channels/:id/presence', { preHandler }, async (req, reply) => {
    const params = ChannelParams.safeParse(req.params);
    if (!params.success) return badRequest(reply, params.error);
    if (!(await deps.store.isMember(params.data.id, principalOf(req).email))) return reply.code(404).send({ error: 'not_found' });
    return { online: await deps.presence.onlineIn(params.data.id) };
  });

  app.get('/presence', { preHandler }, async () => ({ online: await deps.presence.onlineUsers() }));
}
