import type { Kernel } from '../kernel.js';
import type { HeldLock, LockClass } from '../lockdep/lockdep.js';
import type { Task, TaskGen } from '../task.js';
import { WaitQueue } from '../waitqueue.js';

import { Errno } from '../errno.js';

/** `-EDEADLK`: the caller lost a stamp race and must back off (release all, `lockSlow`, retry). */
const EDEADLK = -Errno.EDEADLK;
/** `-EALREADY`: the ww_mutex is already held by this acquire context (a normal result). */
const EALREADY = -Errno.EALREADY;
/** `-EBUSY`: the `result` a `ww.lock` event records for a failed {@link WwMutex.tryLock}. */
const EBUSY = -Errno.EBUSY;

/**
 * The deadlock-avoidance algorithm of a {@link WwClass}: `'wound-wait'` (`DEFINE_WW_CLASS`,
 * `is_wait_die = 0`) or `'wait-die'` (`DEFINE_WD_CLASS`, `is_wait_die = 1`).
 */
export type WwAlgorithm = 'wound-wait' | 'wait-die';

/** Options of {@link WwAcquireCtx} (`ww_acquire_init`). */
export interface WwAcquireOptions {
  /**
   * Slow-path fault injection (`CONFIG_DEBUG_WW_MUTEX_SLOWPATH`): some successful locks made
   * while the context already holds another ww_mutex are turned into a fake `-EDEADLK`, so the
   * caller's back-off path runs even without real contention. The countdown starts at
   * `stamp & 0xf`; each time it fires the interval grows about 3.5×.
   */
  readonly injectDeadlocks?: boolean;
}

/** `ctx_less(a, b)`: true when `a` is younger (larger stamp) than `b`, so `a` yields to `b`. */
function younger(a: WwAcquireCtx, b: WwAcquireCtx): boolean {
  return a.stamp - b.stamp > 0;
}

/** @internal One waiter in a ww_mutex's wait list (`struct mutex_waiter` with its `ww_ctx`). */
export interface WwWaiter {
  readonly task: Task;
  readonly ctx: WwAcquireCtx | null;
  readonly lock: WwMutex;
  /** The waiter's own queue, so a wake-up (hand-over, die, wound) reaches exactly this task. */
  readonly queue: WaitQueue;
}

const UINT_MAX = 0xffffffff;

/**
 * A wound/wait class (`struct ww_class`): the family of ww_mutexes that may be taken together
 * in one transaction, and the stamp counter that orders those transactions. Every
 * {@link WwAcquireCtx} of the class draws `stamp = ++class.stamp`, so stamps are unique and
 * grow with start time; a smaller stamp is an older transaction, and the older one wins.
 *
 * Context: plain object, never sleeps. Define one per kind of object set, usually at module
 * level like the kernel's `static DEFINE_WW_CLASS(...)`: the stamp counter is kept per
 * simulation ({@link Kernel}), so a class shared by many simulations (one per explored schedule)
 * still gives each run the same stamps 1, 2, 3 … and replays byte for byte.
 *
 * Lockdep sees a class as two lock classes, named like the kernel's keys: `<name>_acquire`
 * (held by each context from init to fini) and `<name>_mutex` (every ww_mutex of the class).
 *
 * ## Example
 * ```ts
 * const reservation = DEFINE_WW_CLASS('reservation_ww_class');
 * const ctx = reservation.acquireInit(sim.kernel); // inside a task
 * ```
 *
 * @see DEFINE_WW_CLASS
 * @see DEFINE_WD_CLASS
 * @see struct ww_class
 */
export class WwClass {
  private readonly stamps = new WeakMap<Kernel, number>();
  private readonly live = new WeakMap<Task, WwAcquireCtx[]>();

  /**
   * @param name the class name (`reservation_ww_class`); lockdep classes derive from it.
   * @param algorithm `'wound-wait'` or `'wait-die'`.
   */
  constructor(
    readonly name: string,
    readonly algorithm: WwAlgorithm,
  ) {}

  /** True for a Wait-Die class (`ww_class->is_wait_die`). */
  get isWaitDie(): boolean {
    return this.algorithm === 'wait-die';
  }

  /** The lockdep class name of the class's acquire contexts (`ww_class->acquire_name`). */
  get acquireName(): string {
    return `${this.name}_acquire`;
  }

  /** The lockdep class name shared by the class's ww_mutexes (`ww_class->mutex_name`). */
  get mutexName(): string {
    return `${this.name}_mutex`;
  }

  /** The last stamp handed out in `kernel`'s simulation (0 before the first context). */
  stamp(kernel: Kernel): number {
    return this.stamps.get(kernel) ?? 0;
  }

  /**
   * Starts a transaction in the current task: `ww_acquire_init`. Same as
   * `new WwAcquireCtx(kernel, this, options)`.
   * @see ww_acquire_init
   */
  acquireInit(kernel: Kernel, options?: WwAcquireOptions): WwAcquireCtx {
    return new WwAcquireCtx(kernel, this, options);
  }

  /** @internal `atomic_long_inc_return(&ww_class->stamp)` for one simulation. */
  nextStamp(kernel: Kernel): number {
    const s = (this.stamps.get(kernel) ?? 0) + 1;
    this.stamps.set(kernel, s);
    return s;
  }

  /** @internal The live (not finished) contexts of this class in `task`. */
  liveContexts(task: Task): WwAcquireCtx[] {
    let l = this.live.get(task);
    if (l === undefined) {
      l = [];
      this.live.set(task, l);
    }
    return l;
  }
}

/**
 * Defines a Wound-Wait class: an older transaction that waits for a younger one wounds it (the
 * younger backs off when it next blocks on a contended ww_mutex).
 * @see DEFINE_WW_CLASS
 */
export function DEFINE_WW_CLASS(name: string): WwClass {
  return new WwClass(name, 'wound-wait');
}

/**
 * Defines a Wait-Die class: a younger transaction that would wait for an older one dies (backs
 * off) at once instead.
 * @see DEFINE_WD_CLASS
 */
export function DEFINE_WD_CLASS(name: string): WwClass {
  return new WwClass(name, 'wait-die');
}

/**
 * An acquire context (`struct ww_acquire_ctx`): one transaction that takes several ww_mutexes of
 * one {@link WwClass} in any order. Its stamp, drawn at creation, is its priority for the whole
 * transaction — including every retry after a back-off — which is what guarantees that it
 * eventually becomes the oldest and succeeds.
 *
 * Context: create it inside a task (it belongs to the current task); never sleeps. Lifecycle:
 * `ww_acquire_init` (the constructor) → lock calls → optional {@link WwAcquireCtx.done} →
 * unlock everything → {@link WwAcquireCtx.fini}. Misuse is reported as a violation naming the
 * rule (see {@link WwMutex}).
 *
 * Lockdep: the context holds `<class>_acquire` and a fake `<class>_mutex` entry (the kernel's
 * `first_lock_dep_map`) from init to fini; the ww_mutexes taken with it are nested under them
 * and add no dependencies of their own.
 *
 * ## Example
 * ```ts
 * const ctx = new WwAcquireCtx(sim.kernel, cls); // ww_acquire_init(&ctx, &cls)
 * yield* a.lock(ctx);
 * ctx.done();                                    // ww_acquire_done(&ctx)
 * a.unlock();
 * ctx.fini();                                    // ww_acquire_fini(&ctx)
 * ```
 *
 * @see ww_acquire_init
 * @see ww_acquire_fini
 */
export class WwAcquireCtx {
  /** The transaction's stamp: unique in the class, smaller is older, older wins. */
  readonly stamp: number;
  /** The task that initialised the context; only it may use and finish it. */
  readonly task: Task;
  /** Copied from the class at init (`ctx->is_wait_die`). */
  readonly isWaitDie: boolean;
  /**
   * How many ww_mutexes this context holds (`ctx->acquired`). Maintained by the lock and unlock
   * calls; it always equals the number of ww_mutexes whose {@link WwMutex.ctx} is this context
   * (invariant 53). A public field like the kernel's struct member: writing it is the memory
   * corruption the debug checks exist to catch.
   */
  acquired = 0;
  /**
   * Set when an older transaction waits for a lock this one holds (Wound-Wait). Noticed lazily:
   * the next lock call that has to wait while holding locks returns `-EDEADLK`. Cleared by
   * a lock call made while `acquired == 0`.
   */
  wounded = false;
  /** @internal The lock whose -EDEADLK must be answered next (`ctx->contending_lock`). */
  contending: WwMutex | null = null;
  /** @internal The ww wait the task sleeps in with this context, for wound wake-ups. */
  waiter: WwWaiter | null = null;
  private doneFlag = false;
  private finiFlag = false;
  private injectInterval = 1;
  private injectCountdown: number;
  private readonly inject: boolean;
  private readonly lockdepTracked: boolean;
  private readonly firstLockMap: { readonly name: string };

  /**
   * `ww_acquire_init`: starts a transaction in the current task with a fresh stamp. Two live
   * contexts of one class in one task are reported (`ww-ctx-nested`): lockdep would see the
   * class's `_acquire` lock taken recursively.
   *
   * @param kernel the kernel services.
   * @param wwClass the class of every ww_mutex this context may take.
   * @param options fault injection.
   * @see ww_acquire_init
   */
  constructor(
    private readonly kernel: Kernel,
    readonly wwClass: WwClass,
    options?: WwAcquireOptions,
  ) {
    const task = kernel.scheduler.current;
    this.task = task;
    this.stamp = wwClass.nextStamp(kernel);
    this.isWaitDie = wwClass.isWaitDie;
    this.inject = options?.injectDeadlocks === true;
    this.injectCountdown = this.stamp & 0xf;
    this.firstLockMap = { name: wwClass.mutexName };
    const live = wwClass.liveContexts(task);
    const other = live[0];
    if (other !== undefined) {
      kernel.report(
        'ww-ctx-nested',
        `ww_acquire_init: ${task.toString()} already has a live acquire context of ww_class ${wwClass.name} (stamp ${other.stamp}); a second one (stamp ${this.stamp}) may deadlock against it (lockdep: recursive ${wwClass.acquireName})`,
      );
    }
    live.push(this);
    // The nested context is not shown to lockdep: its recursive report would repeat ours.
    this.lockdepTracked = other === undefined && kernel.lockdep.enabled;
    let held: HeldLock | null = null;
    if (this.lockdepTracked) {
      const ld = kernel.lockdep;
      held = ld.acquire(this, ld.classOf(wwClass.acquireName), 'write');
      ld.acquire(this.firstLockMap, ld.classOf(wwClass.mutexName), 'write');
    }
    const bus = kernel.bus;
    if (bus.wants('ww.acquire_init')) {
      const ev = bus.emit('ww.acquire_init', { class: wwClass.name, stamp: this.stamp });
      if (held !== null && ev !== undefined) held.seq = ev.seq;
    }
  }

  /** True after {@link WwAcquireCtx.done} (or {@link WwAcquireCtx.fini}): no more locks allowed. */
  get doneAcquire(): boolean {
    return this.doneFlag;
  }

  /** True after {@link WwAcquireCtx.fini}. */
  get finished(): boolean {
    return this.finiFlag;
  }

  /**
   * The ww_mutex whose `-EDEADLK` is pending (`ctx->contending_lock`): the only lock the next
   * lock call may take, once `acquired == 0`. Null when no back-off is pending.
   */
  get contendingLock(): WwMutex | null {
    return this.contending;
  }

  /** The ww_mutex the context's task is sleeping on with this context, or null. */
  get blockedOn(): WwMutex | null {
    return this.waiter === null ? null : this.waiter.lock;
  }

  /**
   * The fault-injection interval (`deadlock_inject_interval`): 1 at init, about 3.5× larger
   * after each injected `-EDEADLK`.
   */
  get deadlockInjectInterval(): number {
    return this.injectInterval;
  }

  /** Remaining successful multi-lock calls before the next injected `-EDEADLK` (with injection on). */
  get deadlockInjectCountdown(): number {
    return this.injectCountdown;
  }

  /**
   * `ww_acquire_done`: marks the end of the acquire phase. Optional; afterwards every lock call
   * with this context is reported (`ww-lock-after-done`). Calling it twice is reported.
   * @see ww_acquire_done
   */
  done(): void {
    this.checkTask('ww_acquire_done');
    if (this.doneFlag) {
      this.kernel.report(
        'ww-done-twice',
        `ww_acquire_done called twice on the acquire context (stamp ${this.stamp}) of ww_class ${this.wwClass.name}`,
      );
    }
    this.doneFlag = true;
  }

  /**
   * `ww_acquire_fini`: ends the transaction. It must be called by the task that initialised the
   * context (else `ww-fini-wrong-task`, and the context stays alive) once every ww_mutex is
   * unlocked (else `ww-fini-held`; invariant 57). A second fini is reported (`ww-fini-twice`).
   * @see ww_acquire_fini
   */
  fini(): void {
    const k = this.kernel;
    const me = k.scheduler.current;
    if (this.finiFlag) {
      k.report(
        'ww-fini-twice',
        `ww_acquire_fini called twice on the acquire context (stamp ${this.stamp}) of ww_class ${this.wwClass.name}`,
      );
      return;
    }
    if (me !== this.task) {
      k.report(
        'ww-fini-wrong-task',
        `ww_acquire_fini: ${me.toString()} finishes the acquire context (stamp ${this.stamp}) initialised by ${this.task.toString()}; only the initialising task may (invariant 57)`,
      );
      return;
    }
    if (this.acquired !== 0) {
      k.report(
        'ww-fini-held',
        `ww_acquire_fini: the acquire context (stamp ${this.stamp}) of ww_class ${this.wwClass.name} still holds ${this.acquired} ww_mutex(es); unlock them all first (DEBUG_LOCKS_WARN_ON(ctx->acquired), invariant 57)`,
      );
    }
    if (this.lockdepTracked) {
      k.lockdep.release(this.firstLockMap);
      k.lockdep.release(this);
    }
    const live = this.wwClass.liveContexts(this.task);
    const i = live.indexOf(this);
    if (i >= 0) live.splice(i, 1);
    this.finiFlag = true;
    this.doneFlag = true;
    if (k.bus.wants('ww.acquire_fini')) k.bus.emit('ww.acquire_fini', { stamp: this.stamp });
  }

  /** @internal Reports use of the context by a task other than its own (`ww-ctx-wrong-task`). */
  checkTask(what: string): void {
    const me = this.kernel.scheduler.current;
    if (me === this.task) return;
    this.kernel.report(
      'ww-ctx-wrong-task',
      `${what}: ${me.toString()} uses the acquire context (stamp ${this.stamp}) of ${this.task.toString()}; a context belongs to the task that initialised it`,
    );
  }

  /**
   * @internal The slow-path fault injection after a successful lock with `acquired > 1`
   * (`ww_mutex_deadlock_injection`): true when this call must be turned into -EDEADLK.
   */
  injectNow(): boolean {
    if (!this.inject) return false;
    if (this.injectCountdown-- !== 0) return false;
    const t = this.injectInterval;
    this.injectInterval = t > UINT_MAX / 4 ? UINT_MAX : t * 2 + t + Math.floor(t / 2);
    this.injectCountdown = this.injectInterval;
    return true;
  }
}

/**
 * A wound/wait mutex (`struct ww_mutex`): a sleeping lock that a transaction
 * ({@link WwAcquireCtx}) may take together with other ww_mutexes of its {@link WwClass} in **any
 * order**, without deadlocking. GPU drivers use it to reserve many buffer objects at once
 * (`dma_resv`).
 *
 * **How deadlock is avoided: stamp order.** Each transaction carries the stamp it drew at
 * `ww_acquire_init`; a smaller stamp is older. When two transactions collide, the **older one
 * wins and the younger one backs off**: its lock call returns `-EDEADLK`, it releases
 * every ww_mutex it holds, sleeps in {@link WwMutex.lockSlow} until the contended lock is free
 * (holding nothing, it cannot be told to back off there), and retries the rest **with the same
 * stamp**. Newer transactions are younger than it, so each retry it faces fewer elders and it
 * eventually becomes the oldest, which always gets through. No cycle of waiters can form because
 * a transaction holding locks only ever waits for a *younger* one (Wait-Die) or makes a younger
 * holder give way (Wound-Wait).
 *
 * This is **not priority inheritance** (a common misconception): nobody's priority is boosted
 * and the holder is never made to run on the waiter's behalf. The stamp is not a scheduling
 * priority at all — it only decides, at a collision, which transaction must release everything
 * and start over.
 *
 * The two algorithms (chosen by the class):
 * - **Wait-Die** (`DEFINE_WD_CLASS`): a requester holding locks that would wait behind an older
 *   context (the holder, or an older waiter) dies at once with `-EDEADLK`; it may wait for
 *   younger ones. Waiters it passes in the stamp-ordered queue that are younger and hold locks
 *   are woken so they die; a new holder wakes a younger lock-holding first waiter likewise.
 * - **Wound-Wait** (`DEFINE_WW_CLASS`): an older requester holding locks that waits for a
 *   younger holder *wounds* it (sets `wounded` and wakes it). Wounding is lazy: the victim backs
 *   off only when it next has to wait for a contended ww_mutex while holding locks; if it never
 *   does, it finishes normally. A younger task that takes a lock ahead of an older lock-holding
 *   waiter wounds itself.
 *
 * Context: `lock` and `lockSlow` may sleep (`might_sleep`), `tryLock` and the unlocks never do.
 * Waiters with a context are queued by stamp (oldest first), waiters without one FIFO. The
 * underlying mutex hands the lock over to the first waiter once it has waited and lost a race
 * (`MUTEX_FLAG_HANDOFF`), as the kernel's mutex does; optimistic spinning is not modelled.
 *
 * Debug checks (`CONFIG_DEBUG_WW_MUTEXES`/`PROVE_LOCKING`), each reported as a violation:
 * `ww-class-mismatch` (context of another class), `ww-lock-after-done`, `ww-ctx-wrong-task`
 * (context of another task), `ww-edeadlk-wrong-lock` (after -EDEADLK, a lock other than the
 * contended one), `ww-edeadlk-not-released` (the contended lock re-locked while `acquired > 0`),
 * `ww-slow-without-edeadlk`, `ww-double-edeadlk` (-EDEADLK while one is pending),
 * `ww-plain-unlock` and `ww-stale-ctx` (a ww_mutex released with plain `mutex_unlock`, and the
 * next acquisition finding the stale context), `ww-unlock-acquired-zero`, `ww-bad-unlock` (not
 * the owner), and on the context `ww-fini-held`, `ww-fini-wrong-task`, `ww-fini-twice`,
 * `ww-done-twice`, `ww-ctx-nested`.
 *
 * Lockdep: a ww_mutex taken with a context is nested under the context's fake `<class>_mutex`
 * lock (the kernel's `nest_lock` and `first_lock_dep_map`): it records no dependency of its own,
 * so taking ww_mutexes of a class in different orders is not an AB-BA report — stamps handle
 * that ordering — while the context's `<class>_acquire`/`<class>_mutex` locks, held from init to
 * fini, are still ordered against every other lock. A ww_mutex taken without a context is an
 * ordinary `write` acquisition of `<class>_mutex` (so mixing both in one task is reported as
 * recursive locking, as the kernel's lockdep does).
 *
 * Events: `ww.lock` when a lock call returns (`how` `'lock'`, `'slow'` or `'trylock'`; a failed
 * trylock records `-EBUSY`); `ww.wound` when a context's `wounded` flag is set and for each
 * Wait-Die "die" wake-up; `ww.unlock`. The context emits `ww.acquire_init` and
 * `ww.acquire_fini`.
 *
 * ## Example
 * The back-off loop of Documentation/locking/ww-mutex-design.rst:
 * ```ts
 * function* lockAll(kernel: Kernel, cls: WwClass, objs: WwMutex[]): TaskGen<WwAcquireCtx> {
 *   const ctx = new WwAcquireCtx(kernel, cls);       // ww_acquire_init
 *   let contended: WwMutex | null = null;
 *   for (;;) {
 *     const held: WwMutex[] = [];
 *     if (contended !== null) {
 *       yield* contended.lockSlow(ctx);               // holds nothing: sleeps, cannot die
 *       held.push(contended);
 *     }
 *     let lost: WwMutex | null = null;
 *     for (const m of objs) {
 *       if (m === contended) continue;
 *       if ((yield* m.lock(ctx)) === EDEADLK) { lost = m; break; }
 *       held.push(m);
 *     }
 *     if (lost === null) break;                       // all taken
 *     for (const m of held) m.unlock();               // back off: release everything …
 *     contended = lost;                               // … and wait for the lock we lost
 *   }
 *   ctx.done();                                       // ww_acquire_done
 *   return ctx; // later: unlock every object, then ctx.fini()
 * }
 * ```
 *
 * @see ww_mutex_lock
 * @see ww_mutex_lock_slow
 * @see ww_mutex_trylock
 * @see ww_mutex_unlock
 * @see Documentation/locking/ww-mutex-design.rst
 */
export class WwMutex {
  private holder: Task | null = null;
  private holderCtx: WwAcquireCtx | null = null;
  /** `MUTEX_FLAG_HANDOFF`: the first waiter asked for the lock to be handed to it. */
  private handoff = false;
  /** `MUTEX_FLAG_PICKUP`: the lock was handed to `holder`, who has not picked it up yet. */
  private pickup = false;
  /** True while the holder took it without a context, so lockdep holds this instance. */
  private lockdepHeld = false;
  private readonly waitList: WwWaiter[] = [];
  private readonly cls: LockClass;
  private readonly waitName: string;

  /**
   * `ww_mutex_init`.
   * @param kernel the kernel services.
   * @param name the lock's name, shown in events and reports.
   * @param wwClass its class; every ww_mutex of a class shares the lockdep class `<class>_mutex`.
   * @see ww_mutex_init
   */
  constructor(
    private readonly kernel: Kernel,
    readonly name: string,
    readonly wwClass: WwClass,
  ) {
    this.cls = kernel.lockdep.classOf(wwClass.mutexName);
    this.waitName = `ww_mutex ${name}`;
  }

  /** The owning task, or null when unlocked. */
  get owner(): Task | null {
    return this.holder;
  }

  /** The acquire context that holds the lock (`lock->ctx`), or null. */
  get ctx(): WwAcquireCtx | null {
    return this.holderCtx;
  }

  /** True while some task owns the lock (`ww_mutex_is_locked`). */
  isLocked(): boolean {
    return this.holder !== null;
  }

  /** Number of tasks waiting for the lock. */
  get waiterCount(): number {
    return this.waitList.length;
  }

  /**
   * `ww_mutex_lock(lock, ctx)`: takes the lock for the transaction `ctx`, sleeping while it is
   * held, or backs off. With `ctx === null` it is a plain mutex without deadlock avoidance
   * (returns 0 once acquired).
   *
   * Returns 0 when acquired; `-EALREADY` at once if `ctx` already holds it (`acquired`
   * unchanged); `-EDEADLK` when this transaction must back off — only ever while it holds
   * other locks, never with `acquired == 0` (apart from fault injection, which needs
   * `acquired > 1`). After `-EDEADLK` the caller must release all its ww_mutexes, then call
   * {@link WwMutex.lockSlow} on this lock.
   *
   * Context: may sleep; the caller must be the context's task.
   * @see ww_mutex_lock
   */
  *lock(ctx: WwAcquireCtx | null): TaskGen<number> {
    return yield* this.lockCommon(ctx, 'lock');
  }

  /**
   * `ww_mutex_lock_slow`: after `-EDEADLK` and releasing every lock, sleeps until this (the
   * contended) lock is acquired. Holding nothing, the transaction cannot be told to back off, so
   * it returns 0. (The kernel's version returns void; here the number is non-zero only after
   * misuse: called with locks still held, where it may still die.) Calling it when no
   * `-EDEADLK` is pending is reported (`ww-slow-without-edeadlk`).
   *
   * Context: may sleep.
   * @see ww_mutex_lock_slow
   */
  *lockSlow(ctx: WwAcquireCtx): TaskGen<number> {
    return yield* this.lockCommon(ctx, 'slow');
  }

  /**
   * `ww_mutex_trylock`: takes the lock if it is free, without any deadlock handling; never
   * sleeps. With a context it clears `wounded` when `acquired == 0`, records the context on
   * success and checks the waiters as a fast-path lock does.
   * @see ww_mutex_trylock
   */
  tryLock(ctx: WwAcquireCtx | null = null): boolean {
    const k = this.kernel;
    const me = k.scheduler.current;
    if (ctx !== null && ctx.acquired === 0) ctx.wounded = false;
    if (!this.tryAcquire(me, false)) {
      this.noteLock(ctx, 'trylock', EBUSY, null);
      return false;
    }
    let held: HeldLock | null = null;
    if (ctx === null) {
      held = k.lockdep.acquire(this, this.cls, 'write', { trylock: true });
      this.lockdepHeld = true;
    } else {
      this.checkCall(ctx, 'trylock');
      this.lockAcquired(ctx);
      if (this.waitList.length > 0) this.checkWaiters(ctx);
    }
    this.noteLock(ctx, 'trylock', 0, held);
    return true;
  }

  /**
   * `ww_mutex_unlock`: clears the lock's context (decrementing its `acquired`; a context already
   * at 0 is reported as `ww-unlock-acquired-zero`), releases the lock, and wakes the first
   * waiter (handing the lock to it if it asked for a hand-off). Only the owner may unlock
   * (`ww-bad-unlock`). Never sleeps.
   * @see ww_mutex_unlock
   */
  unlock(): void {
    if (!this.checkUnlock('ww_mutex_unlock')) return;
    const ctx = this.holderCtx;
    if (ctx !== null) {
      if (ctx.acquired === 0) {
        this.kernel.report(
          'ww-unlock-acquired-zero',
          `ww_mutex_unlock(${this.name}): its acquire context (stamp ${ctx.stamp}) has acquired == 0 (DEBUG_LOCKS_WARN_ON(!lock->ctx->acquired)): the context was corrupted or re-initialised while holding locks`,
        );
      } else {
        ctx.acquired--;
      }
      this.holderCtx = null;
    }
    this.releaseBase();
    const bus = this.kernel.bus;
    if (bus.wants('ww.unlock')) {
      bus.emit('ww.unlock', { lock: this.name, stamp: ctx === null ? -1 : ctx.stamp });
    }
  }

  /**
   * The misuse path `mutex_unlock(&ww->base)`: releases the underlying mutex **without**
   * clearing the lock's context. If a context holds the lock this is reported at once
   * (`ww-plain-unlock`); as in the kernel the stale context stays on the lock (and in the
   * context's `acquired`) until the next acquisition reports it (`ww-stale-ctx`). For a
   * ww_mutex taken without a context it is a plain unlock. Never sleeps.
   * @see mutex_unlock
   */
  plainUnlock(): void {
    if (!this.checkUnlock('mutex_unlock')) return;
    const ctx = this.holderCtx;
    if (ctx !== null) {
      this.kernel.report(
        'ww-plain-unlock',
        `mutex_unlock(${this.name}) on a ww_mutex held by the acquire context (stamp ${ctx.stamp}): a ww_mutex taken with a context must be released with ww_mutex_unlock (the context stays on the lock)`,
      );
    }
    this.releaseBase();
    const bus = this.kernel.bus;
    if (bus.wants('ww.unlock')) bus.emit('ww.unlock', { lock: this.name, stamp: -1 });
  }

  // ---------------------------------------------------------------------------------------
  // The lock path (kernel/locking/mutex.c __mutex_lock_common with a ww_ctx, ww_mutex.h).
  // Code between two yields is atomic, which stands for the kernel's wait_lock.

  private *lockCommon(ctx: WwAcquireCtx | null, how: 'lock' | 'slow'): TaskGen<number> {
    const k = this.kernel;
    k.mightSleep(`${how === 'slow' ? 'ww_mutex_lock_slow' : 'ww_mutex_lock'}(${this.name})`);
    const me = k.scheduler.current;
    let held: HeldLock | null = null;
    if (ctx !== null) {
      this.checkCall(ctx, how);
      // 1. Already ours: a normal result, no warning.
      if (this.holderCtx === ctx) return this.noteLock(ctx, how, EALREADY, null);
      // 2. Holding nothing, a context cannot be wounded: reset after a back-off.
      if (ctx.acquired === 0) ctx.wounded = false;
    } else {
      held = k.lockdep.acquire(this, this.cls, 'write');
    }
    const ret = yield* this.acquire(me, ctx);
    if (ret !== 0) return this.noteLock(ctx, how, ret, null);
    if (ctx === null) this.lockdepHeld = true;
    // ww_mutex_lock (debug): fault injection after a successful lock with acquired > 1.
    if (ctx !== null && ctx.acquired > 1 && ctx.injectNow()) {
      ctx.contending = this;
      ctx.acquired--;
      this.holderCtx = null;
      this.releaseBase();
      return this.noteLock(ctx, how, EDEADLK, null);
    }
    return this.noteLock(ctx, how, 0, held);
  }

  /** Acquires the base mutex with the ww rules; returns 0 or -EDEADLK. */
  private *acquire(me: Task, ctx: WwAcquireCtx | null): TaskGen<number> {
    // 3. Fast path (and the retry under wait_lock, the same thing here).
    if (this.tryAcquire(me, false)) {
      if (ctx !== null) {
        this.lockAcquired(ctx);
        if (this.waitList.length > 0) this.checkWaiters(ctx);
      }
      return 0;
    }
    // 4. Slow path: queue (stamp order for contexts, FIFO otherwise).
    const holders = (): readonly Task[] => (this.holder === null ? [] : [this.holder]);
    const w: WwWaiter = {
      task: me,
      ctx,
      lock: this,
      queue: new WaitQueue(this.kernel.scheduler, this.waitName, holders),
    };
    if (ctx === null) this.waitList.push(w);
    else {
      const r = this.addWaiter(w, ctx);
      if (r !== 0) return r;
    }
    // 5. The wait loop: take the lock, else the kill check, else sleep.
    for (;;) {
      if (this.tryAcquire(me, false)) break;
      if (ctx !== null) {
        const r = this.checkKill(w, ctx);
        if (r !== 0) {
          this.removeWaiter(w);
          return r;
        }
        ctx.waiter = w;
      }
      yield* w.queue.wait();
      if (ctx !== null) ctx.waiter = null;
      if (this.tryAcquire(me, this.waitList[0] === w)) break;
    }
    // 6. Wound-Wait: we took it ahead of earlier waiters, one of them may wound us.
    if (ctx !== null && !ctx.isWaitDie && this.waitList[0] !== w) this.checkWaiters(ctx);
    this.removeWaiter(w);
    if (ctx !== null) this.lockAcquired(ctx);
    return 0;
  }

  /**
   * `__mutex_trylock_common`: takes a free lock, picks up a hand-over made to `me`, or (as the
   * first waiter after a wake-up, `handoff`) asks the holder to hand the lock over.
   */
  private tryAcquire(me: Task, handoff: boolean): boolean {
    if (this.holder === null) {
      this.holder = me;
      return true;
    }
    if (this.pickup) {
      if (this.holder !== me) return false;
      this.pickup = false;
      return true;
    }
    if (handoff) this.handoff = true;
    return false;
  }

  /** `__mutex_unlock_slowpath`: free the lock (or hand it to the first waiter) and wake it. */
  private releaseBase(): void {
    if (this.lockdepHeld) {
      this.lockdepHeld = false;
      this.kernel.lockdep.release(this);
    }
    const first = this.waitList[0];
    if (this.handoff && first !== undefined) {
      this.holder = first.task;
      this.pickup = true;
    } else {
      this.holder = null;
    }
    this.handoff = false;
    if (first !== undefined) first.queue.wakeAll();
  }

  private removeWaiter(w: WwWaiter): void {
    const i = this.waitList.indexOf(w);
    if (i >= 0) this.waitList.splice(i, 1);
    if (this.waitList.length === 0) this.handoff = false;
  }

  /**
   * `__ww_mutex_add_waiter`: insert before the first younger context waiter, walking back from
   * the tail; contextless waiters are skipped (left in place, never starved).
   */
  private addWaiter(w: WwWaiter, ctx: WwAcquireCtx): number {
    const list = this.waitList;
    let pos = -1;
    for (let i = list.length - 1; i >= 0; i--) {
      const cur = list[i]!;
      if (cur.ctx === null) continue;
      if (younger(ctx, cur.ctx)) {
        // Wait-Die: an older context waits already; queueing behind it is pointless.
        if (ctx.isWaitDie) {
          const r = this.kill(ctx);
          if (r !== 0) return r;
        }
        break;
      }
      pos = i;
      // Wait-Die: the younger lock-holding waiters we pass must die.
      this.die(cur, ctx);
    }
    if (pos < 0) list.push(w);
    else list.splice(pos, 0, w);
    // Wound-Wait: blocking on a younger holder wounds it.
    if (!ctx.isWaitDie) this.wound(ctx, this.holderCtx);
    return 0;
  }

  /** `__ww_mutex_check_kill`, called in the wait loop after a failed trylock. */
  private checkKill(w: WwWaiter, ctx: WwAcquireCtx): number {
    if (ctx.acquired === 0) return 0;
    if (!ctx.isWaitDie) return ctx.wounded ? this.kill(ctx) : 0;
    const hold = this.holderCtx;
    if (hold !== null && younger(ctx, hold)) return this.kill(ctx);
    // Any context waiter ahead of us is older (the list is sorted): die.
    const list = this.waitList;
    for (let i = list.indexOf(w) - 1; i >= 0; i--) {
      if (list[i]!.ctx !== null) return this.kill(ctx);
    }
    return 0;
  }

  /** `__ww_mutex_kill`: back off with -EDEADLK if holding locks; remembers the contended lock. */
  private kill(ctx: WwAcquireCtx): number {
    if (ctx.acquired === 0) return 0;
    if (ctx.contending !== null) {
      this.kernel.report(
        'ww-double-edeadlk',
        `ww_mutex_lock(${this.name}): -EDEADLK again for the acquire context (stamp ${ctx.stamp}) while the -EDEADLK on ${ctx.contending.name} is still pending (DEBUG_LOCKS_WARN_ON(ctx->contending_lock)): back off first`,
      );
    }
    ctx.contending = this;
    return EDEADLK;
  }

  /**
   * `__ww_mutex_die` (Wait-Die only): wake waiter `w` if it is younger than `ctx` and holds
   * locks, so it dies in its kill check. Returns true for a Wait-Die context (act on one only).
   */
  private die(w: WwWaiter, ctx: WwAcquireCtx): boolean {
    if (!ctx.isWaitDie) return false;
    const wctx = w.ctx!;
    if (wctx.acquired > 0 && younger(wctx, ctx)) {
      const bus = this.kernel.bus;
      if (bus.wants('ww.wound')) bus.emit('ww.wound', { victim: wctx.stamp, by: ctx.stamp });
      w.queue.wakeAll();
    }
    return true;
  }

  /**
   * `__ww_mutex_wound` (Wound-Wait): if `ctx` holds locks and `hold` is younger, wound `hold`
   * and wake its task unless it is the running one. Returns true when it wounded.
   */
  private wound(ctx: WwAcquireCtx, hold: WwAcquireCtx | null): boolean {
    if (hold === null) return false;
    const owner = this.holder;
    if (owner === null) return false;
    if (ctx.acquired > 0 && younger(hold, ctx)) {
      if (!hold.wounded) {
        hold.wounded = true;
        const bus = this.kernel.bus;
        if (bus.wants('ww.wound')) bus.emit('ww.wound', { victim: hold.stamp, by: ctx.stamp });
      }
      const sleeping = hold.waiter;
      if (owner !== this.kernel.scheduler.current && sleeping !== null && sleeping.task === owner) {
        sleeping.queue.wakeAll();
      }
      return true;
    }
    return false;
  }

  /**
   * `__ww_mutex_check_waiters`, run by a new holder: the first context waiter that matters is
   * acted on — Wait-Die wakes it to die if it is younger and holds locks; Wound-Wait wounds us
   * if it is older and holds locks.
   */
  private checkWaiters(ctx: WwAcquireCtx): void {
    for (const cur of this.waitList) {
      if (cur.ctx === null) continue;
      if (this.die(cur, ctx) || this.wound(cur.ctx, ctx)) break;
    }
  }

  /** `ww_mutex_lock_acquired`: the stale-context check, then record the context. */
  private lockAcquired(ctx: WwAcquireCtx): void {
    const stale = this.holderCtx;
    if (stale !== null) {
      this.kernel.report(
        'ww-stale-ctx',
        `ww_mutex ${this.name} acquired while lock->ctx still points to the acquire context (stamp ${stale.stamp}): it was released with mutex_unlock instead of ww_mutex_unlock (DEBUG_LOCKS_WARN_ON(ww->ctx))`,
      );
    }
    ctx.contending = null;
    ctx.acquired++;
    this.holderCtx = ctx;
  }

  /** The debug checks made on a lock call with a context (reported once per call). */
  private checkCall(ctx: WwAcquireCtx, how: 'lock' | 'slow' | 'trylock'): void {
    const k = this.kernel;
    const fn =
      how === 'slow'
        ? 'ww_mutex_lock_slow'
        : how === 'trylock'
          ? 'ww_mutex_trylock'
          : 'ww_mutex_lock';
    ctx.checkTask(`${fn}(${this.name})`);
    if (ctx.wwClass !== this.wwClass) {
      k.report(
        'ww-class-mismatch',
        `${fn}(${this.name}): the acquire context (stamp ${ctx.stamp}) is of ww_class ${ctx.wwClass.name} but the ww_mutex is of ww_class ${this.wwClass.name} (DEBUG_LOCKS_WARN_ON(ww_ctx->ww_class != ww->ww_class))`,
      );
    }
    if (ctx.doneAcquire) {
      k.report(
        'ww-lock-after-done',
        `${fn}(${this.name}) with an acquire context (stamp ${ctx.stamp}) after ${ctx.finished ? 'ww_acquire_fini' : 'ww_acquire_done'}: the acquire phase is over`,
      );
    }
    const c = ctx.contending;
    if (c !== null && c !== this) {
      k.report(
        'ww-edeadlk-wrong-lock',
        `${fn}(${this.name}) after -EDEADLK on ${c.name}: the only legal next lock is the contended ${c.name} (invariant 56)`,
      );
    } else if (c !== null && ctx.acquired > 0) {
      k.report(
        'ww-edeadlk-not-released',
        `${fn}(${this.name}) after -EDEADLK while the acquire context (stamp ${ctx.stamp}) still holds ${ctx.acquired} ww_mutex(es): release them all first (invariant 56)`,
      );
    }
    if (how === 'slow' && c === null) {
      k.report(
        'ww-slow-without-edeadlk',
        `ww_mutex_lock_slow(${this.name}) with no -EDEADLK pending on the acquire context (stamp ${ctx.stamp}) (DEBUG_LOCKS_WARN_ON(!ctx->contending_lock))`,
      );
    }
  }

  /** Owner check shared by both unlocks. */
  private checkUnlock(fn: string): boolean {
    const me = this.kernel.scheduler.currentOrNull;
    if (this.holder !== null && this.holder === me && !this.pickup) return true;
    this.kernel.report(
      'ww-bad-unlock',
      `${fn}(${this.name}): ${me?.toString() ?? 'no task'} unlocks a ww_mutex held by ${this.holder?.toString() ?? 'nobody'} (DEBUG_LOCKS_WARN_ON(owner != current))`,
    );
    return false;
  }

  /** Emits `ww.lock` for a returning lock call and returns `result`. */
  private noteLock(
    ctx: WwAcquireCtx | null,
    how: 'lock' | 'slow' | 'trylock',
    result: number,
    held: HeldLock | null,
  ): number {
    const bus = this.kernel.bus;
    if (bus.wants('ww.lock')) {
      const ev = bus.emit('ww.lock', {
        lock: this.name,
        stamp: ctx === null ? -1 : ctx.stamp,
        result,
        how,
      });
      if (held !== null && ev !== undefined) held.seq = ev.seq;
    }
    return result;
  }
}
