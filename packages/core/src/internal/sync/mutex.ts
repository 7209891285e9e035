import type { Kernel } from '../kernel.js';
import type { LockClass } from '../lockdep/lockdep.js';
import type { Task, TaskGen } from '../task.js';
import { WaitQueue } from '../waitqueue.js';
import { noteAcquired, noteContended, noteReleased } from './lock-events.js';

/**
 * A sleeping lock with an owner, like the kernel's `struct mutex`.
 *
 * Context: `lock()` may sleep — it checks `might_sleep()` on entry, so calling it in atomic
 * context is reported even when the mutex is free. Contenders block until the owner unlocks;
 * a woken waiter competes again with newcomers (no hand-off), as the kernel's optimistic path
 * allows. Only the owner may unlock: anything else is reported (`mutex-bad-unlock`), as
 * `CONFIG_DEBUG_MUTEXES` does. Lockdep sees every acquisition (exclusive) before the task waits,
 * so an AB-BA order is reported even in runs that do not deadlock.
 *
 * ## Example
 * ```ts
 * const m = new Mutex(sim.kernel, 'demo.lock');
 * sim.spawn('a', 'cpu0', function* () {
 *   yield* m.lock();
 *   counter++;
 *   m.unlock();
 * });
 * ```
 *
 * @see mutex_lock
 * @see mutex_unlock
 */
export class Mutex {
  private holder: Task | null = null;
  private readonly waiters: WaitQueue;
  private readonly cls: LockClass;

  /**
   * @param kernel the kernel services.
   * @param name the lock's name; mutexes with the same name share a lockdep class.
   */
  constructor(
    private readonly kernel: Kernel,
    readonly name: string,
  ) {
    this.cls = kernel.lockdep.classOf(name);
    this.waiters = new WaitQueue(kernel.scheduler, `mutex ${name}`, () =>
      this.holder === null ? [] : [this.holder],
    );
  }

  /** The owning task, or null when unlocked. */
  get owner(): Task | null {
    return this.holder;
  }

  /** True if the running task owns the mutex. */
  heldByCurrent(): boolean {
    return this.holder !== null && this.holder === this.kernel.scheduler.currentOrNull;
  }

  /**
   * Acquires the mutex, sleeping while another task holds it.
   * @param subclass lockdep nesting subclass (`mutex_lock_nested`), for taking two mutexes of
   * one class in a fixed order.
   */
  *lock(subclass = 0): TaskGen<void> {
    const k = this.kernel;
    k.mightSleep(`mutex_lock(${this.name})`);
    const me = k.scheduler.current;
    const cls = subclass === 0 ? this.cls : k.lockdep.classOf(this.name, subclass);
    const held = k.lockdep.acquire(this, cls, 'write');
    if (this.holder !== null) noteContended(k, this.name, this.holder.id);
    while (this.holder !== null) yield* this.waiters.wait({ exclusive: true });
    this.holder = me;
    noteAcquired(k, this.name, held);
  }

  /** Takes the mutex if it is free; never sleeps. @see mutex_trylock */
  tryLock(): boolean {
    if (this.holder !== null) return false;
    const k = this.kernel;
    this.holder = k.scheduler.current;
    noteAcquired(k, this.name, k.lockdep.acquire(this, this.cls, 'write', { trylock: true }));
    return true;
  }

  /** Releases the mutex and wakes one waiter. Only the owner may unlock. */
  unlock(): void {
    const k = this.kernel;
    const me = k.scheduler.currentOrNull;
    if (this.holder === null || this.holder !== me) {
      k.report(
        'mutex-bad-unlock',
        `DEBUG_LOCKS_WARN_ON(owner != current): ${me?.toString() ?? 'no task'} unlocks mutex ${this.name} held by ${this.holder?.toString() ?? 'nobody'}`,
      );
      return;
    }
    this.holder = null;
    k.lockdep.release(this);
    noteReleased(k, this.name);
    this.waiters.wakeUp();
  }
}
