// Kubernetes Events for what a human should notice (Created, Drifted,
// Rotated, failures). Repeats of the same event on the same object are
// counted in memory and written at most once per `dedupeWindowMs`, so an
// object stuck in a failure loop does not flood the apiserver.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { KubeClient } from './kube-client.js';
import type { KubeObject } from './reconciler.js';

export interface EventRecorder {
  normal(obj: KubeObject, reason: string, message: string): void;
  warning(obj: KubeObject, reason: string, message: string): void;
}

export class KubeEventRecorder implements EventRecorder {
  private readonly recent = new Map<string, { at: number; count: number; name: string; first: string }>();

  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
    private readonly component = 'familyhub-operator',
    private readonly dedupeWindowMs = 10 * 60_000,
  ) {}

  normal(obj: KubeObject, reason: string, message: string): void {
    void this.record(obj, 'Normal', reason, message);
  }

  warning(obj: KubeObject, reason: string, message: string): void {
    void this.record(obj, 'Warning', reason, message);
  }

  private async record(obj: KubeObject, type: string, reason: string, message: string): Promise<void> {
    const ns = obj.metadata.namespace ?? 'default';
    const sig = createHash('sha256').update([obj.metadata.uid, type, reason, message].join('\0')).digest('hex').slice(0, 10);
    const now = Date.now();
    const prev = this.recent.get(sig);
    const ts = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
    try {
      if (prev && now - prev.at < this.dedupeWindowMs) {
        prev.count++;
        return;
      }
      if (prev) {
        // Same event again after the window: bump the existing Event.
        prev.count++;
        prev.at = now;
        await this.kube.mergePatch('v1', 'Event', ns, prev.name, { count: prev.count, lastTimestamp: ts });
        return;
      }
      const name = `${obj.metadata.name}.${sig}`.slice(0, 253);
      this.recent.set(sig, { at: now, count: 1, name, first: ts });
      await this.kube.create({
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace: ns },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.metadata.name,
          namespace: obj.metadata.namespace,
          uid: obj.metadata.uid,
          resourceVersion: obj.metadata.resourceVersion,
        },
        reason,
        message: message.slice(0, 1024),
        type,
        count: 1,
        firstTimestamp: ts,
        lastTimestamp: ts,
        source: { component: this.component },
        reportingComponent: this.component,
        reportingInstance: process.env.HOSTNAME ?? 'local',
      });
    } catch (err) {
      this.log.warn({ err: String(err), reason }, 'could not record event');
    }
  }
}
