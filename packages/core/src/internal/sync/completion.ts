import type { Kernel } from '../kernel.js';
import type { TaskGen } from '../task.js';
import { WaitQueue } from '../waitqueue.js';

/**
 * A completion (`struct completion`): one side waits until another signals that something is
 * done. `complete()` lets one waiter through (or the next one to wait), `completeAll()` every
 * present and future waiter until `reinit()`.
 *
 * Context: waiting sleeps (checked with `might_sleep()`); completing never sleeps and may be done
 * from any context.
 *
 * ## Example
 * ```ts
 * const done = new Completion(sim.kernel, 'flush.done');
 * sim.spawn('waiter', 0, function* () { yield* done.wait(); });
 * sim.spawn('worker', 1, function* () { done.complete(); });
 * ```
 *
 * @see wait_for_completion
 * @see complete
 */
export class Completion {
  private count = 0;
  private all = false;
  private readonly waiters: WaitQueue;

  /**
   * @param kernel the kernel services.
   * @param name the completion's name, for events and deadlock reports.
   */
  constructor(
    private readonly kernel: Kernel,
    readonly name: string,
  ) {
    this.waiters = new WaitQueue(kernel.scheduler, `completion ${name}`);
  }

  /** True if a `wait()` would return at once (`completion_done`). */
  get done(): boolean {
    return this.all || this.count > 0;
  }

  /** Sleeps until completed; consumes one `complete()`. */
  *wait(): TaskGen<void> {
    this.kernel.mightSleep(`wait_for_completion(${this.name})`);
    yield* this.waiters.waitEvent(() => this.all || this.count > 0, { exclusive: true });
    if (!this.all) this.count--;
  }

  /** Signals one waiter (`complete`). */
  complete(): void {
    this.count++;
    this.waiters.wakeUp();
  }

  /** Signals every waiter, now and until `reinit()` (`complete_all`). */
  completeAll(): void {
    this.all = true;
    this.waiters.wakeAll();
  }

  /** Makes the completion not-done again (`reinit_completion`). */
  reinit(): void {
    this.all = false;
    this.count = 0;
  }
}
