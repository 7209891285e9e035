import type { Kernel } from '../kernel.js';
import type { LockClass } from '../lockdep/lockdep.js';
import type { Task, TaskGen } from '../task.js';
import { WaitQueue } from '../waitqueue.js';
import { noteAcquired, noteContended, noteReleased } from './lock-events.js';
import { RwCore } from './rw-core.js';

/**
 * A reader/writer semaphore (`struct rw_semaphore`), the lock behind `mmap_lock`, `i_mmap_rwsem`
 * and the anon_vma lock. Sleeping: every acquisition checks `might_sleep()`.
 *
 * Many readers or one writer. Fair: a reader arriving while a writer waits queues behind it,
 * and a release hands the lock to the first waiter (a writer) or to the leading run of readers.
 * `downgradeWrite()` turns the write hold into a read hold and lets queued readers in. Lockdep
 * sees readers as non-recursive shared acquisitions — a reader can be blocked by a waiting
 * writer, so `down_read(A); down_read(A)` in one task can deadlock and is reported.
 *
 * ## Example
 * ```ts
 * const mmapLock = new RwSemaphore(sim.kernel, 'mm->mmap_lock');
 * sim.spawn('fault', 0, function* () {
 *   yield* mmapLock.downRead();
 *   // … walk the VMAs …
 *   mmapLock.upRead();
 * });
 * ```
 *
 * @see down_read
 * @see down_write
 * @see downgrade_write
 */
export class RwSemaphore {
  private readonly core = new RwCore();
  private readonly waiters: WaitQueue;
  private readonly cls: LockClass;

  /**
   * @param kernel the kernel services.
   * @param name the lock's name; semaphores with the same name share a lockdep class.
   */
  constructor(
    private readonly kernel: Kernel,
    readonly name: string,
  ) {
    this.cls = kernel.lockdep.classOf(name);
    this.waiters = new WaitQueue(kernel.scheduler, `rwsem ${name}`, () => this.core.holders());
  }

  /** The writer holding the semaphore, or null. */
  get writer(): Task | null {
    return this.core.writer;
  }

  /** Number of read holds. */
  get readers(): number {
    return this.core.readers.length;
  }

  /** True if the running task holds it for write (or, with `'read'`, for read; `'any'`: either). */
  heldByCurrent(mode: 'write' | 'read' | 'any' = 'any'): boolean {
    const me = this.kernel.scheduler.currentOrNull;
    if (me === null) return false;
    const w = this.core.writer === me;
    const r = this.core.readers.includes(me);
    return mode === 'write' ? w : mode === 'read' ? r : w || r;
  }

  /** Acquires for read, sleeping while a writer holds or waits. */
  *downRead(): TaskGen<void> {
    const k = this.kernel;
    k.mightSleep(`down_read(${this.name})`);
    const me = k.scheduler.current;
    const held = k.lockdep.acquire(this, this.cls, 'read');
    if (this.core.readFree()) this.core.readers.push(me);
    else yield* this.waitGrant(me, false);
    noteAcquired(k, this.name, held);
  }

  /** Acquires for write, sleeping while anyone holds it. */
  *downWrite(): TaskGen<void> {
    const k = this.kernel;
    k.mightSleep(`down_write(${this.name})`);
    const me = k.scheduler.current;
    const held = k.lockdep.acquire(this, this.cls, 'write');
    if (this.core.writeFree()) this.core.writer = me;
    else yield* this.waitGrant(me, true);
    noteAcquired(k, this.name, held);
  }

  /**
   * Acquires for write under a held `nest` lock (`down_write_nest_lock`): lockdep accepts
   * several locks of this class while `nest` is held (as `mm_take_all_locks` does under
   * `mmap_lock`).
   */
  *downWriteNestLock(nest: object): TaskGen<void> {
    const k = this.kernel;
    k.mightSleep(`down_write_nest_lock(${this.name})`);
    const me = k.scheduler.current;
    const held = k.lockdep.acquire(this, this.cls, 'write', { nestLock: nest });
    if (this.core.writeFree()) this.core.writer = me;
    else yield* this.waitGrant(me, true);
    noteAcquired(k, this.name, held);
  }

  private *waitGrant(me: Task, write: boolean): TaskGen<void> {
    const owner = this.core.holders()[0];
    noteContended(this.kernel, this.name, owner?.id ?? -1);
    const entry = this.core.enqueue(me, write);
    yield* this.waiters.waitEvent(() => entry.granted);
  }

  /** Takes a read hold if that is possible at once. @see down_read_trylock */
  tryDownRead(): boolean {
    if (!this.core.readFree()) return false;
    const k = this.kernel;
    this.core.readers.push(k.scheduler.current);
    noteAcquired(k, this.name, k.lockdep.acquire(this, this.cls, 'read', { trylock: true }));
    return true;
  }

  /** Takes the write hold if the semaphore is free. @see down_write_trylock */
  tryDownWrite(): boolean {
    if (!this.core.writeFree()) return false;
    const k = this.kernel;
    this.core.writer = k.scheduler.current;
    noteAcquired(k, this.name, k.lockdep.acquire(this, this.cls, 'write', { trylock: true }));
    return true;
  }

  /** Releases a read hold. @see up_read */
  upRead(): void {
    if (this.core.releaseRead(this.kernel, 'rwsem-bad-unlock', 'up_read', this.name))
      this.released();
  }

  /** Releases the write hold. @see up_write */
  upWrite(): void {
    if (this.core.releaseWrite(this.kernel, 'rwsem-bad-unlock', 'up_write', this.name))
      this.released();
  }

  /** Turns the current task's write hold into a read hold, letting queued readers in. @see downgrade_write */
  downgradeWrite(): void {
    const k = this.kernel;
    const me = k.scheduler.currentOrNull;
    if (me === null || this.core.writer !== me) {
      k.report(
        'rwsem-bad-unlock',
        `downgrade_write(${this.name}) by ${me?.toString() ?? 'no task'}, which is not the writer`,
      );
      return;
    }
    this.core.writer = null;
    this.core.readers.push(me);
    k.lockdep.downgrade(this);
    if (this.core.grant()) this.waiters.wakeAll();
  }

  private released(): void {
    const k = this.kernel;
    k.lockdep.release(this);
    noteReleased(k, this.name);
    if (this.core.grant()) this.waiters.wakeAll();
  }
}
