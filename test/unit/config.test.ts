// The operator's configuration: every setting validated once, a bad value
// stops the process with one line naming the variable.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, operatorEnvSchema } from '../../src/config.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('operator configuration', () => {
  it('has defaults for everything and accepts Go durations or milliseconds', () => {
    const c = loadConfig({ FAMILYHUB_LEASE_NAMESPACE: 'x', FAMILYHUB_RESYNC_MS: '1500', FAMILYHUB_IDP_RETRY_MS: '2s' });
    expect(c.core).toEqual({ resyncMs: 1500, concurrency: 8, stalledRetryMs: 300_000 });
    expect(c.oidcClient.idpRetryMs).toBe(2000);
    expect(c.leaderElection).toMatchObject({ namespace: 'x', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 });
    expect(loadConfig({ FAMILYHUB_LEADER_ELECTION: 'false' }).leaderElection).toBeUndefined();
  });

  it.each([
    ['FAMILYHUB_CONCURRENCY', 'abc'],
    ['FAMILYHUB_CONCURRENCY', '0'],
    ['FAMILYHUB_DEPENDENCY_RETRY_MS', '1'],
    ['FAMILYHUB_RESYNC_MS', 'soon'],
    ['FAMILYHUB_METRICS_PORT', '70000'],
    ['FAMILYHUB_LEADER_ELECTION', 'yes'],
    ['LOG_LEVEL', 'loud'],
  ])('refuses %s=%s with a message naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^invalid configuration: ${name}: `));
  });

  it('refuses a renew deadline that is not shorter than the lease', () => {
    expect(() => loadConfig({ FAMILYHUB_LEASE_NAMESPACE: 'x', FAMILYHUB_LEASE_DURATION_MS: '5s', FAMILYHUB_RENEW_DEADLINE_MS: '5s' })).toThrow(/FAMILYHUB_RENEW_DEADLINE_MS: must be shorter/);
  });

  it('the operator process exits at once with one line naming the bad variable', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts')], {
      cwd: root, env: { ...process.env, FAMILYHUB_CONCURRENCY: 'abc', KUBECONFIG: '/nonexistent' }, encoding: 'utf8', timeout: 30_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('invalid configuration: FAMILYHUB_CONCURRENCY: must be a whole number from 1 to 256, got "abc"');
  });

  it('documents every setting in the README', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const missing = Object.keys(operatorEnvSchema.shape).filter((k) => !readme.includes(`\`${k}\``));
    expect(missing).toEqual([]);
  });
});
