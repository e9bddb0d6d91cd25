// The family the development IdP knows. One member sits outside the family's
// domain on purpose: tests use her to prove that domain restrictions hold.
export interface DevUser {
  id: string;
  email: string;
  emailVerified: boolean;
  name: string;
  groups: string[];
  /** Only used by the interactive login page of `npm run dev-idp`. */
  password: string;
}

export function familyUsers(domain: string): DevUser[] {
  return [
    { id: 'alice', email: `alice@${domain}`, emailVerified: true, name: 'Alice Parent', groups: ['parents', 'admins'], password: 'alice-dev' },
    { id: 'bob', email: `bob@${domain}`, emailVerified: true, name: 'Bob Parent', groups: ['parents'], password: 'bob-dev' },
    { id: 'charlie', email: `charlie@${domain}`, emailVerified: true, name: 'Charlie Kid', groups: ['kids'], password: 'charlie-dev' },
    { id: 'mallory', email: 'mallory@outsider.example', emailVerified: true, name: 'Mallory Outsider', groups: [], password: 'mallory-dev' },
  ];
}
