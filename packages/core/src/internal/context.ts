import type { Task } from './task.js';

/** Whether an execution context is a CPU or a device engine. */
export type ContextKind = 'cpu' | 'device';

/**
 * A place where tasks run: one of the simulation's CPUs (`cpu0` …) or a device engine (`nic0`,
 * `iommu0` …) (ARCHITECTURE §3.2).
 *
 * Between contexts the scheduler may switch at every scheduling point. Inside one context it
 * switches tasks only when the running task (the occupant) blocks, sleeps or exits, or at a
 * preemption point while the occupant has preemption enabled.
 */
export class ExecutionContext {
  /** The task currently owning this context, or null when it is idle. */
  occupant: Task | null = null;
  /** @internal Runnable tasks bound to this context, in the order they became runnable. */
  readonly runq: Task[] = [];
  /** @internal Runnable interrupt work of this context. */
  readonly irqq: Task[] = [];
  /** The task an interrupt handler interrupted (it resumes when the handler ends), or null. */
  interrupted: Task | null = null;

  /**
   * @param name unique name (`cpu0`, `nic0`).
   * @param kind CPU or device engine.
   * @param index position among contexts of the same kind.
   */
  constructor(
    readonly name: string,
    readonly kind: ContextKind,
    readonly index: number,
  ) {}
}
