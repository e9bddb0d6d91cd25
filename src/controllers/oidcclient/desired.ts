// What an OIDCClient asks the IdP for, derived from the CR and its
// FamilyHub, plus the checks the CRD schema cannot make because they depend
// on the hub (its domain) or on the IdP (which scopes exist).
import type { OIDCClientSpec } from '../../crds/oidcclient.js';
import type { ClientSpec } from '../../idp/types.js';
import type { Hub } from '../../platform/hub.js';
import type { KubeObject } from '../../core/reconciler.js';

export function clientIdOf(obj: KubeObject, spec: OIDCClientSpec): string {
  return spec.clientId ?? `${obj.metadata.namespace}-${obj.metadata.name}`;
}

/** Marks IdP clients as ours; namespace/name so a re-created CR finds its client again. */
export function ownerTag(obj: KubeObject): string {
  return `${obj.metadata.namespace}/${obj.metadata.name}`;
}

export function desiredClient(obj: KubeObject, spec: OIDCClientSpec, hub: Hub): ClientSpec {
  return {
    clientId: clientIdOf(obj, spec),
    name: `${obj.metadata.namespace}/${obj.metadata.name}`,
    confidential: spec.clientType === 'confidential',
    redirectUris: spec.redirectUris,
    postLogoutRedirectUris: spec.postLogoutRedirectUris,
    webOrigins: spec.webOrigins,
    grantTypes: spec.grantTypes,
    pkce: spec.pkce,
    defaultScopes: spec.defaultScopes ?? hub.spec.identity.defaultScopes,
    optionalScopes: spec.optionalScopes,
    owner: ownerTag(obj),
  };
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Problems that make the client unsafe to register, checked again here
 * because an object stored under an older CRD may not have met today's
 * schema. Wildcards ("*") never get this far: the schema refuses them (an
 * open redirect at the IdP).
 */
export function validateAgainstHub(spec: OIDCClientSpec, _hub: Hub): string[] {
  const problems: string[] = [];
  for (const [field, uris] of [['redirectUris', spec.redirectUris], ['postLogoutRedirectUris', spec.postLogoutRedirectUris]] as const) {
    for (const uri of uris) {
      let url: URL;
      try {
        url = new URL(uri);
      } catch {
        problems.push(`${field}: "${uri}" is not a URL`);
        continue;
      }
      if (url.protocol !== 'https:' && !LOOPBACK.has(url.hostname)) problems.push(`${field}: "${uri}" must use https (http only for localhost)`);
    }
  }
  return problems;
}

export function unknownScopes(spec: ClientSpec, known: string[] | undefined): string[] {
  if (!known?.length) return [];
  const set = new Set(known);
  return [...spec.defaultScopes, ...spec.optionalScopes].filter((s) => !set.has(s));
}
