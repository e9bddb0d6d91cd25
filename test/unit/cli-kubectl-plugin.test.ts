// kubectl-familyhub's pure parts: argument parsing, kind aliases, the tree
// and table layout, condition polarity, plan field diffs, the CRD schema
// hash doctor compares. The commands themselves run against a real cluster
// in test/e2e/cli-kubectl-plugin.test.ts.
import { describe, expect, it } from 'vitest';
import { crdSchemaHash, failed, renderDoctor } from '../../src/cli/doctor.js';
import { kindFromAlias, parseRef, UsageError } from '../../src/cli/kube.js';
import { parseCli, parseTimeout } from '../../src/cli/main.js';
import { conditionHealthy, conditionLines, noStyle, renderTree, styleFor, table } from '../../src/cli/output.js';
import { changedFields } from '../../src/cli/plan.js';
import { buildCrds } from '../../src/crds/to-crd.js';

describe('arguments', () => {
  it('takes kubectl-style flags anywhere and refuses unknown ones', () => {
    const { flags, positionals } = parseCli(['status', '-n', 'apps', 'dbc/app', '-o', 'json', '--context', 'dev']);
    expect(positionals).toEqual(['status', 'dbc/app']);
    expect(flags).toMatchObject({ namespace: 'apps', output: 'json', context: 'dev' });
    expect(parseCli(['status', '-A']).flags['all-namespaces']).toBe(true);
    expect(() => parseCli(['status', '--colour'])).toThrow(UsageError);
    expect(() => parseCli(['status', '-o', 'yaml'])).toThrow(/only text and json/);
  });

  it('resolves every name kubectl accepts for our kinds, and says which exist otherwise', () => {
    expect(parseRef('dbc/app')).toEqual({ kind: 'DatabaseClaim', name: 'app' });
    expect(parseRef('oidcclient/web')).toEqual({ kind: 'OIDCClient', name: 'web' });
    expect(parseRef('fhsvc/recipes').kind).toBe('Service');
    expect(parseRef('services.familyhub.dev/recipes').kind).toBe('Service');
    expect(parseRef('FamilyHub/home').kind).toBe('FamilyHub');
    expect(kindFromAlias('fhroute')).toBe('Route');
    expect(kindFromAlias('svc')).toBeUndefined(); // core Services stay core
    expect(() => parseRef('pod/x')).toThrow(/unknown kind "pod": one of fh \(FamilyHub\)/);
    expect(() => parseRef('dbc')).toThrow(/expected <kind>\/<name>/);
  });

  it('reads timeouts as Go-like durations or seconds', () => {
    expect(parseTimeout(undefined, 5)).toBe(5);
    expect(parseTimeout('90', 0)).toBe(90_000);
    expect(parseTimeout('2m', 0)).toBe(120_000);
    expect(parseTimeout('1.5s', 0)).toBe(1500);
    expect(() => parseTimeout('soon', 0)).toThrow(/duration/);
  });
});

describe('output', () => {
  it('draws a tree with details under each node and guides only where siblings follow', () => {
    const text = renderTree({
      label: 'Service apps/recipes',
      details: ['url: https://recipes.example.org/'],
      children: [
        { label: 'DatabaseClaim recipes', details: ['schema: apps_recipes'], children: [{ label: 'Secret recipes-db' }] },
        { label: 'Deployment recipes' },
      ],
    });
    expect(text.split('\n')).toEqual([
      'Service apps/recipes',
      '│  url: https://recipes.example.org/',
      '├─ DatabaseClaim recipes',
      '│  │  schema: apps_recipes',
      '│  └─ Secret recipes-db',
      '└─ Deployment recipes',
    ]);
  });

  it('aligns table columns on the visible width, colour codes excluded', () => {
    const colour = styleFor({ isTTY: true }, {});
    const text = table(['A', 'B', 'C'], [[colour.good('True'), 'x', 'end'], ['False', 'yy', 'e']]);
    const plain = text.replace(/\u001b\[[0-9;]*m/g, '');
    expect(plain.split('\n')).toEqual(['A      B   C', 'True   x   end', 'False  yy  e']);
  });

  it('colours only on a terminal, and never with NO_COLOR', () => {
    expect(styleFor({ isTTY: false }, {}).good('x')).toBe('x');
    expect(styleFor({ isTTY: true }, { NO_COLOR: '1' }).good('x')).toBe('x');
    expect(styleFor({ isTTY: true }, {}).good('x')).not.toBe('x');
  });

  it('knows which conditions are bad news when True', () => {
    expect(conditionHealthy({ type: 'Ready', status: 'True' })).toBe(true);
    expect(conditionHealthy({ type: 'Degraded', status: 'True' })).toBe(false);
    expect(conditionHealthy({ type: 'Stalled', status: 'False' })).toBe(true);
    expect(conditionHealthy({ type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' })).toBe(true);
    expect(conditionHealthy({ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' })).toBe(false);
    expect(conditionHealthy({ type: 'Ready', status: 'Unknown' })).toBeUndefined();
    const lines = conditionLines([{ type: 'Ready', status: 'False', reason: 'PostgresUnavailable', message: 'connect\n  ECONNREFUSED', lastTransitionTime: new Date(Date.now() - 90_000).toISOString() }], noStyle);
    expect(lines[1]).toMatch(/^Ready\s+False\s+PostgresUnavailable\s+90s\s+connect ECONNREFUSED$/);
  });
});

describe('plan diff', () => {
  it('names the changed leaf fields, whole arrays when their length changes', () => {
    expect(changedFields({ spec: { image: 'a:1', port: 80, env: [{ name: 'X', value: '1' }] } }, { spec: { image: 'a:2', port: 80, env: [{ name: 'X', value: '2' }] } }))
      .toEqual(['spec.env[0].value', 'spec.image']);
    expect(changedFields({ spec: { args: ['a'] } }, { spec: { args: ['a', 'b'] } })).toEqual(['spec.args']);
    expect(changedFields({ spec: { a: 1 } }, { spec: { a: 1 } })).toEqual([]);
    expect(changedFields({ spec: {} }, { spec: { replicas: 2 } })).toEqual(['spec.replicas']);
  });
});

describe('doctor', () => {
  it('hashes what serves the API: stable across key order and apiserver additions, changed by a schema edit', () => {
    const [crd] = buildCrds();
    const h = crdSchemaHash(crd as never);
    // What the apiserver adds on its own: status, conversion, metadata.
    const stored = JSON.parse(JSON.stringify({ ...crd, metadata: { ...crd!.metadata, uid: 'u', resourceVersion: '7' }, status: { acceptedNames: {} } }));
    stored.spec.conversion = { strategy: 'None' };
    stored.spec = Object.fromEntries(Object.entries(stored.spec).reverse());
    expect(crdSchemaHash(stored)).toBe(h);
    const edited = JSON.parse(JSON.stringify(crd));
    edited.spec.versions[0].schema.openAPIV3Schema.properties.spec.description = 'older text';
    expect(crdSchemaHash(edited)).not.toBe(h);
  });

  it('fails only on failed checks, not on warnings, and prints a fix under each problem', () => {
    const checks = [
      { area: 'crds' as const, subject: 'services.familyhub.dev', ok: true, message: 'installed and current' },
      { area: 'familyhub' as const, subject: 'FamilyHub', ok: true, warning: true, message: 'no FamilyHub', fix: 'create one' },
    ];
    expect(failed(checks)).toBe(false);
    const bad = [...checks, { area: 'leader' as const, subject: 'Lease x/familyhub-operator', ok: false, message: 'no leader', fix: 'start the operator' }];
    expect(failed(bad)).toBe(true);
    const text = renderDoctor(bad, noStyle);
    expect(text).toMatch(/^FAIL\s+leader\s+Lease x\/familyhub-operator: no leader\n\s+fix: start the operator$/m);
    expect(text).toMatch(/1 problem found$/);
  });
});
