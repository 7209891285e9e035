import type { Kernel } from '../kernel.js';
import type { TaskGen } from '../task.js';
import { WaitQueue } from '../waitqueue.js';

/**
 * A sequence counter (`seqcount_t`): writers make the count odd while they update, readers
 * retry if the count changed or was odd. Readers never block writers.
 *
 * Writers must be serialised by the caller (a lock) and must not be preempted while the count
 * is odd, or readers would spin for a whole time slice: a write section entered with preemption
 * enabled is reported (`seqcount-preemptible-writer`), as `CONFIG_DEBUG_LOCK_ALLOC` does for a
 * plain `seqcount_t`.
 *
 * ## Example
 * ```ts
 * // reader
 * let seq, value;
 * do {
 *   seq = yield* sc.readBegin();
 *   value = shared;
 * } while (sc.readRetry(seq));
 * ```
 *
 * @see read_seqcount_begin
 * @see write_seqcount_begin
 */
export class SeqCount {
  private seq = 0;
  private readonly waiters: WaitQueue;

  /**
   * @param kernel the kernel services.
   * @param name the counter's name, for reports.
   */
  constructor(
    private readonly kernel: Kernel,
    readonly name: string,
  ) {
    this.waiters = new WaitQueue(kernel.scheduler, `seqcount ${name}`);
  }

  /** The raw count (odd while a write is in progress). */
  get sequence(): number {
    return this.seq;
  }

  /** Waits (spinning) until no write is in progress, then returns the count to pass to `readRetry`. */
  *readBegin(): TaskGen<number> {
    yield* this.waiters.waitEvent(() => (this.seq & 1) === 0, { spin: true });
    return this.seq;
  }

  /** The count without waiting (`raw_read_seqcount`); may be odd. */
  rawRead(): number {
    return this.seq;
  }

  /** True if a write happened since `start` was read: the reader must retry. */
  readRetry(start: number): boolean {
    return this.seq !== start;
  }

  /** Starts a write: the count becomes odd. */
  writeBegin(): void {
    const t = this.kernel.scheduler.current;
    if (t.preemptDepth === 0) {
      this.kernel.report(
        'seqcount-preemptible-writer',
        `write_seqcount_begin(${this.name}) by ${t.toString()} with preemption enabled: writers must hold a lock that disables preemption`,
      );
    }
    if ((this.seq & 1) !== 0) {
      this.kernel.report(
        'seqcount-nested-writer',
        `write_seqcount_begin(${this.name}) while a write is already in progress: writers are not serialised`,
      );
    }
    this.seq++;
  }

  /** Ends a write: the count becomes even again and waiting readers go on. */
  writeEnd(): void {
    if ((this.seq & 1) === 0) {
      this.kernel.report(
        'seqcount-unbalanced',
        `write_seqcount_end(${this.name}) without a matching write_seqcount_begin`,
      );
      return;
    }
    this.seq++;
    this.waiters.wakeAll();
  }
}
