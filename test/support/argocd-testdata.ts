// Writes the Argo CD health-check testdata (deploy/argocd/health/familyhub.dev/
// <Kind>/testdata and health_test.yaml) from live objects. Two suites export:
// test/e2e/status-conformance.test.ts (a plain control plane) and
// test/e2e/node-service-sample.test.ts (the Service sample Ready on a real
// node). Each owns its own files and leaves the other's, so either can be
// re-run alone with FAMILYHUB_EXPORT_TESTDATA=1.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { repoRoot } from '../../hack/local/manifests.js';
import type { KubeObject } from '../../src/core/reconciler.js';

export const HEALTH_DIR = path.join(repoRoot, 'deploy/argocd/health/familyhub.dev');

/** Files the node suite exports; every other testdata file is status-conformance's. */
export const NODE_SUITE_FILES: Record<string, string[]> = { Service: ['healthy_ready'] };

export interface ExportedCase {
  /** testdata file name without .yaml, e.g. degraded_unknown_scope */
  file: string;
  obj: KubeObject;
  health: { status: string; message: string };
}

/** The object as Argo CD's health tests keep it: no server bookkeeping that changes per run. */
export function forTestdata(o: KubeObject): KubeObject {
  const { managedFields: _m, resourceVersion: _r, uid: _u, creationTimestamp: _c, ...metadata } = o.metadata;
  return { apiVersion: o.apiVersion, kind: o.kind, metadata, spec: o.spec, ...(o.status ? { status: o.status } : {}) };
}

type TestEntry = { healthStatus: { status: string; message: string }; inputPath: string };

/** Replaces the files `owns` says are this suite's with `cases`, keeping the rest and their health_test.yaml entries. */
export function writeKindTestdata(kind: string, cases: ExportedCase[], owns: (file: string) => boolean): void {
  const dir = path.join(HEALTH_DIR, kind);
  const data = path.join(dir, 'testdata');
  mkdirSync(data, { recursive: true });
  for (const f of readdirSync(data)) if (owns(f.replace(/\.yaml$/, ''))) rmSync(path.join(data, f));
  for (const c of cases) writeFileSync(path.join(data, `${c.file}.yaml`), stringify(forTestdata(c.obj), { lineWidth: 0 }));
  const testFile = path.join(dir, 'health_test.yaml');
  const before = existsSync(testFile) ? ((parse(readFileSync(testFile, 'utf8')) as { tests?: TestEntry[] } | null)?.tests ?? []) : [];
  const stem = (t: TestEntry) => path.basename(t.inputPath).replace(/\.yaml$/, '');
  const kept = before.filter((t) => !owns(stem(t)) && existsSync(path.join(dir, t.inputPath)));
  const tests = [...kept, ...cases.map((c) => ({ healthStatus: c.health, inputPath: `testdata/${c.file}.yaml` }))]
    .sort((a, b) => a.inputPath.localeCompare(b.inputPath));
  const header = '# Exported from live objects by test/e2e/status-conformance.test.ts and test/e2e/node-service-sample.test.ts (FAMILYHUB_EXPORT_TESTDATA=1); Argo CD\'s health_test.yaml format.\n';
  writeFileSync(testFile, header + stringify({ tests }, { lineWidth: 0 }));
}
