// The contract between the process host (runtime.ts) and a bundled service.
// See README.md "Writing a service" for the rules that go with it.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import type { BaseConfig } from '../config.js';
import type { TokenVerifier } from './jwt/verifier.js';

/** What the host hands a service when it creates it. */
export interface ServiceContext<Settings> {
  /** The service's own settings, parsed from the environment with its schema. */
  settings: Settings;
  /** Settings every service shares (issuer, allowed domains, admin role, …). */
  base: BaseConfig;
  /** Child logger with `service: <name>`. */
  logger: Logger;
  /** The process-wide registry; metric names must start with the service name. */
  registry: Registry;
  verifier: TokenVerifier;
  /** Stable per process: consumer names, presence owners. */
  replicaId: string;
}

export interface ServiceInstance {
  /** Dependency name → probe; a probe throws (with context) when not ready. Shown as `<service>.<dep>` on /ready. */
  readonly readiness: Record<string, () => Promise<void>>;
  /**
   * Adds the service's routes, hooks and decorators. Registered with
   * `app.register(plugin, { prefix })`, so everything it adds stays inside
   * its own encapsulated context; routes are written relative to the prefix.
   */
  plugin(app: FastifyInstance): Promise<void>;
  /** Starts background work (migrations, consumers, heartbeats) before the server listens. */
  start(): Promise<void>;
  /** Stops taking new work and finishes what is in flight (SIGTERM). */
  drain(): Promise<void>;
  /** Releases connections; called after the HTTP server has closed. */
  close(): Promise<void>;
}

export interface ServiceDefinition<Schema extends z.AnyZodObject = z.AnyZodObject> {
  /** The name used in RUNTIME_SERVICES. */
  readonly name: string;
  /** URL prefix of every route the service registers, e.g. `/api/chat`. */
  readonly prefix: string;
  /** Its environment settings; required ones are required only when the service is selected. */
  readonly settings: Schema;
  /** Needs WebSocket routes: the host then registers @fastify/websocket once, on the root. */
  readonly websocket?: boolean;
  create(ctx: ServiceContext<z.infer<Schema>>): ServiceInstance;
}

/** Identity function that keeps the settings type flowing into create(). */
export function defineService<Schema extends z.AnyZodObject>(d: ServiceDefinition<Schema>): ServiceDefinition<Schema> {
  return d;
}
