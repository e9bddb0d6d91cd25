// Turns the zod registry into apiextensions.k8s.io/v1 CRDs. The apiserver
// only accepts *structural* schemas: every node typed, no anyOf/oneOf at
// the top, no additionalProperties next to properties. zod-to-json-schema
// gives us OpenAPI 3 close to that; normalise() closes the gap and refuses
// (rather than silently emits) anything the apiserver would reject.
import { zodToJsonSchema } from 'zod-to-json-schema';
import type { z } from 'zod';
import { kinds, kindNames, type KindDefinition } from './index.js';
import { k8sExtensionsOf } from './k8s-extensions.js';

export type JsonSchema = { [key: string]: unknown };

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: Record<string, unknown>;
}

/** OpenAPI v3 schema of one zod schema, with CEL rules and list semantics attached. */
export function toOpenApi(schema: z.ZodTypeAny, where: string): JsonSchema {
  const raw = zodToJsonSchema(schema, {
    target: 'openApi3',
    $refStrategy: 'none',
    effectStrategy: 'input',
    postProcess: (json, def) => {
      if (json && isDefault(def)) {
        // The apiserver validates a default (CEL included) as written, before
        // nested defaults apply: `{}` for credentials would fail maxTtl >=
        // defaultTtl. So emit the default zod would produce, fully expanded.
        (json as JsonSchema).default = def.innerType.parse(def.defaultValue());
      }
      const ext = k8sExtensionsOf(def);
      if (!json || !ext) return json;
      const out = json as JsonSchema;
      if (ext.validations?.length) {
        const existing = (out['x-kubernetes-validations'] as unknown[] | undefined) ?? [];
        out['x-kubernetes-validations'] = [...existing, ...ext.validations.map((v) => ({ ...v }))];
      }
      if (ext.listType) out['x-kubernetes-list-type'] = ext.listType;
      if (ext.listMapKeys) out['x-kubernetes-list-map-keys'] = ext.listMapKeys;
      return out;
    },
  }) as JsonSchema;
  return normalise(raw, where);
}

function isDefault(def: unknown): def is z.ZodDefaultDef {
  return (def as { typeName?: string }).typeName === 'ZodDefault';
}

const FORBIDDEN = ['anyOf', 'oneOf', 'allOf', 'not', '$ref', 'nullable', 'uniqueItems', 'definitions'];

function normalise(node: JsonSchema, where: string): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$schema') continue;
    if (FORBIDDEN.includes(key)) throw new Error(`${where}: "${key}" is not allowed in a structural CRD schema; express it with a CEL rule instead`);
    if (key === 'additionalProperties') {
      // false/true come from zod's strict()/passthrough(): the apiserver
      // prunes unknown fields anyway, and forbids the keyword next to
      // properties. A schema (z.record) stays: it types the map values.
      if (typeof value === 'object' && value !== null) out[key] = normalise(value as JsonSchema, `${where}.*`);
      continue;
    }
    if (key === 'properties') {
      out[key] = Object.fromEntries(Object.entries(value as Record<string, JsonSchema>).map(([p, s]) => [p, normalise(s, `${where}.${p}`)]));
      continue;
    }
    if (key === 'items') {
      out[key] = normalise(value as JsonSchema, `${where}[]`);
      continue;
    }
    out[key] = value;
  }
  if (typeof out.type !== 'string') throw new Error(`${where}: every node of a structural schema needs a single type (got ${JSON.stringify(out.type)})`);
  if (typeof out.description !== 'string' || !out.description) throw new Error(`${where}: missing description (add .describe() so kubectl explain can show it)`);
  return out;
}

/**
 * kstatus (Flux, cli-utils) calls an object without status conditions and
 * without status.observedGeneration Current, so an object no controller has
 * seen yet would look done. The apiserver applies schema defaults whenever
 * it reads an object, so every object reads as `observedGeneration: 0`
 * (InProgress: generation 1 not observed) until the operator writes status.
 */
function withUnobservedDefault(status: JsonSchema): JsonSchema {
  return { ...status, default: { observedGeneration: 0 } };
}

function openApiForKind(def: KindDefinition): JsonSchema {
  const root: JsonSchema = {
    type: 'object',
    description: def.description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string', description: 'Versioned schema of this object; see https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources' },
      kind: { type: 'string', description: 'REST resource this object represents; see https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds' },
      metadata: { type: 'object' },
      spec: toOpenApi(def.specSchema, `${def.kind}.spec`),
      status: withUnobservedDefault(toOpenApi(def.statusSchema, `${def.kind}.status`)),
    },
  };
  if (def.celRules.length) root['x-kubernetes-validations'] = def.celRules.map(({ check: _check, ...cel }) => cel);
  return root;
}

export function buildCrd(def: KindDefinition): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${def.plural}.${def.group}`,
      labels: { 'app.kubernetes.io/part-of': 'familyhub-operator' },
    },
    spec: {
      group: def.group,
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: def.categories,
      },
      scope: def.scope,
      versions: [{
        name: def.version,
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: def.printerColumns,
        ...(def.selectableFields.length ? { selectableFields: def.selectableFields.map((jsonPath) => ({ jsonPath })) } : {}),
        schema: { openAPIV3Schema: openApiForKind(def) },
      }],
    },
  };
}

/** Every FamilyHub CRD, in registry order. */
export function buildCrds(): CustomResourceDefinition[] {
  return kindNames.map((k) => buildCrd(kinds[k]));
}
