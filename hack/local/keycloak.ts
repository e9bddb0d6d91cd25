// Real Keycloak for tests, benchmarks and `npm run dev`: the pinned server
// distribution from Maven Central (hack/keycloak/fetch.sh), run in dev mode
// on loopback with an in-memory database so each instance starts clean and
// several can coexist. Keycloak 26.5 runs on Debian's OpenJDK 17, which every
// machine of this project has; KEYCLOAK_JAVA_HOME picks another JDK.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freePort, startProcess, waitFor, workDir, type Managed } from './process.js';

export const KEYCLOAK_VERSION = process.env.KEYCLOAK_VERSION ?? '26.5.6';
const JAVA_HOME_DEFAULT = '/usr/lib/jvm/java-17-openjdk-amd64';

export interface KeycloakInstance {
  baseUrl: string;
  adminUser: string;
  adminPassword: string;
  proc: Managed;
  /** Admin API token from the master realm (admin-cli, password grant). */
  adminToken(): Promise<string>;
  stop(): Promise<void>;
}

export function keycloakHome(): string {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'keycloak', 'fetch.sh');
  return execFileSync('bash', [script], { env: { ...process.env, KEYCLOAK_VERSION }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    .trim()
    .split('\n')
    .pop()!;
}

/**
 * start-dev re-augments the distribution in place (lib/quarkus), so two
 * instances starting at once from the same cached home could clobber each
 * other. A directory lock serialises the start-up phase only.
 */
async function withStartLock<T>(home: string, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(home, '.familyhub-start.lock');
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A start-up killed mid-way leaves the lock behind; none takes 5 minutes.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 5 * 60_000) rmdirSync(lock);
      } catch {
        /* removed by its owner meanwhile */
      }
      if (Date.now() > deadline) throw new Error(`keycloak: start lock ${lock} held for over 3 minutes; remove it if no Keycloak is starting`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    if (existsSync(lock)) rmdirSync(lock);
  }
}

export async function startKeycloak(opts: { port?: number } = {}): Promise<KeycloakInstance> {
  const home = keycloakHome();
  const dir = workDir('keycloak');
  const adminUser = 'familyhub-admin';
  const adminPassword = randomBytes(18).toString('base64url');
  const javaHome = process.env.KEYCLOAK_JAVA_HOME ?? JAVA_HOME_DEFAULT;

  const launch = async (port: number, mgmtPort: number) => {
    const baseUrl = `http://127.0.0.1:${port}`;
    const p = startProcess(
      'keycloak',
      path.join(home, 'bin', 'kc.sh'),
      [
        'start-dev',
        `--http-port=${port}`,
        '--http-host=127.0.0.1',
        `--http-management-port=${mgmtPort}`,
        '--db=dev-mem',
        '--cache=local',
        '--log-level=warn,org.keycloak.quarkus.runtime.KeycloakMain:info,io.quarkus:info',
      ],
      {
        cwd: dir,
        env: {
          JAVA_HOME: javaHome,
          PATH: `${javaHome}/bin:${process.env.PATH ?? ''}`,
          KC_BOOTSTRAP_ADMIN_USERNAME: adminUser,
          KC_BOOTSTRAP_ADMIN_PASSWORD: adminPassword,
          // Bounded heap: the machine is shared with apiservers and databases.
          JAVA_OPTS_KC_HEAP: '-Xms128m -Xmx1g',
          JAVA_OPTS_APPEND: `-Dquarkus.transaction-manager.object-store.directory=${path.join(dir, 'tx')}`,
        },
      },
    );
    await waitFor(
      `keycloak on ${baseUrl}`,
      async () => (await fetch(`${baseUrl}/realms/master/.well-known/openid-configuration`)).ok,
      { timeoutMs: 180_000, intervalMs: 500, proc: p },
    );
    return { proc: p, baseUrl };
  };

  const { proc, baseUrl } = await withStartLock(home, async () => {
    // Keycloak binds its ports ~30 s after we picked them as free; in a busy
    // test run an outgoing connection can take one meanwhile. Pick again then.
    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? (await freePort());
      try {
        return await launch(port, await freePort());
      } catch (err) {
        const bindRace = /Address already in use|Port already bound/.test(String(err));
        if (!bindRace || opts.port !== undefined || attempt >= 3) throw err;
      }
    }
  });

  const adminToken = async () => {
    const res = await fetch(`${baseUrl}/realms/master/protocol/openid-connect/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'password', client_id: 'admin-cli', username: adminUser, password: adminPassword }),
    });
    if (!res.ok) throw new Error(`keycloak admin login failed: HTTP ${res.status}`);
    return ((await res.json()) as { access_token: string }).access_token;
  };

  return { baseUrl, adminUser, adminPassword, proc, adminToken, stop: () => proc.stop(20_000) };
}

export interface RealmUser {
  username: string;
  email: string;
  password: string;
  groups?: string[];
}

/** Creates a realm with family users (idempotent per fresh instance). */
export async function createRealm(kc: KeycloakInstance, realm: string, users: RealmUser[] = []): Promise<void> {
  const token = await kc.adminToken();
  const call = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(`${kc.baseUrl}/admin/realms${p}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok && res.status !== 409) throw new Error(`keycloak ${method} ${p}: HTTP ${res.status} ${await res.text()}`);
    return res;
  };
  await call('POST', '', { realm, enabled: true, accessTokenLifespan: 300 });
  const groups = [...new Set(users.flatMap((u) => u.groups ?? []))];
  for (const g of groups) await call('POST', `/${realm}/groups`, { name: g });
  for (const u of users) {
    await call('POST', `/${realm}/users`, {
      username: u.username,
      email: u.email,
      emailVerified: true,
      enabled: true,
      firstName: u.username,
      lastName: 'Family',
      groups: (u.groups ?? []).map((g) => `/${g}`),
      credentials: [{ type: 'password', value: u.password, temporary: false }],
    });
  }
}
