// The Argo CD health checks in deploy/argocd as Argo CD runs them: each
// health.lua in gopher-lua (hack/go/luahealth) against the testdata that
// test/e2e/status-conformance.test.ts exported from live objects, and the
// same files through kstatus (hack/go/kstatus), whose verdict the file name
// states (healthy_ → Current, progressing_ → InProgress, degraded_ → Failed).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { repoRoot } from '../../hack/local/manifests.js';
import { prebuilt } from '../support/prebuilt.js';
import { goTool } from '../support/tools.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const HEALTH = path.join(repoRoot, 'deploy/argocd/health');
const GROUP = path.join(HEALTH, 'familyhub.dev');
const KINDS = ['DatabaseClaim', 'FamilyHub', 'OIDCClient', 'Route', 'Service'];
const EXPECTED: Record<string, { health: string; kstatus: string }> = {
  healthy: { health: 'Healthy', kstatus: 'Current' },
  progressing: { health: 'Progressing', kstatus: 'InProgress' },
  degraded: { health: 'Degraded', kstatus: 'Failed' },
  // kstatus has no "suspended": its last rule reads Ready=False as InProgress.
  suspended: { health: 'Suspended', kstatus: 'InProgress' },
};

/** The argocd-cm keys for all five kinds (deploy/argocd/argocd-cm-health.yaml, a merge patch). */
function renderArgocdCm(): string {
  const data = Object.fromEntries(KINDS.map((k) => [`resource.customizations.health.familyhub.dev_${k}`, readFileSync(path.join(GROUP, k, 'health.lua'), 'utf8')]));
  return '# Generated from deploy/argocd/health by test/unit/argocd-health.test.ts (FAMILYHUB_EXPORT_TESTDATA=1 rewrites it); see docs/argocd.md.\n'
    + stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'argocd-cm', namespace: 'argocd', labels: { 'app.kubernetes.io/part-of': 'argocd' } }, data }, { lineWidth: 0 });
}

let luahealth: string;
let kstatus: string;

beforeAll(() => {
  // Cached by version: hack/test.sh builds both in the background first.
  luahealth = goTool('luahealth');
  kstatus = goTool('kstatus');
}, 600_000);

describe('Argo CD health checks (deploy/argocd/health)', () => {
  it('has one health check per kind, in Argo CD\'s resource_customizations layout, all the same rules', () => {
    expect(readdirSync(GROUP).sort()).toEqual(KINDS);
    const scripts = KINDS.map((k) => readFileSync(path.join(GROUP, k, 'health.lua'), 'utf8'));
    for (const s of scripts) expect(s).toBe(scripts[0]);
  });

  it('deploy/argocd/argocd-cm-health.yaml carries exactly these health checks', () => {
    const file = path.join(repoRoot, 'deploy/argocd/argocd-cm-health.yaml');
    if (process.env.FAMILYHUB_EXPORT_TESTDATA === '1') writeFileSync(file, renderArgocdCm());
    expect(readFileSync(file, 'utf8'), 'stale: run FAMILYHUB_EXPORT_TESTDATA=1 npx vitest run test/unit/argocd-health.test.ts').toBe(renderArgocdCm());
  });

  it('every health_test.yaml passes in gopher-lua, and covers Healthy, Progressing and Degraded for every kind (and Suspended for a Service)', () => {
    const out = execFileSync(luahealth, ['test', HEALTH], { encoding: 'utf8' });
    const total = /(\d+) passed, 0 failed/.exec(out);
    expect(total, out).not.toBeNull();
    for (const kind of KINDS) {
      const tests = (parse(readFileSync(path.join(GROUP, kind, 'health_test.yaml'), 'utf8')) as { tests: Array<{ healthStatus: { status: string }; inputPath: string }> }).tests;
      // A Service is the kind with a plan mode and spec.suspend.
      expect(new Set(tests.map((t) => t.healthStatus.status)), kind).toEqual(new Set(['Healthy', 'Progressing', 'Degraded', ...(kind === 'Service' ? ['Suspended'] : [])]));
      for (const t of tests) {
        const prefix = path.basename(t.inputPath).split('_')[0]!;
        expect(t.healthStatus.status, `${kind} ${t.inputPath}`).toBe(EXPECTED[prefix]?.health);
      }
    }
    expect(Number(total![1])).toBeGreaterThanOrEqual(KINDS.length * 3 + 1);
  });

  it('kstatus computes Current, InProgress and Failed (InProgress for a suspended Service) for the same exported objects', () => {
    const files = KINDS.flatMap((k) => readdirSync(path.join(GROUP, k, 'testdata')).map((f) => path.join(GROUP, k, 'testdata', f)));
    const out = execFileSync(kstatus, files, { encoding: 'utf8' }).trim().split('\n').map((l) => JSON.parse(l) as { status: string; message: string });
    expect(out).toHaveLength(files.length);
    files.forEach((f, i) => {
      const prefix = path.basename(f).split('_')[0]!;
      expect(out[i]!.status, `${path.relative(GROUP, f)}: ${out[i]!.message}`).toBe(EXPECTED[prefix]?.kstatus);
    });
  });

  it('an object without status, or with an unknown status, never reads as Healthy', () => {
    // Argo CD calls the health check for objects it has just created, before any controller ran.
    const fresh = { apiVersion: 'familyhub.dev/v1alpha1', kind: 'Route', metadata: { name: 'x', namespace: 'y', generation: 1 }, spec: {} };
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'argocd-health-')), 'fresh.json');
    writeFileSync(file, JSON.stringify(fresh));
    const [health] = execFileSync(luahealth, ['run', path.join(GROUP, 'Route/health.lua'), file], { encoding: 'utf8' }).trim().split('\n').map((l) => JSON.parse(l));
    expect(health).toMatchObject({ status: 'Progressing' });
  });
});
