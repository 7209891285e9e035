import type { EventBus } from '../bus.js';
import type { Scheduler } from '../scheduler.js';
import type { Task, TaskGen } from '../task.js';
import { WaitQueue } from '../waitqueue.js';

/**
 * A sleeping lock with an owner, like the kernel's `struct mutex`: contenders block (and may
 * be descheduled) until the owner unlocks; waiters are served in FIFO order.
 *
 * Context: `lock()` may sleep, so it must not be called in atomic context (that is reported as
 * `sleep-in-atomic`). Only the owner may unlock; unlocking a mutex the task does not hold is
 * reported as a `bad-unlock` violation.
 *
 * ## Example
 * ```ts
 * const m = new Mutex(sim.scheduler, sim.bus, 'demo.lock');
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

  /**
   * @param sched the scheduler.
   * @param bus the bus (`lock.*` events).
   * @param name lock name shown in events and reports.
   * @param onBadUnlock called when a task unlocks a mutex it does not hold.
   */
  constructor(
    private readonly sched: Scheduler,
    private readonly bus: EventBus,
    readonly name: string,
    private readonly onBadUnlock: (message: string) => void = (m) => {
      throw new Error(m);
    },
  ) {
    this.waiters = new WaitQueue(sched, `mutex ${name}`, () =>
      this.holder === null ? [] : [this.holder],
    );
  }

  /** The owning task, or null when unlocked. */
  get owner(): Task | null {
    return this.holder;
  }

  /** Acquires the mutex, sleeping while another task holds it. */
  *lock(): TaskGen<void> {
    const me = this.sched.current;
    if (this.holder !== null && this.bus.wants('lock.contended')) {
      this.bus.emit('lock.contended', { lock: this.name, owner: this.holder.id });
    }
    while (this.holder !== null) yield* this.waiters.wait({ exclusive: true });
    this.holder = me;
    if (this.bus.wants('lock.acquired')) this.bus.emit('lock.acquired', { lock: this.name });
  }

  /** Takes the mutex if it is free; never sleeps. */
  tryLock(): boolean {
    if (this.holder !== null) return false;
    this.holder = this.sched.current;
    if (this.bus.wants('lock.acquired')) this.bus.emit('lock.acquired', { lock: this.name });
    return true;
  }

  /** Releases the mutex and wakes the longest waiter. */
  unlock(): void {
    const me = this.sched.currentOrNull;
    if (this.holder === null || this.holder !== me) {
      this.onBadUnlock(
        `bad unlock: ${me?.toString() ?? 'no task'} unlocks mutex ${this.name} held by ${this.holder?.toString() ?? 'nobody'}`,
      );
      return;
    }
    this.holder = null;
    if (this.bus.wants('lock.released')) this.bus.emit('lock.released', { lock: this.name });
    this.waiters.wakeUp();
  }
}
