import type { Scheduler } from './scheduler.js';
import type { SchedOp, Task, TaskGen } from './task.js';

/**
 * Anything a task can block on. The deadlock detector asks each blocked task's waitable who
 * holds it, to draw the wait-for graph.
 */
export interface Waitable {
  /** Name shown in events and deadlock reports (`'mutex demo.lock'`). */
  readonly name: string;
  /** Tasks that must act before a waiter can go on (a lock's owner); empty if unknown. */
  holders(): readonly Task[];
}

/** Options of {@link WaitQueue.wait}. */
export interface WaitOptions {
  /** An exclusive waiter is woken one at a time by `wakeUp` (the kernel's `WQ_FLAG_EXCLUSIVE`). */
  readonly exclusive?: boolean;
  /** Keep the CPU while waiting (a spin-wait): other tasks of this context cannot run meanwhile. */
  readonly spin?: boolean;
}

interface Waiter {
  readonly task: Task;
  readonly exclusive: boolean;
}

/**
 * A wait queue: tasks block on it until another task (or a timer) wakes them, as with the
 * kernel's `wait_queue_head_t`.
 *
 * `wakeUp()` wakes every non-exclusive waiter and the first exclusive one; `wakeAll()` wakes
 * everyone; `wakeOne()` wakes the longest-waiting task. Waking does not run the woken task: it
 * becomes runnable and the strategy decides when it runs. A woken task must re-check its
 * condition — use {@link WaitQueue.waitEvent}, which loops like `wait_event()`.
 *
 * ## Example
 * ```ts
 * const done = new WaitQueue(sim.scheduler, 'work.done');
 * sim.spawn('waiter', 'cpu0', function* () {
 *   yield* done.waitEvent(() => finished);
 * });
 * sim.spawn('worker', 'cpu1', function* () {
 *   finished = true;
 *   done.wakeAll();
 * });
 * ```
 *
 * @see wait_queue_head_t
 * @see wait_event
 */
export class WaitQueue implements Waitable {
  private waiters: Waiter[] = [];
  /** The block ops this queue yields (sleeping, spinning), made once: the scheduler only reads them. */
  private sleepOp: SchedOp | null = null;
  private spinOp: SchedOp | null = null;

  /**
   * @param sched the scheduler whose tasks wait here.
   * @param name name shown in events and deadlock reports.
   * @param holdersOf who holds the resource waited for (for the wait-for graph).
   */
  constructor(
    private readonly sched: Scheduler,
    readonly name: string,
    private readonly holdersOf: () => readonly Task[] = () => [],
  ) {}

  /** Number of tasks waiting. */
  get length(): number {
    return this.waiters.length;
  }

  /** The waiting tasks, longest-waiting first. */
  tasks(): Task[] {
    return this.waiters.map((w) => w.task);
  }

  /** See {@link Waitable.holders}. */
  holders(): readonly Task[] {
    return this.holdersOf();
  }

  /**
   * Blocks the current task until it is woken. Sleeping: calling this in atomic context (other
   * than as a spin-wait) is reported as a `sleep-in-atomic` violation.
   */
  *wait(options?: WaitOptions): TaskGen<void> {
    const task = this.sched.current;
    this.waiters.push({ task, exclusive: options?.exclusive === true });
    if (options?.spin === true) yield (this.spinOp ??= this.sched.blockOp(this, true));
    else yield (this.sleepOp ??= this.sched.blockOp(this, false));
  }

  /**
   * Waits until `condition()` is true, re-checking after every wake-up, like `wait_event()`.
   * Returns at once when it is already true.
   */
  *waitEvent(condition: () => boolean, options?: WaitOptions): TaskGen<void> {
    while (!condition()) yield* this.wait(options);
  }

  /** Wakes the longest-waiting task; returns false if nobody waited. */
  wakeOne(): boolean {
    const w = this.waiters.shift();
    if (w === undefined) return false;
    this.sched.wake(w.task, this);
    return true;
  }

  /** Wakes every non-exclusive waiter and the first exclusive one; returns how many woke. */
  wakeUp(): number {
    let woken = 0;
    let exclusiveWoken = false;
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.exclusive) {
        if (exclusiveWoken) {
          keep.push(w);
          continue;
        }
        exclusiveWoken = true;
      }
      this.sched.wake(w.task, this);
      woken++;
    }
    this.waiters = keep;
    return woken;
  }

  /** Wakes every waiter; returns how many woke. */
  wakeAll(): number {
    const all = this.waiters;
    this.waiters = [];
    for (const w of all) this.sched.wake(w.task, this);
    return all.length;
  }

  /** @internal Forgets a waiter (used when a task is torn down while waiting). */
  remove(task: Task): void {
    const i = this.waiters.findIndex((w) => w.task === task);
    if (i >= 0) this.waiters.splice(i, 1);
  }
}
