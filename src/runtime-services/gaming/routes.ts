// HTTP API of the gaming service. XP is never granted here: it comes only
// from the platform event stream. Games, challenges and rebuilds are the
// state changes a request can make, and each one emits an audit event.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuditPublisher } from '../audit-publisher/publisher.js';
import { principalOf, type AuthGuards } from '../base/jwt/fastify-auth.js';
import { badRequest, plainText } from '../base/validation.js';
import type { Score } from './elo.js';
import type { Leaderboards } from './leaderboard.js';
import { GamingError, type GamingStore } from './store.js';
import { isoWeekKey, WEEK_KEY } from './week.js';

export interface GamingRouteDeps {
  store: GamingStore;
  boards: Leaderboards;
  audit: AuditPublisher;
  guards: AuthGuards;
  adminRole: string;
  allowedDomains: string[];
  timeZone: string;
  aroundMax: number;
}

const email = z.string().max(320).email().transform((s) => s.toLowerCase());
const result = z.enum(['win', 'loss', 'draw']);
const scoreOf = (r: z.infer<typeof result>): Score => (r === 'win' ? 1 : r === 'draw' ? 0.5 : 0);
const mirror = (s: Score): Score => (1 - s) as Score;

export function registerGamingRoutes(app: FastifyInstance, d: GamingRouteDeps): void {
  const { requireUser, requireRole } = d.guards;
  const isAdmin = (req: FastifyRequest) => principalOf(req).roles.includes(d.adminRole);
  const inFamily = (e: string) => d.allowedDomains.some((dom) => e.endsWith(`@${dom.toLowerCase()}`));
  const board = (b: string) => (b === 'week' ? isoWeekKey(new Date(), d.timeZone) : b);
  const boardParam = z.object({ board: z.string().refine((b) => b === 'all' || b === 'week' || WEEK_KEY.test(b), 'must be all, week or an ISO week like 2026-W49') });
  const audit = (req: FastifyRequest, action: string, target: string, details: Record<string, unknown>) =>
    d.audit.publish({ actor: principalOf(req).email, action, target, outcome: 'success', requestId: req.id, details });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof GamingError) return reply.code(err.status).send({ error: err.code, message: err.message });
    throw err;
  });

  app.get('/me', { preHandler: requireUser }, async (req) => {
    const me = principalOf(req).email;
    const week = isoWeekKey(new Date(), d.timeZone);
    const [player, all, weekly] = await Promise.all([d.store.player(me), d.boards.rank('all', me), d.boards.rank(week, me)]);
    return { ...player, rank: { all: all?.rank ?? null, week: weekly?.rank ?? null, weekKey: week } };
  });

  app.get('/players/:email', { preHandler: requireUser }, async (req, reply) => {
    const p = z.object({ email }).safeParse(req.params);
    if (!p.success) return badRequest(reply, p.error);
    return d.store.player(p.data.email);
  });

  app.get('/leaderboards/:board', { preHandler: requireUser }, async (req, reply) => {
    const p = boardParam.safeParse(req.params);
    if (!p.success) return badRequest(reply, p.error);
    const q = z.object({ limit: z.coerce.number().int().min(1).max(100).default(20), offset: z.coerce.number().int().min(0).max(1_000_000).default(0) }).safeParse(req.query);
    if (!q.success) return badRequest(reply, q.error);
    const b = board(p.data.board);
    return { board: b, entries: await d.boards.top(b, q.data.limit, q.data.offset) };
  });

  app.get('/leaderboards/:board/rank', { preHandler: requireUser }, async (req, reply) => {
    const p = boardParam.safeParse(req.params);
    if (!p.success) return badRequest(reply, p.error);
    const b = board(p.data.board);
    const me = await d.boards.rank(b, principalOf(req).email);
    return { board: b, entry: me ?? null };
  });

  app.get('/leaderboards/:board/around', { preHandler: requireUser }, async (req, reply) => {
    const p = boardParam.safeParse(req.params);
    if (!p.success) return badRequest(reply, p.error);
    const q = z.object({ radius: z.coerce.number().int().min(1).max(d.aroundMax).default(5) }).safeParse(req.query);
    if (!q.success) return badRequest(reply, q.error);
    const b = board(p.data.board);
    return { board: b, entries: await d.boards.aroundMe(b, principalOf(req).email, q.data.radius) };
  });

  app.post('/leaderboards/rebuild', { preHandler: [requireUser, requireRole(d.adminRole)] }, async (req, reply) => {
    await d.boards.rebuild();
    await audit(req, 'gaming.leaderboard.rebuild', 'gaming/leaderboards', {});
    return reply.code(204).send();
  });

  // A player reports a result against an opponent (pending until the
  // opponent confirms); an admin may record a game between two others at once.
  app.post('/games', { preHandler: requireUser }, async (req, reply) => {
    const body = z.union([
      z.object({ opponent: email, result }).strict(),
      z.object({ playerA: email, playerB: email, result }).strict(),
    ]).safeParse(req.body);
    if (!body.success) return badRequest(reply, body.error);
    const me = principalOf(req).email;
    if ('opponent' in body.data) {
      const { opponent } = body.data;
      if (opponent === me) return reply.code(400).send({ error: 'bad_request', field: 'opponent', message: 'opponent: cannot play against yourself' });
      if (!inFamily(opponent)) return reply.code(400).send({ error: 'bad_request', field: 'opponent', message: 'opponent: not a family member' });
      const g = await d.store.reportGame({ playerA: me, playerB: opponent, scoreA: scoreOf(body.data.result), reportedBy: me });
      await audit(req, 'gaming.game.report', `gaming/game/${g.id}`, { playerA: me, playerB: opponent, result: body.data.result });
      return reply.code(201).send(g);
    }
    if (!isAdmin(req)) return reply.code(403).send({ error: 'forbidden', message: `role ${d.adminRole} required to record others' games` });
    const { playerA, playerB } = body.data;
    if (playerA === playerB || !inFamily(playerA) || !inFamily(playerB)) return reply.code(400).send({ error: 'bad_request', field: 'playerB', message: 'players must be two different family members' });
    const { randomUUID } = await import('node:crypto');
    const g = await d.store.finalizeGame(randomUUID(), me, { playerA, playerB, scoreA: scoreOf(body.data.result) });
    await audit(req, 'gaming.game.record', `gaming/game/${g.id}`, { playerA, playerB, result: body.data.result, ratings: g.ratings });
    return reply.code(201).send(g);
  });

  app.post('/games/:id/confirm', { preHandler: requireUser }, async (req, reply) => {
    const p = z.object({ id: z.string().uuid() }).safeParse(req.params);
    if (!p.success) return badRequest(reply, p.error);
    const body = z.object({ result }).strict().safeParse(req.body);
    if (!body.success) return badRequest(reply, body.error);
    const me = principalOf(req).email;
    const g = await d.store.game(p.data.id);
    if (!g || (g.playerB !== me && !isAdmin(req) && g.playerA !== me)) return reply.code(404).send({ error: 'not_found', message: 'game not found' });
    if (g.playerA === me && !isAdmin(req)) return reply.code(409).send({ error: 'own_report', message: 'the opponent (or an admin) must confirm' });
    if (g.state !== 'pending') return reply.code(409).send({ error: 'not_pending', message: `game is ${g.state}` });
    // The confirmer states the result from their side (playerB's), an admin from playerA's.
    const claimedA = g.playerB === me ? mirror(scoreOf(body.data.result)) : scoreOf(body.data.result);
    if (claimedA !== g.scoreA) {
      await d.store.disputeGame(g.id);
      await audit(req, 'gaming.game.dispute', `gaming/game/${g.id}`, { reported: g.scoreA, confirmed: claimedA });
      return reply.code(409).send({ error: 'disputed', message: 'the results reported by the two players differ; an admin must record the game' });
    }
    const fin = await d.store.finalizeGame(g.id, me);
    await audit(req, 'gaming.game.confirm', `gaming/game/${g.id}`, { playerA: fin.playerA, playerB: fin.playerB, scoreA: fin.scoreA, ratings: fin.ratings });
    return fin;
  });

  app.get('/games/:id', { preHandler: requireUser }, async (req, reply) => {
    const p = z.object({ id: z.string().uuid() }).safeParse(req.params);
    if (!p.success) return badRequest(reply, p.error);
    const g = await d.store.game(p.data.id);
    if (!g) return reply.code(404).send({ error: 'not_found', message: 'game not found' });
    return g;
  });

  app.get('/ratings/:email/history', { preHandler: requireUser }, async (req, reply) => {
    const p = z.object({ email }).safeParse(req.params);
    if (!p.success) return badRequest(reply, p.error);
    return { email: p.data.email, games: await d.store.history(p.data.email) };
  });

  app.post('/challenges', { preHandler: [requireUser, requireRole(d.adminRole)] }, async (req, reply) => {
    const body = z.object({
      week: z.string().regex(WEEK_KEY, 'must be an ISO week like 2026-W49'),
      title: plainText(200),
      action: plainText(200),
      target: z.number().int().min(1).max(1_000_000),
      xp: z.number().int().min(0).max(1_000_000),
    }).strict().safeParse(req.body);
    if (!body.success) return badRequest(reply, body.error);
    const c = await d.store.createChallenge({ ...body.data, createdBy: principalOf(req).email });
    await audit(req, 'gaming.challenge.create', `gaming/challenge/${c.id}`, { week: c.week, action: c.action, target: c.target, xp: c.xp });
    return reply.code(201).send(c);
  });

  app.get('/challenges', { preHandler: requireUser }, async (req, reply) => {
    const q = z.object({ week: z.string().regex(WEEK_KEY).optional() }).safeParse(req.query);
    if (!q.success) return badRequest(reply, q.error);
    const week = q.data.week ?? isoWeekKey(new Date(), d.timeZone);
    return { week, challenges: await d.store.challenges(week, principalOf(req).email) };
  });
}
