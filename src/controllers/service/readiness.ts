// Rolled-up readiness: each child's own word, turned into one condition of
// the Service that carries the child's reason. Availability comes only from
// what kube-controller-manager and the kubelet wrote (Deployment status,
// pod container states), never from our own writes.
import type { Condition, ConditionInput, KubeObject } from '../../core/reconciler.js';

/** A FamilyHub child CR (DatabaseClaim, OIDCClient, Route) as one of our conditions. */
export function childCondition(type: string, kind: string, child: KubeObject | undefined): ConditionInput {
  if (!child) return { type, status: 'False', reason: 'Pending', message: `${kind} not created yet` };
  const ready = (child.status?.conditions as Condition[] | undefined)?.find((c) => c.type === 'Ready');
  const name = `${kind} ${child.metadata.name}`;
  if (!ready || child.status?.observedGeneration !== child.metadata.generation) {
    return { type, status: 'False', reason: 'Pending', message: `${name} not reconciled yet` };
  }
  if (ready.status === 'True') return { type, status: 'True', reason: ready.reason || 'Ready', message: `${name}: ${ready.message}` };
  // A child stalled on its configuration (an extension the hub refuses, a
  // scope the IdP lacks, a host outside the domain) waits for a change of
  // this Service's spec or of the hub: the Service is stalled with it.
  const stalled = (child.status?.conditions as Condition[] | undefined)?.find((c) => c.type === 'Stalled');
  const terminal = stalled?.status === 'True' && (stalled.observedGeneration === undefined || stalled.observedGeneration === child.metadata.generation);
  return { type, status: 'False', reason: ready.reason || 'NotReady', message: `${name}: ${ready.message}`, ...(terminal ? { terminal: true } : {}) };
}

/** Container states only a new image reference (the spec) can cure. */
const TERMINAL_WAITING = new Set(['InvalidImageName']);

/** Container states that mean "this will not get better by waiting a little". */
const BAD_WAITING = new Set([
  'ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'CrashLoopBackOff',
  'CreateContainerConfigError', 'CreateContainerError', 'RunContainerError', 'PreCreateHookError', 'PostStartHookError',
]);

interface PodProblem {
  reason: string;
  message: string;
  terminal?: boolean;
}

/**
 * The reason the pods give for not becoming ready, when it is one that
 * waiting will not cure. Normal progress (ContainerCreating, a readiness
 * probe not yet passed) is left out: it is already "Progressing", and
 * reporting each step would cost a status write per step and per Service.
 */
export function podProblem(pods: KubeObject[]): PodProblem | undefined {
  for (const p of pods) {
    if (p.metadata.deletionTimestamp) continue;
    const name = `pod ${p.metadata.name}`;
    const unscheduled = (p.status?.conditions as Condition[] | undefined)?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
    if (unscheduled) return { reason: unscheduled.reason || 'Unschedulable', message: `${name}: ${unscheduled.message || 'not scheduled'}` };
    for (const cs of (p.status?.containerStatuses ?? []) as Array<Record<string, any>>) {
      const waiting = cs.state?.waiting;
      if (waiting?.reason && BAD_WAITING.has(waiting.reason)) {
        const last = cs.lastState?.terminated;
        const why = waiting.message || (last ? `last exit code ${last.exitCode}${last.reason ? ` (${last.reason})` : ''}` : '');
        return { reason: waiting.reason, message: `${name}: container ${cs.name} ${waiting.reason}${why ? `: ${why}` : ''}`, ...(TERMINAL_WAITING.has(waiting.reason) ? { terminal: true } : {}) };
      }
    }
  }
  return undefined;
}

export interface Availability {
  condition: ConditionInput;
  /** Pods ready to serve right now (the Route may be published once this is ≥ 1). */
  available: number;
  readyReplicas: number;
  /** True while more news is expected that no watch delivers (pod states). */
  progressing: boolean;
}

/** The Deployment's rollout as kube-controller-manager reports it. */
export function availabilityOf(d: KubeObject | undefined, pods: KubeObject[] | undefined): Availability {
  if (!d) return { condition: { type: 'Available', status: 'False', reason: 'Pending', message: 'Deployment not created yet' }, available: 0, readyReplicas: 0, progressing: false };
  const st = d.status ?? {};
  const want: number = d.spec?.replicas ?? 1;
  const available: number = st.availableReplicas ?? 0;
  const readyReplicas: number = st.readyReplicas ?? 0;
  const updated: number = st.updatedReplicas ?? 0;
  const total: number = st.replicas ?? 0;
  const name = `Deployment ${d.metadata.name}`;
  const base = { available, readyReplicas };
  if ((st.observedGeneration ?? 0) < (d.metadata.generation ?? 0)) {
    return { ...base, progressing: true, condition: { type: 'Available', status: 'False', reason: 'Progressing', message: `${name}: generation ${d.metadata.generation} not yet observed by the deployment controller` } };
  }
  if (want === 0) return { ...base, progressing: false, condition: { type: 'Available', status: 'True', reason: 'ScaledToZero', message: `${name} has 0 replicas` } };
  if (updated >= want && available >= want && total <= want) {
    return { ...base, progressing: false, condition: { type: 'Available', status: 'True', reason: 'Available', message: `${name}: ${available}/${want} replicas available` } };
  }
  const problem = pods ? podProblem(pods) : undefined;
  const progress = (st.conditions as Condition[] | undefined)?.find((c) => c.type === 'Progressing');
  const counts = `${available}/${want} available, ${updated}/${want} updated`;
  if (problem) return { ...base, progressing: true, condition: { type: 'Available', status: 'False', reason: problem.reason, message: `${name}: ${counts}; ${problem.message}`, ...(problem.terminal ? { terminal: true } : {}) } };
  if (progress?.status === 'False') return { ...base, progressing: true, condition: { type: 'Available', status: 'False', reason: progress.reason || 'ProgressDeadlineExceeded', message: `${name}: ${counts}; ${progress.message}` } };
  return { ...base, progressing: true, condition: { type: 'Available', status: 'False', reason: 'Progressing', message: `${name}: ${counts}` } };
}
