// HTTP API of chat: channel and membership management, history paging and
// presence. Every state change here emits an audit event.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuditPublisher } from '../audit-publisher/publisher.js';
import { principalOf, type AuthGuards } from '../base/jwt/fastify-auth.js';
import type { ChatHub } from './hub.js';
import type { PresenceStore } from './presence.js';
import { directChannelId, type ChatStore } from './store.js';

const email = z.string().email().transform((s) => s.toLowerCase());
const CreateGroupSchema = z.object({ name: z.string().min(1).max(100), members: z.array(email).max(200).default([]) });
const DirectSchema = z.object({ email });
const MemberSchema = z.object({ email });
const HistorySchema = z.object({
  before: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export interface ChatRouteDeps {
  store: ChatStore;
  hub: ChatHub;
  presence: PresenceStore;
  audit: AuditPublisher;
  guards: AuthGuards;
  adminRole: string;
  allowedDomains: string[];
}

export function registerChatRoutes(app: FastifyInstance, deps: ChatRouteDeps): void {
  const preHandler = deps.guards.requireUser;
  const inFamily = (e: string) => deps.allowedDomains.includes(e.slice(e.lastIndexOf('@') + 1));
  const audit = (req: FastifyRequest, action: string, target: string, details: Record<string, unknown>) =>
    deps.audit.publish({ actor: principalOf(req).email, action, target, outcome: 'success', requestId: req.id, details });

  app.post('/channels', { preHandler }, async (req, reply) => {
    const body = CreateGroupSchema.safeParse(req.body);
    if (!body.success) return reply.code(400).send({ error: 'bad_request', message: body.error.issues[0]?.message });
    const outsiders = body.data.members.filter((m) => !inFamily(m));
    if (outsiders.length) return reply.code(400).send({ error: 'bad_request', message: `not in an allowed domain: ${outsiders.join(', ')}` });
    const me = principalOf(req).email;
    const id = `g-${randomUUID()}`;
    const { added } = await deps.store.createChannel({ id, kind: 'group', name: body.data.name, createdBy: me, members: [me, ...body.data.members] });
    await audit(req, 'chat.channel.create', `chat/channel/${id}`, { kind: 'group', name: body.data.name });
    for (const m of added) await audit(req, 'chat.member.add', `chat/channel/${id}`, { member: m });
    return reply.code(201).send({ id, kind: 'group', name: body.data.name, members: added.sort() });
  });

  app.post('/direct', { preHandler }, async (req, reply) => {
    const body = DirectSchema.safeParse(req.body);
    if (!body.success) return reply.code(400).send({ error: 'bad_request', message: body.error.issues[0]?.message });
    if (!inFamily(body.data.email)) return reply.code(400).send({ error: 'bad_request', message: 'not in an allowed domain' });
    const me = principalOf(req).email;
    const id = directChannelId(me, body.data.email);
    const { created, added } = await deps.store.createChannel({ id, kind: 'direct', name: null, createdBy: me, members: [me, body.data.email] });
    if (created) {
      await audit(req, 'chat.channel.create', `chat/channel/${id}`, { kind: 'direct' });
      for (const m of added) await audit(req, 'chat.member.add', `chat/channel/${id}`, { member: m });
    }
    return reply.code(created ? 201 : 200).send({ id, kind: 'direct' });
  });

  app.get('/channels', { preHandler }, async (req) => ({ channels: await deps.store.channelsOf(principalOf(req).email) }));

  app.post<{ Params: { id: string } }>('/channels/:id/members', { preHandler }, async (req, reply) => {
    const body = MemberSchema.safeParse(req.body);
    if (!body.success) return reply.code(400).send({ error: 'bad_request', message: body.error.issues[0]?.message });
    const ch = await deps.store.channel(req.params.id);
    if (!ch || !(await deps.store.isMember(ch.id, principalOf(req).email))) return reply.code(404).send({ error: 'not_found' });
    if (ch.kind !== 'group') return reply.code(409).send({ error: 'conflict', message: 'direct channels have fixed members' });
    if (!inFamily(body.data.email)) return reply.code(400).send({ error: 'bad_request', message: 'not in an allowed domain' });
    if (await deps.store.addMember(ch.id, body.data.email)) {
      await audit(req, 'chat.member.add', `chat/channel/${ch.id}`, { member: body.data.email });
      await deps.hub.publish({ t: 'x', channel: ch.id, user: body.data.email, change: 'added' });
    }
    return reply.code(204).send();
  });

  app.delete<{ Params: { id: string; email: string } }>('/channels/:id/members/:email', { preHandler }, async (req, reply) => {
    const me = principalOf(req);
    const target = req.params.email.toLowerCase();
    const ch = await deps.store.channel(req.params.id);
    if (!ch || !(await deps.store.isMember(ch.id, me.email))) return reply.code(404).send({ error: 'not_found' });
    const allowed = target === me.email || ch.createdBy === me.email || me.roles.includes(deps.adminRole);
    if (!allowed) return reply.code(403).send({ error: 'forbidden', message: 'only the channel creator or an admin removes others' });
    if (await deps.store.removeMember(ch.id, target)) {
      await audit(req, 'chat.member.remove', `chat/channel/${ch.id}`, { member: target });
      await deps.hub.publish({ t: 'x', channel: ch.id, user: target, change: 'removed' });
    }
    return reply.code(204).send();
  });

  app.get<{ Params: { id: string } }>('/channels/:id/messages', { preHandler }, async (req, reply) => {
    const q = HistorySchema.safeParse(req.query);
    if (!q.success) return reply.code(400).send({ error: 'bad_request', message: q.error.issues[0]?.message });
    if (!(await deps.store.isMember(req.params.id, principalOf(req).email))) return reply.code(404).send({ error: 'not_found' });
    return { messages: await deps.store.messagesBefore(req.params.id, q.data.before, q.data.limit) };
  });

  app.get<{ Params: { id: string } }>('/channels/:id/presence', { preHandler }, async (req, reply) => {
    if (!(await deps.store.isMember(req.params.id, principalOf(req).email))) return reply.code(404).send({ error: 'not_found' });
    return { online: await deps.presence.onlineIn(req.params.id) };
  });

  app.get('/presence', { preHandler }, async () => ({ online: await deps.presence.onlineUsers() }));
}
