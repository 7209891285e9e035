import type { Kernel } from '../kernel.js';
import type { LockClass } from '../lockdep/lockdep.js';
import type { Task, TaskGen } from '../task.js';
import { WaitQueue } from '../waitqueue.js';
import { noteAcquired, noteContended, noteReleased } from './lock-events.js';

/**
 * A spinlock (`spinlock_t`): holding it is atomic context — preemption is off from `lock()` to
 * `unlock()`, and sleeping in between is reported as `sleep-in-atomic` naming this lock.
 *
 * A contender keeps its CPU while it waits (a spin-wait: no other task of that CPU runs), and
 * waiters are served roughly in arrival order, as with the kernel's queued spinlocks. Unlocking a
 * spinlock the task does not hold is reported (`spinlock-bad-unlock`).
 *
 * ## Example
 * ```ts
 * const ptl = new SpinLock(sim.kernel, 'ptl');
 * sim.spawn('t', 0, function* () {
 *   yield* ptl.lock();
 *   pte = 0;            // atomic: no other task interleaves a sleep here
 *   ptl.unlock();
 * });
 * ```
 *
 * @see spin_lock
 * @see spin_unlock
 */
export class SpinLock {
  private holder: Task | null = null;
  private readonly waiters: WaitQueue;
  private readonly cls: LockClass;
  private readonly reason: string;

  /**
   * @param kernel the kernel services.
   * @param name the lock's name; spinlocks with the same name share a lockdep class.
   */
  constructor(
    private readonly kernel: Kernel,
    readonly name: string,
  ) {
    this.cls = kernel.lockdep.classOf(name);
    this.reason = `spinlock ${name}`;
    this.waiters = new WaitQueue(kernel.scheduler, `spinlock ${name}`, () =>
      this.holder === null ? [] : [this.holder],
    );
  }

  /** The owning task, or null. */
  get owner(): Task | null {
    return this.holder;
  }

  /** True if the running task holds the lock (`lockdep_assert_held` without lockdep). */
  heldByCurrent(): boolean {
    return this.holder !== null && this.holder === this.kernel.scheduler.currentOrNull;
  }

  /** Acquires the lock, spinning (keeping the CPU) while it is held. Disables preemption. */
  *lock(): TaskGen<void> {
    const k = this.kernel;
    const sched = k.scheduler;
    sched.preemptDisable(this.reason);
    const held = k.lockdep.acquire(this, this.cls, 'write');
    if (this.holder !== null) {
      noteContended(k, this.name, this.holder.id);
      do yield* this.waiters.wait({ spin: true });
      while (this.holder !== null);
    }
    this.holder = sched.current;
    noteAcquired(k, this.name, held);
  }

  /** Takes the lock if it is free (and then disables preemption); never spins. @see spin_trylock */
  tryLock(): boolean {
    if (this.holder !== null) return false;
    const k = this.kernel;
    k.scheduler.preemptDisable(this.reason);
    this.holder = k.scheduler.current;
    noteAcquired(k, this.name, k.lockdep.acquire(this, this.cls, 'write', { trylock: true }));
    return true;
  }

  /** Releases the lock, wakes the next spinner and re-enables preemption. */
  unlock(): void {
    const k = this.kernel;
    const me = k.scheduler.currentOrNull;
    if (this.holder === null || this.holder !== me) {
      k.report(
        'spinlock-bad-unlock',
        `BUG: spinlock wrong owner: ${me?.toString() ?? 'no task'} unlocks ${this.name} held by ${this.holder?.toString() ?? 'nobody'}`,
      );
      return;
    }
    this.holder = null;
    k.lockdep.release(this);
    noteReleased(k, this.name);
    this.waiters.wakeOne();
    k.scheduler.preemptEnable();
  }
}
