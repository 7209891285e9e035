/**
 * A minimal KVM-style secondary MMU (kvm_main.c's notifier handlers, users-and-hardware.md §1):
 * SPTEs filled by a fault path that snapshots `mmu_invalidate_seq`, GUPs the page and checks
 * staleness under `mmu_lock`; notifier start/end that count windows, accumulate the range and zap;
 * and one vCPU's guest TLB flushed before start returns. Bug flags turn it into the zoo's broken
 * KVM variants.
 */
import { definePlugin, Kernel, Mutex, serviceId } from '@mmnsim/core';
import type { Plugin, TaskGen } from '@mmnsim/core';
import {
  getUserPages,
  MmService,
  MmuNotifier,
  MmuNotifierSubsystem,
  putPage,
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
 * The KVM bugs the zoo plants; `'none'` is the correct MMU. Each breaks one rule of
 * users-and-hardware.md §1:
 * - `seq-after-gup`: snapshots `mmu_invalidate_seq` after looking the page up, so an
 *   invalidation that completed in between goes unseen (§1.2 step 4a, §7 scenario 1).
 * - `ignore-in-progress-range`: the staleness check compares the sequence only and ignores an
 *   invalidation in progress over the faulting gfn (§1.2 step 6, §7 scenario 2).
 * - `flush-after-start`: zaps the shadow PTEs in `invalidate_range_start` but flushes the vCPU
 *   TLBs only later, after the primary page may be freed (§1.3, §1.6, §7 scenario 6;
 *   notifier-core.md §2.5).
 * - `range-reset-first-of-two`: resets the accumulated invalidation range when either of two
 *   overlapping windows ends instead of when `mmu_invalidate_in_progress` goes 0 → 1 (§1.1,
 *   §1.3).
 */
export const KVM_BUGS = [
  'none',
  'seq-after-gup',
  'ignore-in-progress-range',
  'flush-after-start',
  'range-reset-first-of-two',
] as const;

declare module '@mmnsim/core' {
  interface SimEventMap {
    /** The mini KVM fault path took its `mmu_invalidate_seq` snapshot. */
    'zoo.kvm.snapshot': {
      /** Guest (= host virtual) address being faulted. */
      va: number;
      /** The snapshot. */
      seq: number;
    };
    /** The mini KVM fault path looked the host page up (GUP). */
    'zoo.kvm.gup': {
      /** Address. */
      va: number;
      /** The frame found. */
      pfn: number;
    };
    /** `is_page_fault_stale` under `mmu_lock`. */
    'zoo.kvm.stale_check': {
      /** Address. */
      va: number;
      /** The fault's snapshot. */
      snapshot: number;
      /** `mmu_invalidate_seq` now. */
      seq: number;
      /** `mmu_invalidate_in_progress` now. */
      inProgress: number;
      /** True if the fault must retry. */
      stale: boolean;
    };
    /** The mini KVM's invalidation state after `invalidate_range_start` or `_end`. */
    'zoo.kvm.invalidate': {
      /** `'start'` or `'end'`. */
      op: string;
      /** `mmu_invalidate_seq`. */
      seq: number;
      /** `mmu_invalidate_in_progress`. */
      inProgress: number;
      /** `mmu_invalidate_range_start` (-1 when unset). */
      rangeStart: number;
      /** `mmu_invalidate_range_end` (-1 when unset). */
      rangeEnd: number;
    };
  }
}

/** One of {@link KVM_BUGS}. */
export type KvmBug = (typeof KVM_BUGS)[number];

/** An SPTE or guest TLB entry of the mini KVM (a {@link SecondaryMapping}). */
export interface Translation {
  /** The host mm. */
  readonly mm: MmStruct;
  /** Guest address (= host virtual address of the identity memslot). */
  readonly va: number;
  /** The host frame. */
  readonly pfn: number;
  /** The frame's allocation generation when the translation was made. */
  readonly gen: number;
  /** Whether writes are allowed. */
  readonly writable: boolean;
}

/**
 * The mini VM: guest addresses are the host virtual addresses of one process (an identity
 * memslot), SPTEs hold no page reference, and one vCPU caches translations in its guest TLB. Its
 * SPTEs and guest TLB entries are both translations the `'shadow'` checks see.
 */
export class MiniKvm implements SecondaryMmu {
  /** See {@link SecondaryMmu.name}. */
  readonly name = 'mini-kvm';
  /** See {@link SecondaryMmu.kind}. */
  readonly kind = 'shadow' as const;
  /** SPTEs by address. */
  readonly sptes = new Map<number, Translation>();
  /** The vCPU's guest TLB by address. */
  readonly guestTlb = new Map<number, Translation>();
  /** `kvm->mmu_lock`. */
  readonly mmuLock: Mutex;
  /** `mmu_invalidate_seq`. */
  seq = 0;
  /** `mmu_invalidate_in_progress`. */
  inProgress = 0;
  /** `mmu_invalidate_range_start` (Infinity when unset). */
  rangeStart = Infinity;
  /** `mmu_invalidate_range_end` (-Infinity when unset). */
  rangeEnd = -Infinity;
  /** Faults that `is_page_fault_stale` sent back. */
  retries = 0;
  private flushPending = false;
  private readonly ev: SecondaryMmuEvents;
  private readonly sub: MmuNotifier;
  private mm: MmStruct | null = null;

  /**
   * @param kernel the kernel services.
   * @param core the memory model.
   * @param mmn the notifier subsystem.
   * @param bug the planted bug (`'none'`: the correct handlers).
   */
  constructor(
    private readonly kernel: Kernel,
    private readonly core: MmCore,
    private readonly mmn: MmuNotifierSubsystem,
    readonly bug: KvmBug,
  ) {
    this.mmuLock = new Mutex(kernel, 'kvm->mmu_lock');
    this.ev = new SecondaryMmuEvents(kernel, this.name);
    this.sub = new MmuNotifier({
      name: 'mini-kvm',
      invalidateRangeStart: (_s, r) => this.start(r),
      invalidateRangeEnd: (_s, r) => this.end(r),
      release: () => this.release(),
    });
  }

  /** See {@link SecondaryMmu.mappings}. */
  *mappings(mm?: MmStruct): Iterable<SecondaryMapping> {
    for (const t of this.sptes.values()) if (mm === undefined || t.mm === mm) yield t;
    for (const t of this.guestTlb.values()) if (mm === undefined || t.mm === mm) yield t;
  }

  /** Binds the VM to `proc` and registers the notifier (`kvm_init_mmu_notifier`). */
  *create(proc: Process): TaskGen<number> {
    this.mm = proc.mm;
    return yield* this.mmn.register(this.sub, proc.mm);
  }

  /** Destroys the VM: unregisters the notifier (`kvm_destroy_vm`). */
  *destroy(): TaskGen<void> {
    yield* this.mmn.unregister(this.sub, this.mm!);
  }

  /** `kvm_mmu_notifier_invalidate_range_start`: count, accumulate, zap, flush. */
  private *start(range: NotifierRange): TaskGen<number> {
    yield* this.mmuLock.lock();
    this.inProgress++;
    if (this.inProgress === 1) {
      this.rangeStart = range.start;
      this.rangeEnd = range.end;
    } else {
      this.rangeStart = Math.min(this.rangeStart, range.start);
      this.rangeEnd = Math.max(this.rangeEnd, range.end);
    }
    let zapped = false;
    for (const [va, t] of [...this.sptes]) {
      if (va < range.start || va >= range.end) continue;
      this.sptes.delete(va);
      this.ev.unmap(t.mm, va);
      zapped = true;
    }
    if (zapped || this.guestTlb.size > 0) {
      if (this.bug === 'flush-after-start') this.flushPending = true;
      else this.flushGuestTlb();
    }
    this.trace('start');
    this.mmuLock.unlock();
    return 0;
  }

  /** `kvm_mmu_notifier_invalidate_range_end`: seq++ then in_progress--. */
  private *end(_range: NotifierRange): TaskGen<void> {
    yield* this.mmuLock.lock();
    this.seq++;
    this.inProgress--;
    if (this.bug === 'range-reset-first-of-two' || this.inProgress === 0) {
      this.rangeStart = Infinity;
      this.rangeEnd = -Infinity;
    }
    if (this.flushPending) {
      this.flushPending = false;
      this.flushGuestTlb();
    }
    this.trace('end');
    this.mmuLock.unlock();
  }

  /** `kvm_mmu_notifier_release`: zap everything. */
  private *release(): TaskGen<void> {
    yield* this.mmuLock.lock();
    for (const [va, t] of [...this.sptes]) {
      this.sptes.delete(va);
      this.ev.unmap(t.mm, va);
    }
    this.flushGuestTlb();
    this.mmuLock.unlock();
  }

  private trace(op: string): void {
    const bus = this.kernel.bus;
    if (!bus.wants('zoo.kvm.invalidate')) return;
    const set = this.rangeStart !== Infinity;
    bus.emit('zoo.kvm.invalidate', {
      op,
      seq: this.seq,
      inProgress: this.inProgress,
      rangeStart: set ? this.rangeStart : -1,
      rangeEnd: set ? this.rangeEnd : -1,
    });
  }

  private flushGuestTlb(): void {
    for (const [va, t] of [...this.guestTlb]) {
      this.guestTlb.delete(va);
      this.ev.unmap(t.mm, va);
    }
  }

  /** `is_page_fault_stale` / `mmu_invalidate_retry_gfn`, under `mmu_lock`. */
  private stale(va: number, snapshot: number): boolean {
    if (this.seq !== snapshot) return true;
    if (this.bug === 'ignore-in-progress-range') return false;
    return this.inProgress > 0 && va >= this.rangeStart && va < this.rangeEnd;
  }

  /**
   * The TDP fault path for `va`: snapshot the seq, GUP the host page, take `mmu_lock`, check
   * staleness, install the SPTE. Returns true when the SPTE was installed.
   */
  *fault(va: number): TaskGen<boolean> {
    const mm = this.mm!;
    const sched = this.kernel.scheduler;
    const bus = this.kernel.bus;
    let snapshot = this.seq;
    if (this.bug === 'seq-after-gup') snapshot = -1;
    else if (bus.wants('zoo.kvm.snapshot')) bus.emit('zoo.kvm.snapshot', { va, seq: snapshot });
    yield* sched.preempt();
    yield* mm.mmapLock.downRead();
    const pages: number[] = [];
    const n = yield* getUserPages(this.core, mm, va, 1, 0x01, pages);
    mm.mmapLock.upRead();
    if (n !== 1) return false;
    const pfn = pages[0]!;
    if (bus.wants('zoo.kvm.gup')) bus.emit('zoo.kvm.gup', { va, pfn });
    yield* sched.preempt();
    if (this.bug === 'seq-after-gup') {
      snapshot = this.seq; // too late: an invalidation may have come and gone
      if (bus.wants('zoo.kvm.snapshot')) bus.emit('zoo.kvm.snapshot', { va, seq: snapshot });
    }
    yield* this.mmuLock.lock();
    const stale = this.stale(va, snapshot);
    if (bus.wants('zoo.kvm.stale_check')) {
      bus.emit('zoo.kvm.stale_check', {
        va,
        snapshot,
        seq: this.seq,
        inProgress: this.inProgress,
        stale,
      });
    }
    if (stale) {
      this.retries++;
      this.mmuLock.unlock();
      putPage(this.core, pfn);
      return false;
    }
    const gen = this.core.phys.generation[pfn]!;
    this.sptes.set(va, { mm, va, pfn, gen, writable: true });
    this.ev.map(mm, va, pfn, gen, true);
    this.mmuLock.unlock();
    putPage(this.core, pfn); // the SPTE holds no reference: only the notifier protects the page
    return true;
  }

  /** A guest read of the first word of `va`'s page: guest TLB, then SPTE, then the fault path. */
  *guestRead(va: number): TaskGen<number> {
    for (let tries = 0; tries < 8; tries++) {
      const t = this.guestTlb.get(va) ?? this.sptes.get(va);
      if (t !== undefined) {
        if (!this.guestTlb.has(va)) {
          this.guestTlb.set(va, t);
          this.ev.map(t.mm, va, t.pfn, t.gen, t.writable);
        }
        this.ev.access(t.mm, va, t.pfn, t.gen, false);
        return this.core.phys.read(t.pfn, 0);
      }
      yield* this.fault(va);
    }
    return -1;
  }
}

/** Token of the mini VM. */
export const MiniKvmVm = serviceId<MiniKvm>('@mmnsim/zoo:MiniKvm');
const MiniKvmOptions = serviceId<{ bug: KvmBug }>('@mmnsim/zoo:MiniKvmOptions');

const factory = definePlugin({
  id: 'mini-kvm',
  requires: ['mm'],
  schema: z.strictObject({ bug: z.enum(KVM_BUGS).default('none') }),
  token: MiniKvmOptions,
  module: new ContainerModule(({ bind }) => {
    bind(MiniKvmVm)
      .toResolvedValue(
        (o: { bug: KvmBug }, k: Kernel, m: MmService, n: MmuNotifierSubsystem) =>
          new MiniKvm(k, m.core, n, o.bug),
        [MiniKvmOptions, Kernel, MmService, MmuNotifierSubsystem],
      )
      .inSingletonScope();
    bind(SecondaryMmuContribution).toService(MiniKvmVm);
  }),
});

/**
 * The mini KVM as a plugin; `bug` plants one of {@link KVM_BUGS}.
 * @param options `{ bug }` (default `'none'`).
 */
export function miniKvmPlugin(options?: { bug?: KvmBug }): Plugin {
  return factory(options);
}
