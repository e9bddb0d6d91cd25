// What the process host needs from each bundled service. Keeping this narrow
// lets one process run any selection of services (RUNTIME_SERVICES).
import type { FastifyInstance } from 'fastify';

export interface RuntimeService {
  readonly name: string;
  /** Dependency name → probe; a probe throws (with context) when not ready. */
  readonly readiness: Record<string, () => Promise<void>>;
  /** Adds the service's routes; called before the server listens. */
  register(app: FastifyInstance): Promise<void>;
  /** Starts background work (consumers, heartbeats) once routes exist. */
  start(): Promise<void>;
  /** Stops taking new work and finishes what is in flight. */
  drain(): Promise<void>;
  /** Releases connections; called after the HTTP server has closed. */
  close(): Promise<void>;
}
