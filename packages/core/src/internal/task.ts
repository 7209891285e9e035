import type { ExecutionContext } from './context.js';
import type { Waitable } from './waitqueue.js';

/**
 * What a task hands the scheduler at a scheduling point (ARCHITECTURE §3.3).
 *
 * Model code rarely builds these by hand: it calls `yield* sched.preempt()`,
 * `yield* waitQueue.wait()` or `yield* sched.sleepFor(ns)`.
 */
export type SchedOp =
  | {
      /** A plain preemption point. */
      readonly kind: 'preempt';
    }
  | {
      /** Block until woken. */
      readonly kind: 'block';
      /** What the task waits for. */
      readonly on: Waitable;
      /** Keep the CPU busy while waiting (a spin-wait). */
      readonly spin: boolean;
    }
  | {
      /** Sleep until a virtual time. */
      readonly kind: 'sleep';
      /** Wake-up time (ns). */
      readonly until: number;
    };

/**
 * The generator a task body returns. Every operation that may block, sleep or be interleaved
 * is itself such a generator and is called with `yield*`. Code between two yields runs
 * atomically with respect to every other task.
 */
export type TaskGen<R = unknown> = Generator<SchedOp, R, unknown>;

/** A task body: a generator function, given its own task handle. */
export type TaskBody<R = unknown> = (self: Task) => TaskGen<R>;

/**
 * Where a task is in its life. `runnable` tasks may be chosen at the next scheduling point;
 * `blocked` ones wait on a waitable; `sleeping` ones wait for a virtual time; `exited` ones are
 * done.
 */
export type TaskState = 'runnable' | 'blocked' | 'sleeping' | 'exited';

/** Options of {@link Scheduler.spawn}. */
export interface SpawnOptions {
  /**
   * A daemon (a kworker waiting for work, an idle device engine) may stay blocked at the end of
   * a run without that being a deadlock.
   */
  readonly daemon?: boolean;
  /**
   * Interrupt work (a hardirq handler, an IPI): it can run on its CPU whenever the task there
   * has interrupts enabled — even with preemption disabled or while it spin-waits — and runs to
   * completion in atomic context before that task resumes. Handlers must not sleep.
   */
  readonly interrupt?: boolean;
}

/**
 * A simulated thread of execution: a CPU thread running `munmap`, a vCPU, a NIC's DMA engine,
 * a kworker (ARCHITECTURE §3.1). Created by {@link Scheduler.spawn}; bound to one execution
 * context for life.
 *
 * The fields describing atomic context mirror the kernel's `preempt_count`: while
 * {@link Task.atomicDepth} is non-zero the task may not sleep, and the scheduler reports a
 * `sleep-in-atomic` violation naming the innermost reason if it tries.
 *
 * @see task_struct
 */
export class Task {
  /** Lifecycle state; only the scheduler changes it. */
  state: TaskState = 'runnable';
  /** The waitable this task is blocked on, when blocked. */
  blockedOn: Waitable | null = null;
  /** True while blocked in a spin-wait that keeps its CPU busy (waiting for a spinlock). */
  spinning = false;
  /** `seq` of the event that recorded the latest block, for deadlock evidence (-1 if none). */
  blockSeq = -1;
  /** Return value of the body once exited. */
  result: unknown = undefined;
  /** Depth of preempt-disable sections (spinlocks, `preempt_disable`). Preemption is off when > 0. */
  preemptDepth = 0;
  /** Depth of interrupts-disabled sections (`local_irq_save`): no interrupt work runs on this CPU while > 0. */
  irqsOff = 0;
  /** Why the task is in atomic context, innermost last (`'spinlock mm->page_table_lock'` …). */
  readonly atomicReasons: string[] = [];
  /** @internal The running generator. */
  gen: TaskGen | null = null;

  /**
   * @param id dense id, unique in the simulation, in spawn order from 0.
   * @param name readable name used in events and reports.
   * @param context the CPU or device engine the task runs on.
   * @param daemon see {@link SpawnOptions.daemon}.
   * @param interrupt see {@link SpawnOptions.interrupt}.
   */
  constructor(
    readonly id: number,
    readonly name: string,
    readonly context: ExecutionContext,
    readonly daemon: boolean,
    readonly interrupt = false,
  ) {
    if (interrupt) {
      this.preemptDepth = 1;
      this.atomicReasons.push('hardirq');
    }
  }

  /** True while the task may not sleep (any atomic reason is active). */
  get atomicDepth(): number {
    return this.atomicReasons.length;
  }

  /** `name#id`, as reports show a task. */
  toString(): string {
    return `${this.name}#${this.id}`;
  }
}
