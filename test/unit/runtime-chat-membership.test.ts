// The one membership rule (chat/membership.ts) on plain objects.
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/runtime-services/base/jwt/principal.js';
import { refuseChange, type ChangeRequest } from '../../src/runtime-services/chat/membership.js';
import type { ChannelInfo } from '../../src/runtime-services/chat/store.js';

const rules = { adminRole: 'admins', allowedDomains: ['family.test'] };
const who = (name: string, roles: string[] = []): Principal => ({ subject: name, email: `${name}@family.test`, roles, expiresAt: 0 });
const group: ChannelInfo = { id: 'g-1', kind: 'group', name: 'g', createdBy: 'alice@family.test', lastOffset: 0 };
const direct: ChannelInfo = { id: 'dm:alice@family.test:bob@family.test', kind: 'direct', name: null, createdBy: 'alice@family.test', lastOffset: 0 };

const req = (over: Partial<ChangeRequest>): ChangeRequest => ({
  change: 'add', channel: group, actor: who('bob'), actorIsMember: true, target: 'charlie@family.test', ...over,
});

describe('chat membership rule', () => {
  it.each<[string, Partial<ChangeRequest>, number | undefined]>([
    ['a member adds a family member', {}, undefined],
    ['a member adds an outsider', { target: 'mallory@outsider.example' }, 400],
    ['a non-member adds anyone', { actorIsMember: false }, 404],
    ['anyone changes a channel that does not exist', { channel: undefined }, 404],
    ['a member removes themselves', { change: 'remove', target: 'bob@family.test' }, undefined],
    ['a member removes another', { change: 'remove' }, 403],
    ['the creator removes another', { change: 'remove', actor: who('alice') }, undefined],
    ['an admin member removes another', { change: 'remove', actor: who('dave', ['admins']) }, undefined],
    ['an admin who is not a member removes another', { change: 'remove', actor: who('dave', ['admins']), actorIsMember: false }, 404],
    ['the creator of a direct channel removes the other party', { channel: direct, change: 'remove', actor: who('alice'), target: 'bob@family.test' }, 409],
    ['a party leaves a direct channel', { channel: direct, change: 'remove', target: 'bob@family.test' }, 409],
    ['a party adds someone to a direct channel', { channel: direct }, 409],
    ['an admin removes a party of a direct channel', { channel: direct, change: 'remove', actor: who('alice', ['admins']), target: 'bob@family.test' }, 409],
  ])('%s', (_what, over, status) => {
    expect(refuseChange(req(over), rules)?.status).toBe(status);
  });
});
