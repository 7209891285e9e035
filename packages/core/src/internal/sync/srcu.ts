import { Observable } from 'rxjs';
import type { EventBus } from '../bus.js';
import type { ExecutionContext } from '../context.js';
import type { SimEvent } from '../events.js';
import type { Kernel } from '../kernel.js';
import type { HeldLock, LockClass, Lockdep } from '../lockdep/lockdep.js';
import type { Oracle, OracleContext } from '../oracle.js';
import type { Scheduler } from '../scheduler.js';
import type { Task, TaskGen } from '../task.js';
import { WaitQueue } from '../waitqueue.js';

/** Options of {@link SrcuDomain}. */
export interface SrcuDomainOptions {
  /**
   * The execution context (name or CPU number) of the kworker that drives the domain's grace
   * periods and invokes its callbacks. Default: the last CPU (`cpu<N-1>`).
   */
  readonly kworkerOn?: string | number;
}

/**
 * Where a domain's grace-period state machine is (Tree SRCU's `srcu_gp_seq` state):
 * - `'idle'`: no grace period in progress;
 * - `'scan1'`: waiting for the readers of the inactive index to leave, before the flip;
 * - `'scan2'`: the active index has flipped; waiting for the readers of the old index to leave.
 */
export type SrcuGpState = 'idle' | 'scan1' | 'scan2';

/** One queued callback: a user's `call_srcu`, a `synchronize_srcu` completion or a barrier marker. */
interface SrcuCallback {
  /** Per-domain id of a user callback (`srcu.cb_*` events); -1 for internal ones. */
  readonly id: number;
  /** What to run, with bottom halves disabled. */
  readonly fn: () => void;
  /** The number of the grace period that must have completed before it may run. */
  readonly need: number;
}

const BH_DISABLED = 'srcu callback (softirq, bottom halves disabled)';

/**
 * A sleepable-RCU domain (`struct srcu_struct`): readers mark read-side sections that may sleep
 * and nest; updaters wait for a grace period — until every reader that was inside when they
 * started has left — with {@link SrcuDomain.synchronize}, or have a function run after one with
 * {@link SrcuDomain.callSrcu}. Domains are independent: a reader of one never delays another.
 *
 * Readers are counted in one of two counters, chosen by the *active index* (0 or 1) that
 * {@link SrcuDomain.readLock} returns and {@link SrcuDomain.readUnlock} must be given back.
 * A grace period runs in two phases, as Tree SRCU does (IDLE → SCAN1 → SCAN2 → IDLE): SCAN1
 * waits until the inactive index has no readers and then flips the active index; SCAN2 waits
 * until the old index has no readers. New readers enter the new active index after the flip, so
 * a continuous stream of readers cannot delay a grace period forever. The grace periods run in
 * a kworker task (a daemon spawned on first need, on the last CPU by default), which also
 * invokes the callbacks, with bottom halves disabled.
 *
 * Read-side sections are also available as observable scopes ({@link SrcuDomain.scope}) that
 * last as long as a subscription, and as a generator wrapper ({@link SrcuDomain.read}).
 *
 * Context: `readLock`/`readUnlock`/`callSrcu` never sleep and may be used in any context;
 * `synchronize` and `barrier` sleep (process context only). Lockdep sees a task reader as a
 * recursive-read acquisition of the domain's class (the domain's name; domains with the same
 * name share it) and `synchronize` as a wait for every holder of it (`lock_sync`), so
 * `srcu_read_lock(S); mutex_lock(M)` in one task and `mutex_lock(M); synchronize_srcu(S)` in
 * another is reported as a possible deadlock.
 *
 * Differences from Linux: `srcu_read_lock` is one atomic step here (there is no window between
 * reading the index and counting the reader), so SCAN1 finds the inactive index already drained
 * — it is kept for the structure. There is no expedited mode, no polling API, no per-CPU
 * callback lists, and `srcu_barrier` is not serialised by a mutex (concurrent barriers each
 * wait for their own marker).
 *
 * ## Example
 * ```ts
 * const srcu = new SrcuDomain(sim.kernel, 'notifier_srcu');
 * let list = ['a', 'b'];
 * sim.spawn('reader', 0, function* () {
 *   yield* srcu.read(function* () {
 *     for (const item of list) yield* sim.scheduler.sleepFor(1000); // may sleep inside
 *   });
 * });
 * sim.spawn('updater', 1, function* () {
 *   const old = list;
 *   list = ['b'];
 *   yield* srcu.synchronize(); // every reader that could see `old` has left
 *   srcu.callSrcu(() => freed.push(old)); // or: run this after a grace period, without waiting
 *   yield* srcu.barrier(); // every callback queued so far has run
 * });
 * ```
 *
 * @see srcu_read_lock
 * @see synchronize_srcu
 * @see call_srcu
 * @see srcu_barrier
 */
export class SrcuDomain {
  private readonly sched: Scheduler;
  private readonly bus: EventBus;
  private readonly lockdep: Lockdep;
  private readonly cls: LockClass;
  private readonly kworkerCtx: ExecutionContext;
  /** Readers counted per index (locks minus unlocks, summed over CPUs). */
  private readonly count: number[] = [0, 0];
  /** The index new readers are counted in. */
  private active = 0;
  /** Outstanding task sections per task id: the idx of each, oldest first. */
  private readonly taskSections: number[][] = [];
  /** Outstanding sections taken outside any task (setup code, observers run from timers). */
  private readonly orphanSections: number[] = [];
  /** Grace periods started and completed (a GP is numbered by `started` when it starts). */
  private started = 0;
  private completed = 0;
  private state: SrcuGpState = 'idle';
  /** The index the kworker waits to drain, or -1. */
  private drainIdx = -1;
  /** Queued callbacks in queue order; their `need` never decreases along the queue. */
  private readonly queue: SrcuCallback[] = [];
  private nextCbId = 0;
  private userPending = 0;
  private kworkerTask: Task | null = null;
  /** The kworker waits here for work (idle) and for a reader count to reach zero (SCAN1/2). */
  private readonly workWq: WaitQueue;
  private readonly readersWq: WaitQueue;

  /**
   * Creates an idle domain with no readers. Its kworker is spawned on first need.
   *
   * @param kernel the kernel services.
   * @param name the domain's name, shown in events and reports, and its lockdep class name.
   * @param options where the kworker runs.
   * @throws ConfigError when `options.kworkerOn` names no execution context.
   * @see init_srcu_struct
   */
  constructor(
    private readonly kernel: Kernel,
    readonly name: string,
    options?: SrcuDomainOptions,
  ) {
    this.sched = kernel.scheduler;
    this.bus = kernel.bus;
    this.lockdep = kernel.lockdep;
    this.cls = kernel.lockdep.classOf(name);
    const on = options?.kworkerOn;
    if (on !== undefined) this.kworkerCtx = this.sched.context(on);
    else {
      const cpus = this.sched.contexts.filter((c) => c.kind === 'cpu');
      this.kworkerCtx = cpus[cpus.length - 1]!;
    }
    this.workWq = new WaitQueue(this.sched, `srcu ${name} work`);
    this.readersWq = new WaitQueue(this.sched, `srcu ${name} readers`, () => this.readerTasks());
  }

  // ---------------------------------------------------------------------------------------
  // Readers

  /**
   * Enters a read-side section and returns the index it was counted in (0 or 1), which must be
   * passed back unchanged to {@link SrcuDomain.readUnlock} by the same task. Sections may nest
   * and may sleep; a grace period that starts while this section is open does not end before
   * it is closed.
   *
   * Context: any (a plain function: it never sleeps). For a task, lockdep records a
   * recursive-read acquisition of the domain.
   *
   * @returns the index to pass to `readUnlock`.
   * @see srcu_read_lock
   */
  readLock(): number {
    const idx = this.active;
    const task = this.sched.currentOrNull;
    let held: HeldLock | null = null;
    if (task === null) this.orphanSections.push(idx);
    else {
      let s = this.taskSections[task.id];
      if (s === undefined) {
        s = [];
        this.taskSections[task.id] = s;
      }
      s.push(idx);
      held = this.lockdep.acquire(this, this.cls, 'recursive-read');
    }
    this.count[idx]!++;
    const bus = this.bus;
    if (bus.wants('srcu.read_lock')) {
      const ev = bus.emit('srcu.read_lock', { domain: this.name, idx, reader: 'task' });
      if (held !== null && ev !== undefined) held.seq = ev.seq;
    }
    return idx;
  }

  /**
   * Leaves a read-side section entered by {@link SrcuDomain.readLock} in the same task. When
   * the task has several sections open, the most recent one counted in `idx` ends (so
   * hand-over-hand sections may be closed out of order, as the kernel allows).
   *
   * Misuse is reported and never corrupts the counters:
   * - `srcu-idx-mismatch` (a `WARN`): `idx` is not 0 or 1, or none of the task's open sections
   *   was counted in it; the task's most recent section is closed instead, under its real index;
   * - `srcu-wrong-context`: the task has no open section but another task has one in `idx`
   *   (lock and unlock must be in the same task); nothing is closed;
   * - `srcu-unbalanced`: nobody has such a section open; nothing is closed.
   *
   * Context: any (a plain function: it never sleeps).
   *
   * @param idx the value the matching `readLock` returned.
   * @see srcu_read_unlock
   */
  readUnlock(idx: number): void {
    const task = this.sched.currentOrNull;
    const s = task === null ? this.orphanSections : this.taskSections[task.id];
    const n = s === undefined ? 0 : s.length;
    if (n === 0) {
      this.badUnlock(task, idx);
      return;
    }
    const stack = s!;
    let i = n - 1;
    if (stack[i] !== idx) {
      i = idx === 0 || idx === 1 ? stack.lastIndexOf(idx) : -1;
      if (i < 0) {
        i = n - 1;
        this.kernel.report(
          'srcu-idx-mismatch',
          `WARNING: srcu_read_unlock(${this.name}, ${idx}) in ${task?.toString() ?? 'no task'}: ` +
            (idx === 0 || idx === 1
              ? `no open read-side section of this task was counted in index ${idx} (open: [${stack.join(', ')}])`
              : `idx has bits other than bit 0 (WARN_ON_ONCE(idx & ~0x1))`) +
            `; the idx returned by srcu_read_lock must be passed back unchanged (closing the most recent section, index ${stack[i]!})`,
        );
      }
    }
    const sectionIdx = stack[i]!;
    if (i === n - 1) stack.pop();
    else stack.splice(i, 1);
    if (task !== null) this.lockdep.release(this);
    this.leave(sectionIdx, 'task');
  }

  /**
   * Runs `body` inside a read-side section: `readLock`, `yield* body()`, `readUnlock` — also
   * when `body` throws or the task is torn down.
   *
   * Context: a task; it sleeps only if `body` does.
   *
   * @param body the read-side critical section.
   * @returns what `body` returns.
   * @see srcu_read_lock
   */
  *read<R>(body: () => TaskGen<R>): TaskGen<R> {
    const idx = this.readLock();
    try {
      return yield* body();
    } finally {
      this.readUnlock(idx);
    }
  }

  /**
   * Wraps `source$` so each subscription holds a read-side section for exactly its life: it
   * enters (in the active index) on subscribe and leaves exactly once, after the downstream
   * observer has handled `complete` or `error`, or on unsubscribe — whichever comes first. A
   * grace period waits for an open scope like for any reader, so data used by a long-lived
   * observer stays valid while it is subscribed.
   *
   * Scopes are not tasks: lockdep does not see them, and they may be opened and closed from
   * any task or from outside tasks. Their events carry `reader: 'scope'`.
   *
   * @param source$ the stream whose subscription is the read-side section.
   * @returns a stream emitting what `source$` emits.
   * @see srcu_read_lock
   */
  scope<T>(source$: Observable<T>): Observable<T> {
    return new Observable<T>((subscriber) => {
      const idx = this.active;
      this.count[idx]!++;
      if (this.bus.wants('srcu.read_lock'))
        this.bus.emit('srcu.read_lock', { domain: this.name, idx, reader: 'scope' });
      let inside = true;
      const inner = source$.subscribe({
        next: (v) => subscriber.next(v),
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => {
        inner.unsubscribe();
        if (!inside) return;
        inside = false;
        this.leave(idx, 'scope');
      };
    });
  }

  // ---------------------------------------------------------------------------------------
  // Updaters

  /**
   * Waits for a full grace period: returns only after every reader that was inside a read-side
   * section of this domain when it was called has left (readers that enter later may or may not
   * be waited for, but cannot delay it forever). It queues an internal completion callback and
   * sleeps until the kworker runs it.
   *
   * Context: process context; it sleeps (it checks `might_sleep()` first, so calling it in
   * atomic context is reported). Lockdep records a wait for every holder of the domain
   * (`lock_sync`). Calling it inside a read-side section of the same domain would deadlock: it
   * is reported as `srcu-sync-in-read-section` and returns at once without waiting. Inside
   * another domain's section it is fine.
   *
   * @see synchronize_srcu
   */
  *synchronize(): TaskGen<void> {
    this.kernel.mightSleep('synchronize_srcu');
    const task = this.sched.current;
    const mine = this.taskSections[task.id];
    if (mine !== undefined && mine.length > 0) {
      this.kernel.report(
        'srcu-sync-in-read-section',
        `Illegal synchronize_srcu() in same-type SRCU read-side critical section: ${task.toString()} ` +
          `calls synchronize_srcu(${this.name}) inside ${mine.length} read-side section(s) of the same domain; ` +
          `the grace period would wait for this task forever (not waiting)`,
      );
      return;
    }
    this.lockdep.sync(this, this.cls);
    if (this.bus.wants('srcu.sync_start')) this.bus.emit('srcu.sync_start', { domain: this.name });
    let done = false;
    const wq = new WaitQueue(this.sched, `synchronize_srcu ${this.name}`, () => this.readerTasks());
    this.enqueue(-1, () => {
      done = true;
      wq.wakeAll();
    });
    yield* wq.waitEvent(() => done);
    if (this.bus.wants('srcu.sync_end')) this.bus.emit('srcu.sync_end', { domain: this.name });
  }

  /**
   * Queues `fn` to run once after a full grace period: never while a reader that was inside
   * when `callSrcu` was called is still inside (it may run while readers that entered later
   * are), and never twice. It runs in the domain's kworker with bottom halves disabled, so it
   * must not sleep: it is a plain function, and any `might_sleep()` check it reaches (such as
   * `kernel.mightSleep()` or a sleeping lock) is reported as `sleep-in-atomic`.
   *
   * Context: any (a plain function: it never sleeps). Emits `srcu.cb_queue` now and
   * `srcu.cb_invoke` when `fn` runs, with a per-domain callback id.
   *
   * @param fn the callback.
   * @see call_srcu
   */
  callSrcu(fn: () => void): void {
    const id = this.nextCbId++;
    this.userPending++;
    if (this.bus.wants('srcu.cb_queue'))
      this.bus.emit('srcu.cb_queue', { domain: this.name, cb: id });
    this.enqueue(id, fn);
  }

  /**
   * Waits until every callback queued with {@link SrcuDomain.callSrcu} (and every pending
   * `synchronize` completion) before the call has been invoked. It entrains a marker behind the
   * queued callbacks, due with the last of them; with nothing queued it returns at once.
   *
   * Context: process context; it sleeps (checks `might_sleep()`).
   *
   * @see srcu_barrier
   */
  *barrier(): TaskGen<void> {
    this.kernel.mightSleep('srcu_barrier');
    if (this.bus.wants('srcu.barrier_start'))
      this.bus.emit('srcu.barrier_start', { domain: this.name });
    const last = this.queue[this.queue.length - 1];
    if (last !== undefined) {
      let done = false;
      const wq = new WaitQueue(this.sched, `srcu_barrier ${this.name}`, () => this.readerTasks());
      this.queue.push({
        id: -1,
        need: last.need,
        fn: () => {
          done = true;
          wq.wakeAll();
        },
      });
      this.kick();
      yield* wq.waitEvent(() => done);
    }
    if (this.bus.wants('srcu.barrier_end'))
      this.bus.emit('srcu.barrier_end', { domain: this.name });
  }

  // ---------------------------------------------------------------------------------------
  // Introspection

  /** Open read-side sections (task readers and scopes), over both indices. */
  readers(): number {
    return this.count[0]! + this.count[1]!;
  }

  /** Number of grace periods completed so far (the `n`-th grace period is numbered `n`). */
  get gpSeq(): number {
    return this.completed;
  }

  /** Where the grace-period state machine is. */
  get gpState(): SrcuGpState {
    return this.state;
  }

  /** The index new readers are counted in (0 or 1). */
  get activeIndex(): number {
    return this.active;
  }

  /** Callbacks queued with {@link SrcuDomain.callSrcu} that have not run yet. */
  pendingCallbacks(): number {
    return this.userPending;
  }

  // ---------------------------------------------------------------------------------------
  // Grace-period machinery (runs in the kworker)

  /**
   * Waits until index `idx` has no readers: the wait of SCAN1 (inactive index) and of SCAN2
   * (old index). Overridden only by tests that build a deliberately broken SRCU.
   * @internal
   */
  protected *waitForReaders(idx: number, phase: 'scan1' | 'scan2'): TaskGen<void> {
    void phase;
    this.drainIdx = idx;
    yield* this.readersWq.waitEvent(() => this.count[idx] === 0);
    this.drainIdx = -1;
  }

  private leave(idx: number, reader: 'task' | 'scope'): void {
    const c = --this.count[idx]!;
    if (this.bus.wants('srcu.read_unlock'))
      this.bus.emit('srcu.read_unlock', { domain: this.name, idx, reader });
    if (c === 0 && this.drainIdx === idx) this.readersWq.wakeAll();
  }

  private badUnlock(task: Task | null, idx: number): void {
    const who = task?.toString() ?? 'no task';
    let owner: Task | undefined;
    this.taskSections.forEach((s, id) => {
      if (owner === undefined && s.includes(idx)) owner = this.sched.task(id);
    });
    const other =
      owner !== undefined
        ? owner.toString()
        : task !== null && this.orphanSections.includes(idx)
          ? 'code outside any task'
          : null;
    if (other !== null) {
      this.kernel.report(
        'srcu-wrong-context',
        `srcu_read_unlock(${this.name}, ${idx}) in ${who}, but the section was entered by ${other}: ` +
          `lock and unlock must be in the same task (use srcu_down_read/srcu_up_read to hand over)`,
      );
    } else {
      this.kernel.report(
        'srcu-unbalanced',
        `srcu_read_unlock(${this.name}, ${idx}) in ${who} without a matching srcu_read_lock`,
      );
    }
  }

  /** Tasks with an open read-side section: who a grace period waits for. */
  private readerTasks(): Task[] {
    const out: Task[] = [];
    this.taskSections.forEach((s, id) => {
      if (s.length === 0) return;
      const t = this.sched.task(id);
      if (t !== undefined) out.push(t);
    });
    return out;
  }

  /** Queues a callback due after the next grace period to start. */
  private enqueue(id: number, fn: () => void): void {
    this.queue.push({ id, fn, need: this.started + 1 });
    this.kick();
  }

  /** Makes sure the kworker exists (spawning it again if a callback crashed it) and is awake. */
  private kick(): void {
    const k = this.kworkerTask;
    if (k === null || k.state === 'exited') {
      this.kworkerTask = this.sched.spawn(
        `kworker/srcu:${this.name}`,
        this.kworkerCtx,
        () => this.kworker(),
        { daemon: true },
      );
    } else if (this.workWq.length > 0) this.workWq.wakeAll();
  }

  private *kworker(): TaskGen<void> {
    const q = this.queue;
    for (;;) {
      const head = q[0];
      if (head === undefined) {
        yield* this.workWq.waitEvent(() => q.length > 0);
        continue;
      }
      if (head.need <= this.completed) {
        q.shift();
        this.invoke(head);
        yield* this.sched.preempt();
        continue;
      }
      yield* this.gracePeriod();
    }
  }

  /** One grace period: IDLE → SCAN1 → (flip) → SCAN2 → IDLE. */
  private *gracePeriod(): TaskGen<void> {
    const gp = ++this.started;
    this.state = 'scan1';
    if (this.bus.wants('srcu.gp_start')) this.bus.emit('srcu.gp_start', { domain: this.name, gp });
    yield* this.sched.preempt();
    // SCAN1: nobody enters the inactive index, so this wait is bounded by its current readers.
    yield* this.waitForReaders(1 - this.active, 'scan1');
    this.active = 1 - this.active;
    this.state = 'scan2';
    if (this.bus.wants('srcu.flip'))
      this.bus.emit('srcu.flip', { domain: this.name, idx: this.active });
    yield* this.sched.preempt();
    // SCAN2: new readers now enter the new active index; wait for the old one to drain.
    yield* this.waitForReaders(1 - this.active, 'scan2');
    this.completed = gp;
    this.state = 'idle';
    if (this.bus.wants('srcu.gp_end')) this.bus.emit('srcu.gp_end', { domain: this.name, gp });
  }

  private invoke(cb: SrcuCallback): void {
    if (cb.id >= 0) {
      this.userPending--;
      if (this.bus.wants('srcu.cb_invoke'))
        this.bus.emit('srcu.cb_invoke', { domain: this.name, cb: cb.id });
    }
    const sched = this.sched;
    sched.preemptDisable(BH_DISABLED);
    try {
      cb.fn();
    } catch (e) {
      // The kworker dies with the callback (the scheduler reports the crash); a new one takes
      // over the rest of the queue so pending synchronize() callers are not stranded.
      this.kworkerTask = null;
      if (this.queue.length > 0) this.kick();
      throw e;
    } finally {
      sched.preemptEnable();
    }
  }
}

// -------------------------------------------------------------------------------------------
// The oracle

/** One open read-side section as the oracle sees it. */
interface SeenSection {
  readonly idx: number;
  /** `seq` of its `srcu.read_lock` event. */
  readonly seq: number;
  /** The task that opened it (-1 outside tasks). */
  readonly task: number;
  /** True for an observable scope. */
  readonly scope: boolean;
}

/** What the oracle knows about one domain. */
interface DomainView {
  /** Open task sections per task id, oldest first. */
  readonly tasks: Map<number, SeenSection[]>;
  /** Open scopes per index, oldest first (paired FIFO). */
  readonly scopes: [SeenSection[], SeenSection[]];
  /** `seq` of each task's pending `srcu.sync_start`. */
  readonly syncs: Map<number, number>;
  /** `seq` of each callback's `srcu.cb_queue`. */
  readonly queued: Map<number, number>;
  /** Callback ids invoked so far. */
  readonly invoked: Set<number>;
}

/**
 * Checks SRCU's grace-period guarantees from the `srcu.*` events alone, for every domain
 * (told apart by name, so give domains distinct names):
 * - `srcu-early-sync` (invariant 50): at a `srcu.sync_end`, a reader of the domain whose
 *   `srcu.read_lock` came before the same task's `srcu.sync_start` is still inside;
 * - `srcu-early-callback` (invariant 51): at a `srcu.cb_invoke`, a reader whose `srcu.read_lock`
 *   came before that callback's `srcu.cb_queue` is still inside;
 * - `srcu-double-callback` (invariant 51): a callback id is invoked twice.
 *
 * Pairing of `read_lock`/`read_unlock`: task sections per task, the unlock closing the most
 * recent open section with the same index (as {@link SrcuDomain.readUnlock} does) — exact for
 * nested sections. Events carry no scope identity, so scopes are paired FIFO per index. The
 * oracle never reports a correct implementation, whatever the pairing: a correct grace period
 * saw each index with no reader at some point after it started, and from then on every open
 * section of that index (under any pairing) entered after the start. The FIFO pairing of scopes
 * can only hide an early end when two scopes of one index, one older and one newer than the
 * `synchronize`/`call_srcu`, close out of order.
 *
 * Attach it with `sim.addOracle(new SrcuOracle())`; one instance per simulation.
 *
 * @see synchronize_srcu
 * @see call_srcu
 */
export class SrcuOracle implements Oracle {
  /** The oracle id shown on its violations. */
  readonly id = 'srcu';

  /** Subscribes to the `srcu.*` events. */
  attach(ctx: OracleContext): void {
    const domains = new Map<string, DomainView>();
    const view = (name: string): DomainView => {
      let d = domains.get(name);
      if (d === undefined) {
        d = {
          tasks: new Map(),
          scopes: [[], []],
          syncs: new Map(),
          queued: new Map(),
          invoked: new Set(),
        };
        domains.set(name, d);
      }
      return d;
    };
    const bus = ctx.bus;
    bus.on('srcu.read_lock').subscribe((e) => {
      const d = view(e.data.domain);
      const scope = e.data.reader === 'scope';
      const s: SeenSection = { idx: e.data.idx, seq: e.seq, task: e.task, scope };
      if (scope) {
        d.scopes[e.data.idx === 1 ? 1 : 0].push(s);
        return;
      }
      let stack = d.tasks.get(e.task);
      if (stack === undefined) {
        stack = [];
        d.tasks.set(e.task, stack);
      }
      stack.push(s);
    });
    bus.on('srcu.read_unlock').subscribe((e) => {
      const d = view(e.data.domain);
      if (e.data.reader === 'scope') {
        d.scopes[e.data.idx === 1 ? 1 : 0].shift();
        return;
      }
      const stack = d.tasks.get(e.task);
      if (stack === undefined || stack.length === 0) return;
      let i = stack.length - 1;
      while (i >= 0 && stack[i]!.idx !== e.data.idx) i--;
      stack.splice(i < 0 ? stack.length - 1 : i, 1);
    });
    bus.on('srcu.sync_start').subscribe((e) => {
      view(e.data.domain).syncs.set(e.task, e.seq);
    });
    bus.on('srcu.sync_end').subscribe((e) => {
      const d = view(e.data.domain);
      const start = d.syncs.get(e.task);
      if (start === undefined) return;
      d.syncs.delete(e.task);
      const r = oldestBefore(d, start);
      if (r === null) return;
      ctx.report({
        kind: 'srcu-early-sync',
        message:
          `synchronize_srcu(${e.data.domain}) returned in ${taskName(ctx, e.task)} while a reader that entered before the call ` +
          `(${readerName(ctx, r)}, read_lock event #${r.seq}, index ${r.idx}) is still inside its read-side section (invariant 50)`,
        evidence: [r.seq, start, e.seq],
      });
    });
    bus.on('srcu.cb_queue').subscribe((e) => {
      view(e.data.domain).queued.set(e.data.cb, e.seq);
    });
    bus.on('srcu.cb_invoke').subscribe((e) => this.onInvoke(ctx, view(e.data.domain), e));
  }

  private onInvoke(ctx: OracleContext, d: DomainView, e: SimEvent<'srcu.cb_invoke'>): void {
    const { domain, cb } = e.data;
    const queuedAt = d.queued.get(cb);
    if (d.invoked.has(cb)) {
      ctx.report({
        kind: 'srcu-double-callback',
        message: `call_srcu callback ${cb} of ${domain} was invoked twice for one queuing (invariant 51)`,
        evidence: queuedAt === undefined ? [e.seq] : [queuedAt, e.seq],
      });
      return;
    }
    d.invoked.add(cb);
    if (queuedAt === undefined) return;
    const r = oldestBefore(d, queuedAt);
    if (r === null) return;
    ctx.report({
      kind: 'srcu-early-callback',
      message:
        `call_srcu callback ${cb} of ${domain} runs while a reader that entered before it was queued ` +
        `(${readerName(ctx, r)}, read_lock event #${r.seq}, index ${r.idx}) is still inside its read-side section (invariant 51)`,
      evidence: [r.seq, queuedAt, e.seq],
    });
  }
}

/** The oldest open section of `d` that entered before event `seq`, or null. */
function oldestBefore(d: DomainView, seq: number): SeenSection | null {
  let best: SeenSection | null = null;
  const consider = (s: SeenSection | undefined): void => {
    if (s !== undefined && s.seq < seq && (best === null || s.seq < best.seq)) best = s;
  };
  // Each stack is in entry order (removals keep it sorted): its first section is its oldest.
  for (const stack of d.tasks.values()) consider(stack[0]);
  consider(d.scopes[0][0]);
  consider(d.scopes[1][0]);
  return best;
}

function taskName(ctx: OracleContext, id: number): string {
  return id < 0 ? 'no task' : (ctx.scheduler.task(id)?.toString() ?? `task#${id}`);
}

function readerName(ctx: OracleContext, s: SeenSection): string {
  return s.scope ? `an observable scope opened in ${taskName(ctx, s.task)}` : taskName(ctx, s.task);
}
