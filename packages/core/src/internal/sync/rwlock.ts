import type { Kernel } from '../kernel.js';
import type { LockClass } from '../lockdep/lockdep.js';
import type { Task, TaskGen } from '../task.js';
import { WaitQueue } from '../waitqueue.js';
import { noteAcquired, noteContended, noteReleased } from './lock-events.js';
import { RwCore } from './rw-core.js';

/**
 * A reader/writer spinlock (`rwlock_t`, the kernel's queued rwlock): many readers or one writer,
 * atomic context while held or while spinning for it. KVM's `mmu_lock` is one on x86.
 *
 * Fair as qrwlock is in process context: a new reader waits behind a waiting writer. For lockdep
 * a reader is therefore a non-recursive shared acquisition (the kernel treats `read_lock` as
 * recursive only in interrupt context, which mmnsim does not model).
 *
 * ## Example
 * ```ts
 * const mmuLock = new RwLock(sim.kernel, 'kvm->mmu_lock');
 * yield* mmuLock.writeLock();
 * zapSptes();
 * mmuLock.writeUnlock();
 * ```
 *
 * @see read_lock
 * @see write_lock
 */
export class RwLock {
  private readonly core = new RwCore();
  private readonly waiters: WaitQueue;
  private readonly cls: LockClass;
  private readonly readReason: string;
  private readonly writeReason: string;

  /**
   * @param kernel the kernel services.
   * @param name the lock's name; rwlocks with the same name share a lockdep class.
   */
  constructor(
    private readonly kernel: Kernel,
    readonly name: string,
  ) {
    this.cls = kernel.lockdep.classOf(name);
    this.readReason = `read_lock ${name}`;
    this.writeReason = `write_lock ${name}`;
    this.waiters = new WaitQueue(kernel.scheduler, `rwlock ${name}`, () => this.core.holders());
  }

  /** The writer, or null. */
  get writer(): Task | null {
    return this.core.writer;
  }

  /** Number of read holds. */
  get readers(): number {
    return this.core.readers.length;
  }

  /** True if the running task holds it (for write, for read, or either). */
  heldByCurrent(mode: 'write' | 'read' | 'any' = 'any'): boolean {
    const me = this.kernel.scheduler.currentOrNull;
    if (me === null) return false;
    const w = this.core.writer === me;
    const r = this.core.readers.includes(me);
    return mode === 'write' ? w : mode === 'read' ? r : w || r;
  }

  /** Acquires for read, spinning while a writer holds or waits. */
  *readLock(): TaskGen<void> {
    const k = this.kernel;
    k.scheduler.preemptDisable(this.readReason);
    const me = k.scheduler.current;
    const held = k.lockdep.acquire(this, this.cls, 'read');
    if (this.core.readFree()) this.core.readers.push(me);
    else yield* this.spinGrant(me, false);
    noteAcquired(k, this.name, held);
  }

  /** Acquires for write, spinning while anyone holds it. */
  *writeLock(): TaskGen<void> {
    const k = this.kernel;
    k.scheduler.preemptDisable(this.writeReason);
    const me = k.scheduler.current;
    const held = k.lockdep.acquire(this, this.cls, 'write');
    if (this.core.writeFree()) this.core.writer = me;
    else yield* this.spinGrant(me, true);
    noteAcquired(k, this.name, held);
  }

  private *spinGrant(me: Task, write: boolean): TaskGen<void> {
    noteContended(this.kernel, this.name, this.core.holders()[0]?.id ?? -1);
    const entry = this.core.enqueue(me, write);
    yield* this.waiters.waitEvent(() => entry.granted, { spin: true });
  }

  /** Takes a read hold if possible at once. @see read_trylock */
  tryReadLock(): boolean {
    if (!this.core.readFree()) return false;
    const k = this.kernel;
    k.scheduler.preemptDisable(this.readReason);
    this.core.readers.push(k.scheduler.current);
    noteAcquired(k, this.name, k.lockdep.acquire(this, this.cls, 'read', { trylock: true }));
    return true;
  }

  /** Takes the write hold if the lock is free. @see write_trylock */
  tryWriteLock(): boolean {
    if (!this.core.writeFree()) return false;
    const k = this.kernel;
    k.scheduler.preemptDisable(this.writeReason);
    this.core.writer = k.scheduler.current;
    noteAcquired(k, this.name, k.lockdep.acquire(this, this.cls, 'write', { trylock: true }));
    return true;
  }

  /** Releases a read hold. @see read_unlock */
  readUnlock(): void {
    if (this.core.releaseRead(this.kernel, 'rwlock-bad-unlock', 'read_unlock', this.name))
      this.released();
  }

  /** Releases the write hold. @see write_unlock */
  writeUnlock(): void {
    if (this.core.releaseWrite(this.kernel, 'rwlock-bad-unlock', 'write_unlock', this.name))
      this.released();
  }

  private released(): void {
    const k = this.kernel;
    k.lockdep.release(this);
    noteReleased(k, this.name);
    if (this.core.grant()) this.waiters.wakeAll();
    k.scheduler.preemptEnable();
  }
}
