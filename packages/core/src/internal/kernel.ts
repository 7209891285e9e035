import type { EventBus } from './bus.js';
import type { Clock } from './clock.js';
import type { Lockdep } from './lockdep/lockdep.js';
import type { OracleRegistry, Violation, ViolationReport } from './oracle.js';
import type { RandomSource } from './random.js';
import type { Scheduler } from './scheduler.js';
import type { Task } from './task.js';

/**
 * GFP flag bits (`gfp_t`), for {@link Kernel.mightAlloc}. Combine them, or use the named masks
 * ({@link GFP_KERNEL} …).
 */
export const Gfp = {
  /** `__GFP_DIRECT_RECLAIM`: the caller may enter direct reclaim (and so may sleep). */
  DIRECT_RECLAIM: 1,
  /** `__GFP_KSWAPD_RECLAIM`: wake kswapd when low on memory. */
  KSWAPD_RECLAIM: 2,
  /** `__GFP_IO`: reclaim may start physical I/O. */
  IO: 4,
  /** `__GFP_FS`: reclaim may call into the filesystem. */
  FS: 8,
  /** `__GFP_HIGH`: may use emergency reserves. */
  HIGH: 16,
  /** `__GFP_NOLOCKDEP`: skip the reclaim lockdep annotations. */
  NOLOCKDEP: 32,
} as const;

/** `GFP_KERNEL`: may sleep, may reclaim with I/O and filesystem calls. */
export const GFP_KERNEL = Gfp.DIRECT_RECLAIM | Gfp.KSWAPD_RECLAIM | Gfp.IO | Gfp.FS;
/** `GFP_NOFS`: may sleep and reclaim, but not call into the filesystem. */
export const GFP_NOFS = Gfp.DIRECT_RECLAIM | Gfp.KSWAPD_RECLAIM | Gfp.IO;
/** `GFP_NOIO`: may sleep and reclaim, without I/O. */
export const GFP_NOIO = Gfp.DIRECT_RECLAIM | Gfp.KSWAPD_RECLAIM;
/** `GFP_NOWAIT`: never sleeps, never enters direct reclaim. */
export const GFP_NOWAIT = Gfp.KSWAPD_RECLAIM;
/** `GFP_ATOMIC`: never sleeps; may use reserves. */
export const GFP_ATOMIC = Gfp.HIGH | Gfp.KSWAPD_RECLAIM;

/** The name of the lockdep map held across direct reclaim (`__fs_reclaim_map`). */
export const FS_RECLAIM_MAP = 'fs_reclaim';
/** The name of the lockdep map for "inside invalidate_range_start/end" (`__mmu_notifier_invalidate_range_start_map`). */
export const MMU_NOTIFIER_START_MAP = 'mmu_notifier_invalidate_range_start';

/** Per-task allocation scopes (`memalloc_noreclaim_save`, `memalloc_nofs_save`, `memalloc_noio_save`). */
export type AllocScope = 'noreclaim' | 'nofs' | 'noio';

/**
 * The kernel services every primitive and model needs, in one object: the scheduler, clock,
 * bus, lockdep, oracle registry and random source, plus the context checks the kernel's debug
 * options make (`might_sleep`, `might_alloc`). Locks, SRCU domains and wait queues take it in
 * their constructor; plugins get it injected (`sim.kernel`).
 *
 * ## Example
 * ```ts
 * const lock = new SpinLock(sim.kernel, 'dev->lock');
 * sim.spawn('t', 0, function* () {
 *   yield* lock.lock();
 *   sim.kernel.mightAlloc(GFP_KERNEL, 'kmalloc'); // reported: may sleep under a spinlock
 *   lock.unlock();
 * });
 * ```
 */
export class Kernel {
  private readonly scopes: number[][] = [];

  /** The scheduler. */
  readonly scheduler: Scheduler;
  /** The virtual clock. */
  readonly clock: Clock;
  /** The event bus. */
  readonly bus: EventBus;
  /** Where violations go. */
  readonly oracles: OracleRegistry;
  /** The lock validator. */
  readonly lockdep: Lockdep;
  /** The seeded random source. */
  readonly random: RandomSource;

  /**
   * Built by the simulation.
   * @internal
   */
  constructor(
    scheduler: Scheduler,
    clock: Clock,
    bus: EventBus,
    oracles: OracleRegistry,
    lockdep: Lockdep,
    random: RandomSource,
  ) {
    this.scheduler = scheduler;
    this.clock = clock;
    this.bus = bus;
    this.oracles = oracles;
    this.lockdep = lockdep;
    this.random = random;
  }

  /** The running task (only inside a task). */
  get current(): Task {
    return this.scheduler.current;
  }

  /** Reports a violation found by model code (a `WARN_ON` or a debug check). */
  report(
    kind: string,
    message: string,
    extra?: Omit<ViolationReport, 'kind' | 'message'>,
  ): Violation {
    return this.oracles.report('kernel', { kind, message, ...extra });
  }

  /**
   * Reports `sleep-in-atomic` if the current task is in atomic or no-sleep context: the check
   * `might_sleep()` makes at the top of every function that may sleep, whether or not it then
   * does.
   *
   * @param what the function that may sleep, for the report.
   * @see might_sleep
   */
  mightSleep(what: string): void {
    this.scheduler.checkMaySleep(what);
  }

  /**
   * The checks an allocation with `gfp` makes before allocating (`might_alloc`): a blocking
   * allocation must not be made in atomic context, and one that may enter direct reclaim
   * acquires the `fs_reclaim` lockdep map (when `__GFP_FS` is set) and touches the
   * `mmu_notifier_invalidate_range_start` map — so a lock held here and also taken inside a
   * notifier callback is reported as a possible deadlock. Per-task scopes
   * ({@link Kernel.allocScope}) clear `__GFP_FS`/`__GFP_IO` or disable reclaim, as
   * `current_gfp_context()` does.
   *
   * @param gfp the allocation flags ({@link GFP_KERNEL}, {@link GFP_NOWAIT} …).
   * @param what what is allocated, for reports.
   * @see might_alloc
   * @see fs_reclaim_acquire
   */
  mightAlloc(gfp: number, what = 'allocation'): void {
    const task = this.scheduler.current;
    const scopes = this.scopes[task.id];
    let flags = gfp;
    let noreclaim = false;
    if (scopes !== undefined) {
      if (scopes[0]! > 0) noreclaim = true;
      if (scopes[2]! > 0) flags &= ~(Gfp.IO | Gfp.FS);
      else if (scopes[1]! > 0) flags &= ~Gfp.FS;
    }
    if ((flags & Gfp.DIRECT_RECLAIM) === 0) return;
    this.scheduler.checkMaySleep(`${what} (blocking GFP flags)`);
    if (noreclaim || (flags & Gfp.NOLOCKDEP) !== 0) return;
    const ld = this.lockdep;
    if (!ld.enabled) return;
    const fsReclaim = ld.map(FS_RECLAIM_MAP);
    if ((flags & Gfp.FS) !== 0) fsReclaim.acquire();
    ld.map(MMU_NOTIFIER_START_MAP).touch();
    if ((flags & Gfp.FS) !== 0) fsReclaim.release();
  }

  /**
   * Enters an allocation scope for the current task (`memalloc_*_save`); returns the function
   * that leaves it (`memalloc_*_restore`).
   */
  allocScope(scope: AllocScope): () => void {
    const task = this.scheduler.current;
    let s = this.scopes[task.id];
    if (s === undefined) {
      s = [0, 0, 0];
      this.scopes[task.id] = s;
    }
    const i = scope === 'noreclaim' ? 0 : scope === 'nofs' ? 1 : 2;
    s[i]!++;
    return () => {
      s[i]!--;
    };
  }

  /** Disables preemption (`preempt_disable`); `reason` names the section in reports. */
  preemptDisable(reason = 'preempt_disable'): void {
    this.scheduler.preemptDisable(reason);
  }

  /** Re-enables preemption (`preempt_enable`). */
  preemptEnable(): void {
    this.scheduler.preemptEnable();
  }

  /**
   * Disables local interrupts (`local_irq_save`): atomic context, and no interrupt work
   * (tasks spawned with `interrupt: true`) runs on this CPU until {@link Kernel.localIrqRestore}.
   */
  localIrqSave(): void {
    this.scheduler.preemptDisable('local_irq_save (interrupts disabled)');
    this.scheduler.current.irqsOff++;
  }

  /** Re-enables local interrupts (`local_irq_restore`). */
  localIrqRestore(): void {
    const t = this.scheduler.current;
    if (t.irqsOff > 0) t.irqsOff--;
    this.scheduler.preemptEnable();
  }

  /**
   * Enters a section where sleeping is a bug but preemption is allowed (`non_block_start`),
   * as around non-blockable notifier callbacks.
   * @see non_block_start
   */
  nonBlockStart(reason = 'non_block_start'): void {
    this.scheduler.enterNoSleep(reason);
  }

  /** Leaves the innermost {@link Kernel.nonBlockStart} section (`non_block_end`). */
  nonBlockEnd(): void {
    this.scheduler.leaveNoSleep();
  }
}
