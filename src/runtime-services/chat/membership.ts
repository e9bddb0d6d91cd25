// Who may change a channel's members, and the one path every change takes:
// the rule below, then the store, then the audit event and the bus event.
// Direct channels have exactly their two parties, fixed at creation.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditPublisher } from '../audit-publisher/publisher.js';
import type { Principal } from '../base/jwt/principal.js';
import type { ChatHub } from './hub.js';
import { directChannelId, type ChannelInfo, type ChatStore } from './store.js';

export type Refusal = { status: 400 | 403 | 404 | 409; error: string; message: string };

export interface ChangeRequest {
  change: 'add' | 'remove';
  channel: ChannelInfo | undefined;
  actor: Principal;
  actorIsMember: boolean;
  target: string;
}

export interface MembershipRules {
  adminRole: string;
  allowedDomains: string[];
}

export function inFamily(email: string, allowedDomains: string[]): boolean {
  return allowedDomains.includes(email.slice(email.lastIndexOf('@') + 1));
}

/** The rule for changes to an existing channel; undefined means allowed. */
export function refuseChange(r: ChangeRequest, rules: MembershipRules): Refusal | undefined {
  // Non-members learn nothing about the channel, not even that it exists.
  if (!r.channel || !r.actorIsMember) return { status: 404, error: 'not_found', message: 'no such channel' };
  if (r.channel.kind === 'direct') return { status: 409, error: 'conflict', message: 'direct channels have fixed members' };
  if (r.change === 'add') {
    if (!inFamily(r.target, rules.allowedDomains)) return { status: 400, error: 'bad_request', message: 'email: not in an allowed domain' };
    return undefined;
  }
  const self = r.target === r.actor.email;
  if (self || r.channel.createdBy === r.actor.email || r.actor.roles.includes(rules.adminRole)) return undefined;
  return { status: 403, error: 'forbidden', message: 'only the channel creator or an admin removes others' };
}

export class Membership {
  constructor(
    private readonly store: ChatStore,
    private readonly hub: ChatHub,
    private readonly audit: AuditPublisher,
    private readonly rules: MembershipRules,
    private readonly log: Logger,
  ) {}

  private async record(actor: string, requestId: string, action: 'chat.member.add' | 'chat.member.remove', channel: string, member: string) {
    // Awaited: a change the audit log did not get is reported as a failure
    // to the caller (the change itself is committed; the log line says which).
    try {
      await this.audit.publish({ actor, action, target: `chat/channel/${channel}`, outcome: 'success', requestId, details: { member } });
    } catch (err) {
      this.log.error({ err: (err as Error).message, action, channel, member }, 'membership change committed but its audit event was not published');
      throw new Error(`audit event ${action} for ${channel} was not published`);
    }
  }

  async createGroup(actor: Principal, requestId: string, name: string, members: string[]): Promise<Refusal | { id: string; members: string[] }> {
    const outsiders = members.filter((m) => !inFamily(m, this.rules.allowedDomains));
    if (outsiders.length) return { status: 400, error: 'bad_request', message: `members: not in an allowed domain: ${outsiders.join(', ')}` };
    const id = `g-${randomUUID()}`;
    const { added } = await this.store.createChannel({ id, kind: 'group', name, createdBy: actor.email, members: [actor.email, ...members] });
    await this.audit.publish({ actor: actor.email, action: 'chat.channel.create', target: `chat/channel/${id}`, outcome: 'success', requestId, details: { kind: 'group', name } });
    for (const m of added) await this.record(actor.email, requestId, 'chat.member.add', id, m);
    return { id, members: added.sort() };
  }

  async openDirect(actor: Principal, requestId: string, other: string): Promise<Refusal | { id: string; created: boolean }> {
    if (!inFamily(other, this.rules.allowedDomains)) return { status: 400, error: 'bad_request', message: 'email: not in an allowed domain' };
    if (other === actor.email) return { status: 400, error: 'bad_request', message: 'email: a direct channel needs another person' };
    const id = directChannelId(actor.email, other);
    const { created, added } = await this.store.createChannel({ id, kind: 'direct', name: null, createdBy: actor.email, members: [actor.email, other] });
    if (created) {
      await this.audit.publish({ actor: actor.email, action: 'chat.channel.create', target: `chat/channel/${id}`, outcome: 'success', requestId, details: { kind: 'direct' } });
      for (const m of added) await this.record(actor.email, requestId, 'chat.member.add', id, m);
    }
    return { id, created };
  }

  async change(actor: Principal, requestId: string, channelId: string, change: 'add' | 'remove', target: string): Promise<Refusal | undefined> {
    const channel = await this.store.channel(channelId);
    const actorIsMember = channel ? await this.store.isMember(channel.id, actor.email) : false;
    const refusal = refuseChange({ change, channel, actor, actorIsMember, target }, this.rules);
    if (refusal) return refusal;
    const changed = change === 'add' ? await this.store.addMember(channelId, target) : await this.store.removeMember(channelId, target);
    if (!changed) return undefined;
    await this.record(actor.email, requestId, change === 'add' ? 'chat.member.add' : 'chat.member.remove', channelId, target);
    await this.hub.publish({ t: 'x', channel: channelId, user: target, change: change === 'add' ? 'added' : 'removed' });
    return undefined;
  }
}
