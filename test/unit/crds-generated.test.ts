import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { chartClusterRole, chartCrdDir, crdDir, renderChartClusterRole, renderChartCrdFiles, renderCrdFiles } from '../../scripts/generate-crds.js';
import { buildCrds, type JsonSchema } from '../../src/crds/to-crd.js';
import { CATEGORY, kindNames, kinds, parseDuration, resourceSchemas, type KindName } from '../../src/crds/index.js';

const repo = path.resolve(import.meta.dirname, '../..');
const samplesDir = path.join(repo, 'config/samples');
const invalidDir = path.join(samplesDir, 'invalid');

/** Short names and singulars of built-in and very common kinds that must keep meaning them. */
const RESERVED = ['svc', 'service', 'services', 'route', 'routes', 'po', 'pod', 'pods', 'deploy', 'ns', 'no', 'cm', 'secret', 'sa', 'ing', 'ep', 'pv', 'pvc', 'sts', 'ds', 'rs', 'cj', 'job', 'hpa', 'crd', 'ev', 'gw', 'httproute'];

function walk(node: JsonSchema, at: string, visit: (node: JsonSchema, at: string) => void): void {
  visit(node, at);
  for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, JsonSchema>)) walk(child, `${at}.${name}`, visit);
  if (node.items) walk(node.items as JsonSchema, `${at}[]`, visit);
  if (node.additionalProperties && typeof node.additionalProperties === 'object') walk(node.additionalProperties as JsonSchema, `${at}{}`, visit);
}

const schemaOf = (crd: ReturnType<typeof buildCrds>[number]) =>
  ((crd.spec.versions as Array<{ schema: { openAPIV3Schema: JsonSchema } }>)[0]!).schema.openAPIV3Schema;

describe('generated CRDs', () => {
  it('config/crd matches the zod registry', () => {
    const expected = renderCrdFiles();
    const onDisk = readdirSync(crdDir).filter((f) => f.endsWith('.yaml')).sort();
    expect(onDisk, 'config/crd has stale or missing files: run `npm run generate`').toEqual([...expected.keys()].sort());
    for (const [name, text] of expected) {
      expect(readFileSync(path.join(crdDir, name), 'utf8'), `config/crd/${name} is out of date: run \`npm run generate\``).toBe(text);
    }
  });

  it('the chart\'s CRD templates match the zod registry', () => {
    const expected = renderChartCrdFiles();
    expect(readdirSync(chartCrdDir).sort(), 'charts/familyhub-operator/templates/crds has stale or missing files: run `npm run generate`').toEqual([...expected.keys()].sort());
    for (const [name, text] of expected) {
      expect(readFileSync(path.join(chartCrdDir, name), 'utf8'), `charts/familyhub-operator/templates/crds/${name} is out of date: run \`npm run generate\``).toBe(text);
    }
  });

  it('the chart\'s ClusterRole is generated from config/rbac (one source of permissions)', () => {
    expect(readFileSync(chartClusterRole, 'utf8'), 'charts/familyhub-operator/templates/clusterrole.yaml differs from config/rbac/role.yaml: run `npm run generate`').toBe(renderChartClusterRole());
  });

  it('describes every property (kubectl explain) and types every node (structural schema)', () => {
    const missing: string[] = [];
    for (const crd of buildCrds()) {
      walk(schemaOf(crd), crd.spec.names ? (crd.spec.names as { kind: string }).kind : '?', (node, at) => {
        if (!at.endsWith('.metadata') && !node.description) missing.push(at);
        expect(typeof node.type, `${at} has no type`).toBe('string');
        for (const k of ['anyOf', 'oneOf', 'allOf', '$ref', 'nullable']) expect(node, `${at} uses ${k}`).not.toHaveProperty(k);
        if (node.properties) expect(node, `${at}: additionalProperties beside properties`).not.toHaveProperty('additionalProperties');
      });
    }
    expect(missing).toEqual([]);
  });

  it('has every CEL message name the field it is about', () => {
    let rules = 0;
    for (const crd of buildCrds()) {
      walk(schemaOf(crd), '', (node, at) => {
        for (const v of (node['x-kubernetes-validations'] ?? []) as Array<{ rule: string; message: string; fieldPath?: string }>) {
          rules++;
          const field = (v.fieldPath ?? at).split('.').filter(Boolean).at(-1) ?? '';
          expect(v.message, `rule "${v.rule}" at ${at || 'root'}`).toContain(field);
        }
      });
    }
    expect(rules).toBeGreaterThanOrEqual(12);
  });

  it('keeps short names, singulars and plurals away from core names users type', () => {
    for (const k of kindNames) {
      const d = kinds[k];
      for (const s of d.shortNames) expect(RESERVED, `${k} short name ${s}`).not.toContain(s);
      expect(d.categories).toEqual([CATEGORY]);
      // kubectl would resolve the kind itself instead of the category.
      expect([d.singular, d.plural, d.kind.toLowerCase(), ...d.shortNames]).not.toContain(CATEGORY);
      expect(d.scope).toBe('Namespaced');
    }
    const all = kindNames.flatMap((k) => kinds[k].shortNames);
    expect(new Set(all).size).toBe(all.length);
    expect(kinds.Service.shortNames).toEqual(['fhsvc']);
    expect(kinds.Route.shortNames).toEqual(['fhroute']);
  });

  it('puts zod defaults into the schema', () => {
    const dbc = schemaOf(buildCrds().find((c) => c.metadata.name === 'databaseclaims.familyhub.dev')!);
    const spec = (dbc.properties as Record<string, JsonSchema>).spec!;
    const creds = (spec.properties as Record<string, JsonSchema>).credentials!;
    // Object defaults are expanded so the apiserver's CEL check of the default sees every field.
    expect(creds.default).toEqual({ mode: 'VaultDynamic', defaultTtl: '1h', maxTtl: '24h', rotationGracePeriod: '5m', rotateGeneration: 0 });
    expect((creds.properties as Record<string, JsonSchema>).mode!.default).toBe('VaultDynamic');
    expect((creds.properties as Record<string, JsonSchema>).maxTtl!.default).toBe('24h');
    expect((spec.properties as Record<string, JsonSchema>).deletionPolicy!.default).toBe('Retain');
  });
});

function readSample(file: string): { obj: { kind: KindName; [k: string]: unknown }; expectError?: string } {
  const text = readFileSync(file, 'utf8');
  return { obj: parse(text), expectError: /^# expect-error: (.+)$/m.exec(text)?.[1]?.trim() };
}

const formatIssues = (issues: Array<{ path: (string | number)[]; message: string }>) => issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');

describe('samples', () => {
  const valid = readdirSync(samplesDir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
  const invalid = readdirSync(invalidDir).filter((f) => f.endsWith('.yaml'));

  it('has one valid sample per kind and at least 12 invalid ones', () => {
    expect(valid.map((f) => readSample(path.join(samplesDir, f)).obj.kind).sort()).toEqual([...kindNames].sort());
    expect(invalid.length).toBeGreaterThanOrEqual(12);
  });

  it.each(valid)('%s parses with the zod schema', (f) => {
    const { obj } = readSample(path.join(samplesDir, f));
    const res = resourceSchemas[obj.kind].safeParse(obj);
    expect(res.success, res.success ? '' : formatIssues(res.error.issues)).toBe(true);
  });

  it.each(invalid)('invalid/%s is rejected by zod at the named field', (f) => {
    const { obj, expectError } = readSample(path.join(invalidDir, f));
    expect(expectError, `${f} needs a "# expect-error: <field>" comment`).toBeTruthy();
    const res = resourceSchemas[obj.kind].safeParse(obj);
    expect(res.success).toBe(false);
    if (!res.success) expect(formatIssues(res.error.issues)).toContain(expectError);
  });
});

describe('zod twins of CEL rules', () => {
  const claim = (credentials: Record<string, unknown>) => ({ familyHubRef: { name: 'home' }, credentials });

  it('fills defaults like the apiserver does', () => {
    const spec = kinds.DatabaseClaim.specSchema.parse({ familyHubRef: { name: 'home' } });
    expect(spec).toMatchObject({ credentials: { mode: 'VaultDynamic', defaultTtl: '1h', maxTtl: '24h', rotationGracePeriod: '5m', rotateGeneration: 0 }, extensions: [], deletionPolicy: 'Retain' });
  });

  it('compares durations by value, not text', () => {
    expect(parseDuration('1h30m')).toBe(90 * 60_000);
    expect(kinds.DatabaseClaim.specSchema.safeParse(claim({ defaultTtl: '90m', maxTtl: '2h' })).success).toBe(true);
    expect(kinds.DatabaseClaim.specSchema.safeParse(claim({ defaultTtl: '90m', maxTtl: '1h' })).success).toBe(false);
    expect(() => parseDuration('1 hour')).toThrow(/invalid duration/);
  });

  it('accepts https and loopback http redirect URIs only', () => {
    const client = (uri: string) => kinds.OIDCClient.specSchema.safeParse({ familyHubRef: { name: 'home' }, redirectUris: [uri] }).success;
    expect(client('https://a.example.org/cb?x=1')).toBe(true);
    expect(client('http://127.0.0.1:8080/cb')).toBe(true);
    expect(client('http://localhost/cb')).toBe(true);
    expect(client('http://localhost.evil.org/cb')).toBe(false);
    expect(client('http://a.example.org/cb')).toBe(false);
    expect(client('https://a.example.org/cb#frag')).toBe(false);
    expect(client('javascript:alert(1)')).toBe(false);
  });

  it('rejects duplicate set items and duplicate env names', () => {
    const svc = { familyHubRef: { name: 'home' }, image: 'x', port: 80, host: 'a.example.org' };
    expect(kinds.Service.specSchema.safeParse({ ...svc, env: [{ name: 'A', value: '1' }, { name: 'A', value: '2' }] }).success).toBe(false);
    expect(kinds.OIDCClient.specSchema.safeParse({ familyHubRef: { name: 'home' }, redirectUris: ['https://a.example.org', 'https://a.example.org'] }).success).toBe(false);
  });
});
