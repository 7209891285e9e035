import type { Kernel } from '../kernel.js';
import type { Task } from '../task.js';

interface RwWaiter {
  readonly task: Task;
  readonly write: boolean;
  granted: boolean;
}

/**
 * The shared state machine of the reader/writer locks (rw_semaphore and rwlock): who holds it,
 * and a FIFO of waiters that releases hand the lock to. Fair like both kernel locks in process
 * context: a new reader queues behind a waiting writer, so readers cannot starve writers. A
 * release grants the lock to the first waiter if it is a writer and the lock is free, or to the
 * leading run of readers. Internal to `RwSemaphore` and `RwLock`.
 */
export class RwCore {
  /** The writer holding the lock, or null. */
  writer: Task | null = null;
  /** Reader holders (a task appears once per read acquisition). */
  readonly readers: Task[] = [];
  private readonly queue: RwWaiter[] = [];

  /** Who a waiter waits for, for the deadlock wait-for graph. */
  holders(): Task[] {
    return this.writer !== null ? [this.writer] : [...this.readers];
  }

  /** True if a reader may take the lock at once. */
  readFree(): boolean {
    return this.writer === null && this.queue.length === 0;
  }

  /** True if a writer may take the lock at once. */
  writeFree(): boolean {
    return this.writer === null && this.readers.length === 0 && this.queue.length === 0;
  }

  /** Queues `task`; the returned entry's `granted` turns true when a release hands it the lock. */
  enqueue(task: Task, write: boolean): { readonly granted: boolean } {
    const w: RwWaiter = { task, write, granted: false };
    this.queue.push(w);
    return w;
  }

  /** Removes one read hold of `task`; false if it held none. */
  dropReader(task: Task): boolean {
    const i = this.readers.lastIndexOf(task);
    if (i < 0) return false;
    this.readers.splice(i, 1);
    return true;
  }

  /**
   * Drops the current task's read hold for `op` (`up_read`, `read_unlock`). A task that holds
   * none is reported as `kind` (the lock stays as it was); returns whether a hold was dropped.
   */
  releaseRead(k: Kernel, kind: string, op: string, name: string): boolean {
    const me = k.scheduler.currentOrNull;
    if (me !== null && this.dropReader(me)) return true;
    k.report(
      kind,
      `${op}(${name}) by ${me?.toString() ?? 'no task'}, which holds no read lock on it`,
    );
    return false;
  }

  /**
   * Drops the current task's write hold for `op` (`up_write`, `write_unlock`). A task that is not
   * the writer is reported as `kind`; returns whether the hold was dropped.
   */
  releaseWrite(k: Kernel, kind: string, op: string, name: string): boolean {
    const me = k.scheduler.currentOrNull;
    if (me !== null && this.writer === me) {
      this.writer = null;
      return true;
    }
    k.report(
      kind,
      `${op}(${name}) by ${me?.toString() ?? 'no task'}, but the writer is ${this.writer?.toString() ?? 'nobody'}`,
    );
    return false;
  }

  /** Hands the lock to waiters that can now have it; returns true if anyone was granted. */
  grant(): boolean {
    let any = false;
    while (this.queue.length > 0 && this.writer === null) {
      const first = this.queue[0]!;
      if (first.write) {
        if (this.readers.length > 0) break;
        this.queue.shift();
        first.granted = true;
        this.writer = first.task;
        any = true;
        break;
      }
      this.queue.shift();
      first.granted = true;
      this.readers.push(first.task);
      any = true;
    }
    return any;
  }
}
