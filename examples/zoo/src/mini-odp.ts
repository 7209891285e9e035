/**
 * A minimal on-demand-paging driver in the style of RDMA ODP (`umem_odp.c`, mlx5 `odp.c`): one
 * memory region over a range of a process, a device page table (the MTT) filled on device page
 * faults through the interval-notifier collision-retry protocol (notifier-core.md §4.4), and
 * DMA reads through it. Bug flags turn it into the zoo's broken ODP variants.
 */
import {
  definePlugin,
  Errno,
  GFP_KERNEL,
  GFP_NOWAIT,
  Kernel,
  Mutex,
  serviceId,
} from '@mmnsim/core';
import type { Plugin, TaskGen } from '@mmnsim/core';
import {
  HmmPfn,
  hmmPfnToPfn,
  hmmRangeFault,
  MmService,
  MmuIntervalNotifier,
  MmuNotifierSubsystem,
  mmgetNotZero,
  mmput,
  PAGE_SIZE,
  SecondaryMmuContribution,
  SecondaryMmuEvents,
} from '@mmnsim/mm';
import type {
  MmCore,
  MmStruct,
  NotifierRange,
  Process,
  SecondaryMapping,
  SecondaryMmu,
} from '@mmnsim/mm';
import { ContainerModule } from 'inversify';
import { z } from 'zod';

/**
 * The ODP bugs the zoo plants; `'none'` is the correct driver. Each breaks one kernel rule:
 * - `no-read-retry`: programs the MTT without `mmu_interval_read_retry`, so a snapshot that an
 *   invalidation overtook is installed (notifier-core.md §4.4 F5, §4.5; users-and-hardware.md
 *   §7 scenario 17).
 * - `read-retry-outside-lock`: checks `mmu_interval_read_retry` before taking `umem_mutex`,
 *   leaving a window between check and install (notifier-core.md §4.3, invariant 40).
 * - `conditional-set-seq`: calls `mmu_interval_set_seq` only when the MR has mapped pages in the
 *   range, so a concurrent fault's snapshot stays valid (notifier-core.md §4.3, invariant 39).
 * - `mtt-after-unlock`: checks under the lock but writes the MTT after dropping it
 *   (notifier-core.md §4.4 F5–F7; users-and-hardware.md §7 scenario 17).
 * - `remove-from-invalidate`: calls `mmu_interval_notifier_remove` from its own `invalidate`
 *   (notifier-core.md §4.3, invariant 42).
 * - `lock-across-reclaim`: allocates with `GFP_KERNEL` while holding `umem_mutex`, the lock its
 *   invalidate takes, so reclaim can recurse into it (notifier-core.md §5.3, invariant 38).
 */
export const ODP_BUGS = [
  'none',
  'no-read-retry',
  'read-retry-outside-lock',
  'conditional-set-seq',
  'mtt-after-unlock',
  'remove-from-invalidate',
  'lock-across-reclaim',
] as const;

/** One of {@link ODP_BUGS}. */
export type OdpBug = (typeof ODP_BUGS)[number];

/** One MTT entry of the mini ODP device (a {@link SecondaryMapping}). */
export interface MttEntry {
  /** The process's mm. */
  readonly mm: MmStruct;
  /** Virtual address of the page. */
  readonly va: number;
  /** The frame the device reaches. */
  readonly pfn: number;
  /** The frame's allocation generation at snapshot time. */
  readonly gen: number;
  /** Whether the device may write. */
  readonly writable: boolean;
}

/**
 * The mini ODP device: one MR, its MTT, `umem_mutex`, and an interval subscription over the MR.
 * It is a `'shadow'` secondary MMU, so the notifier oracles check its mappings.
 */
export class MiniOdp implements SecondaryMmu {
  /** See {@link SecondaryMmu.name}. */
  readonly name = 'mini-odp';
  /** See {@link SecondaryMmu.kind}. */
  readonly kind = 'shadow' as const;
  /** The MTT: virtual page → translation. */
  readonly mtt = new Map<number, MttEntry>();
  /** `umem_odp->umem_mutex`. */
  readonly lock: Mutex;
  /** Device page faults that had to retry (collisions seen by `read_retry`). */
  retries = 0;
  private readonly ev: SecondaryMmuEvents;
  private readonly sub: MmuIntervalNotifier;
  private mm: MmStruct | null = null;

  /**
   * @param kernel the kernel services.
   * @param core the memory model.
   * @param mmn the notifier subsystem.
   * @param bug the planted bug (`'none'`: the correct driver).
   */
  constructor(
    private readonly kernel: Kernel,
    private readonly core: MmCore,
    private readonly mmn: MmuNotifierSubsystem,
    readonly bug: OdpBug,
  ) {
    this.lock = new Mutex(kernel, 'umem_odp->umem_mutex');
    this.ev = new SecondaryMmuEvents(kernel, this.name);
    this.sub = new MmuIntervalNotifier({
      name: 'mini-odp',
      invalidate: (s, r, seq) => this.invalidate(s, r, seq),
    });
  }

  /** See {@link SecondaryMmu.mappings}. */
  *mappings(mm?: MmStruct): Iterable<SecondaryMapping> {
    for (const e of this.mtt.values()) if (mm === undefined || e.mm === mm) yield e;
  }

  /** Registers the MR over `[start, start + length)` of `proc` (`ib_umem_odp_get`). */
  *register(proc: Process, start: number, length: number): TaskGen<number> {
    this.mm = proc.mm;
    return yield* this.mmn.intervalInsert(this.sub, proc.mm, start, length);
  }

  /** Deregisters the MR (`ib_umem_odp_release`): no invalidate runs after this returns. */
  *deregister(): TaskGen<void> {
    yield* this.mmn.intervalRemove(this.sub);
  }

  /**
   * The device page fault for one page (`pagefault_real_mr`): F1–F7 of notifier-core.md §4.4.
   * Returns true if the page is now mapped.
   */
  *fault(va: number): TaskGen<boolean> {
    const mm = this.mm!;
    const { mmn, sub } = this;
    if (!mmgetNotZero(mm)) return false;
    for (let tries = 0; tries < 8; tries++) {
      const seq = yield* mmn.readBegin(sub);
      yield* mm.mmapLock.downRead();
      const pfns: number[] = [0]; // one entry per page: the request in, the snapshot out
      const r = yield* hmmRangeFault(this.core, {
        mm,
        start: va,
        end: va + PAGE_SIZE,
        hmmPfns: pfns,
        defaultFlags: HmmPfn.REQ_FAULT,
        pfnFlagsMask: 0,
        notifierSeqChanged: () => mmn.checkRetry(sub, seq),
      });
      // The snapshot is what the device will be programmed with: remember which allocation of the
      // frame it saw, so a frame freed and reused before programming is recognised as stale.
      const snapPfn = r === 0 ? hmmPfnToPfn(pfns[0]!) : 0;
      const snapGen = r === 0 ? this.core.phys.generation[snapPfn]! : 0;
      mm.mmapLock.upRead();
      if (r === -Errno.EBUSY) continue;
      if (r !== 0) break;
      yield* this.kernel.scheduler.preempt(); // the snapshot may go stale before we lock
      const earlyRetry = this.bug === 'read-retry-outside-lock' ? mmn.readRetry(sub, seq) : false;
      yield* this.lock.lock();
      const retry =
        this.bug === 'no-read-retry'
          ? false
          : this.bug === 'read-retry-outside-lock'
            ? earlyRetry
            : mmn.readRetry(sub, seq);
      if (retry) {
        this.retries++;
        this.lock.unlock();
        continue;
      }
      // An MTT page for the new entry: under umem_mutex it must not enter direct reclaim, since
      // reclaim can call our invalidate, which takes umem_mutex (notifier-core.md §5.3).
      this.kernel.mightAlloc(
        this.bug === 'lock-across-reclaim' ? GFP_KERNEL : GFP_NOWAIT,
        'mtt page',
      );
      const writable = (pfns[0]! & HmmPfn.WRITE) !== 0;
      if (this.bug === 'mtt-after-unlock') {
        this.lock.unlock();
        yield* this.kernel.scheduler.preempt();
        this.program(mm, va, snapPfn, snapGen, writable);
      } else {
        this.program(mm, va, snapPfn, snapGen, writable);
        this.lock.unlock();
      }
      yield* mmput(this.core, mm);
      return true;
    }
    yield* mmput(this.core, mm);
    return false;
  }

  private program(mm: MmStruct, va: number, pfn: number, gen: number, writable: boolean): void {
    this.mtt.set(va, { mm, va, pfn, gen, writable });
    this.ev.map(mm, va, pfn, gen, writable);
  }

  /** A device DMA read of the first word of `va`'s page, faulting the page in as needed. */
  *dmaRead(va: number): TaskGen<number> {
    for (let tries = 0; tries < 4; tries++) {
      const e = this.mtt.get(va);
      if (e !== undefined) {
        this.ev.access(e.mm, va, e.pfn, e.gen, false);
        return this.core.phys.read(e.pfn, 0);
      }
      if (!(yield* this.fault(va))) return -Errno.EFAULT;
    }
    return -Errno.EFAULT;
  }

  /** The interval op (`mlx5_ib_invalidate_range`): I1–I4 of notifier-core.md §4.4. */
  private *invalidate(
    s: MmuIntervalNotifier,
    range: NotifierRange,
    curSeq: number,
  ): TaskGen<boolean> {
    if (range.blockable) yield* this.lock.lock();
    else if (!this.lock.tryLock()) return false;
    let any = false;
    for (const va of this.mtt.keys()) if (va >= range.start && va < range.end) any = true;
    if (this.bug !== 'conditional-set-seq' || any) this.mmn.setSeq(s, curSeq);
    for (const [va, e] of [...this.mtt]) {
      if (va < range.start || va >= range.end) continue;
      this.mtt.delete(va);
      this.ev.unmap(e.mm, va);
    }
    yield* this.kernel.scheduler.preempt(); // waiting for the device-side invalidation to complete
    if (this.bug === 'remove-from-invalidate') yield* this.mmn.intervalRemove(s);
    this.lock.unlock();
    return true;
  }
}

/** Token of the mini ODP device. */
export const MiniOdpDevice = serviceId<MiniOdp>('@mmnsim/zoo:MiniOdp');
const MiniOdpOptions = serviceId<{ bug: OdpBug }>('@mmnsim/zoo:MiniOdpOptions');

const factory = definePlugin({
  id: 'mini-odp',
  requires: ['mm'],
  schema: z.strictObject({ bug: z.enum(ODP_BUGS).default('none') }),
  token: MiniOdpOptions,
  module: new ContainerModule(({ bind }) => {
    bind(MiniOdpDevice)
      .toResolvedValue(
        (o: { bug: OdpBug }, k: Kernel, m: MmService, n: MmuNotifierSubsystem) =>
          new MiniOdp(k, m.core, n, o.bug),
        [MiniOdpOptions, Kernel, MmService, MmuNotifierSubsystem],
      )
      .inSingletonScope();
    bind(SecondaryMmuContribution).toService(MiniOdpDevice);
  }),
});

/**
 * The mini ODP driver as a plugin; `bug` plants one of {@link ODP_BUGS}.
 * @param options `{ bug }` (default `'none'`).
 */
export function miniOdpPlugin(options?: { bug?: OdpBug }): Plugin {
  return factory(options);
}
