import { describe, expect, it } from 'vitest';
import { principalFromClaims } from '../../src/runtime-services/base/jwt/claims.js';
import { AuthError } from '../../src/runtime-services/base/jwt/principal.js';

const domains = ['family.test'];

describe('principal from verified claims', () => {
  it('merges groups, roles and Keycloak realm roles', () => {
    const p = principalFromClaims(
      { sub: 's1', exp: 1_900_000_000, email: 'Alice@Family.test', email_verified: true, groups: ['/parents', 'admins'], roles: ['admins'], realm_access: { roles: ['offline'] } },
      domains,
    );
    expect(p).toEqual({ subject: 's1', email: 'alice@family.test', roles: ['parents', 'admins', 'offline'], expiresAt: 1_900_000_000_000 });
  });

  it.each([
    [{ sub: 's', email_verified: true }, /no email/],
    [{ sub: 's', email: 'bob@family.test', email_verified: false }, /not verified/],
    [{ sub: 's', email: 'bob@family.test' }, /not verified/],
    [{ sub: 's', email: 'mallory@outsider.example', email_verified: true }, /outsider.example is not allowed/],
    // A domain that merely ends with the allowed one is a different domain.
    [{ sub: 's', email: 'eve@evilfamily.test', email_verified: true }, /evilfamily.test is not allowed/],
  ])('refuses %o as forbidden', (claims, reason) => {
    let err: unknown;
    try {
      principalFromClaims(claims, domains);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).kind).toBe('forbidden');
    expect((err as Error).message).toMatch(reason);
  });
});
