import {
  ConfigError,
  Errno,
  GFP_KERNEL,
  Mutex,
  RwLock,
  SpinLock,
  SrcuDomain,
  WaitQueue,
} from '@mmnsim/core';
import type { Kernel, SchedOp, TaskGen } from '@mmnsim/core';
import {
  Foll,
  getUserPages,
  isTaskGen,
  mmdrop,
  mmgetNotZero,
  mmput,
  MmuNotifier,
  PAGE_SIZE,
  putPage,
} from '@mmnsim/mm';
import type {
  MaySleep,
  MmCore,
  MmStruct,
  MmuNotifierSubsystem,
  NotifierRange,
  PhysMem,
  Process,
  SecondaryMapping,
  SecondaryMmu,
  SecondaryMmuEvents,
  SecondaryMmuKind,
} from '@mmnsim/mm';
import { Memslot, MemslotFlags, Memslots, MEMSLOT_USER_FLAGS } from './memslots.js';
import type { MemslotSpec } from './memslots.js';
import type { KvmBugs } from './options.js';
import {
  isAccessAllowed,
  isAccessTracked,
  isFrozen,
  isShadowPresent,
  isWritable,
  makeSpte,
  restoreAccessTrack,
  Spte,
  SPTE_FROZEN,
  SPTE_NONPRESENT,
  spteFlags,
  sptePfn,
  spteWithFlags,
} from './spte.js';
import { SPTES_PER_TABLE, TdpMmu } from './tdp-mmu.js';
import type { TdpHost, ZapResult } from './tdp-mmu.js';
import { KvmRequest, Vcpu, VcpuMode } from './vcpu.js';

const PREEMPT: SchedOp = { kind: 'preempt' };

/** `INVALID_GPA` for the invalidation range, in gfn units. */
export const INVALID_GFN = -1;

/** Number of memslots per address space (`KVM_USER_MEM_SLOTS`). */
export const KVM_USER_MEM_SLOTS = 512;

/**
 * Places in KVM's code where a test may park a task to force an interleaving (the model's
 * tracepoints). Each is already a point where the kernel's concurrency allows others to run.
 * - `fault:after-snapshot`: the fault path took its `mmu_invalidate_seq` snapshot (before GUP);
 * - `fault:after-gup`: GUP returned the page (before the second pre-check);
 * - `fault:before-lock`: the second pre-check passed, `mmu_lock` not yet taken;
 * - `fault:lock-dropped`: only with the `dropLockBeforeInstall` bug, between the staleness check
 *   and the install, `mmu_lock` released;
 * - `precheck:between-reads`: the lockless pre-check read `in_progress`, not yet the seq;
 * - `end:between-writes`: `invalidate_range_end` under `mmu_lock` did its first write of the
 *   seq/in_progress pair (atomic context: a probe may only spin);
 * - `start:after-zap`: `invalidate_range_start` zapped, before the remote flush (under
 *   `mmu_lock`: spin only);
 * - `zap:resched`: a yielding zap dropped `mmu_lock` to reschedule;
 * - `zap:frozen`: a zap under the read lock froze an SPTE, before its flush (spin only);
 * - `walk:table`: the lockless walk of the fast page fault path holds a table pointer, with
 *   interrupts off (spin only).
 */
export type KvmProbePoint =
  | 'fault:after-snapshot'
  | 'fault:after-gup'
  | 'fault:before-lock'
  | 'fault:lock-dropped'
  | 'precheck:between-reads'
  | 'end:between-writes'
  | 'start:after-zap'
  | 'zap:resched'
  | 'zap:frozen'
  | 'walk:table';

/**
 * A test's hook at the {@link KvmProbePoint}s: return a generator to run (to wait for
 * something), or nothing. `vcpu` is the vCPU on whose behalf KVM runs, or null in a notifier.
 */
export type KvmProbe = (point: KvmProbePoint, vcpu: Vcpu | null) => MaySleep<void>;

/** Options of {@link KvmService.createVm}. */
export interface VmOptions {
  /** A label for tasks and reports (default `vm<id>`). */
  readonly name?: string;
  /** Number of vCPUs (default: the plugin's `vcpus`). */
  readonly vcpus?: number;
  /** The physical CPU of each vCPU (default: vCPU i on CPU i modulo the number of CPUs). */
  readonly cpus?: readonly number[];
}

/** The VM-wide tunables from the plugin options. */
export interface VmConfig {
  /** EPT A/D bits. */
  readonly adBits: boolean;
  /** See `KvmOptions.tdpYieldEvery`. */
  readonly tdpYieldEvery: number;
  /** See `KvmOptions.retryDelayNs`. */
  readonly retryDelayNs: number;
  /** Deliberate bugs. */
  readonly bugs: KvmBugs;
}

/** Counters of one VM, for tests. */
export interface VmStats {
  /** Page faults handled (fast and slow path). */
  faults: number;
  /** Faults fixed by the lockless fast path. */
  fastFixed: number;
  /** SPTEs installed by the slow path. */
  installed: number;
  /** RET_PF_RETRY outcomes. */
  retries: number;
  /** `remote_tlb_flush_requests`. */
  remoteTlbFlushRequests: number;
  /** `remote_tlb_flush`. */
  remoteTlbFlushes: number;
  /** IPIs sent. */
  ipis: number;
  /** `invalidate_range_start` calls. */
  invalidations: number;
  /** SPTEs zapped by invalidations. */
  zapped: number;
  /** Times a yielding zap dropped `mmu_lock`. */
  zapYields: number;
}

/**
 * A virtual machine (`struct kvm`) bound to a host process's mm: its memslots, vCPUs, TDP MMU,
 * the MMU-notifier bookkeeping and handlers, the fault path and the remote TLB flush (Linux
 * `virt/kvm/kvm_main.c` ~v6.13 with the x86 TDP MMU).
 *
 * KVM is a classic list subscriber of the mm's MMU notifiers: `invalidate_range_start` counts
 * the window (`mmu_invalidate_in_progress`, the gfn range), zaps the SPTEs and flushes every
 * vCPU's TLB before it returns; `invalidate_range_end` bumps `mmu_invalidate_seq`, then drops
 * the count. The fault path snapshots the seq before GUP and installs the SPTE only if, under
 * `mmu_lock`, no invalidation covering the gfn is in progress and the seq is unchanged.
 *
 * Locks, in the kernel's order: `kvm->slots_lock` (mutex) → `kvm->srcu` (read sections) →
 * `mmu_lock` (an rwlock: write for notifiers, read for faults) → `mn_invalidate_lock`. SPTEs hold
 * no page reference; the notifier protocol alone keeps them valid.
 *
 * As a {@link SecondaryMmu} (kind `'shadow'`, reported as `kvm`), its translations are its
 * present SPTEs and the guest TLB entries its vCPUs can still use.
 *
 * @see struct kvm
 * @see kvm_create_vm
 */
export class Vm implements SecondaryMmu, TdpHost {
  /** See {@link SecondaryMmu.kind}. */
  readonly kind: SecondaryMmuKind = 'shadow';
  /** The vCPUs. */
  readonly vcpus: readonly Vcpu[];
  /** The MMU notifier subscription (`kvm->mmu_notifier`). */
  readonly notifier: MmuNotifier;
  /** `kvm->srcu`: memslot readers (faults, notifier handlers, vCPUs outside guest mode). */
  readonly srcu: SrcuDomain;
  /** `kvm->mmu_lock` (an rwlock on x86). */
  readonly mmuLock: RwLock;
  /** `kvm->slots_lock`: serialises memslot updates. */
  readonly slotsLock: Mutex;
  /** `kvm->mn_invalidate_lock`. */
  readonly mnInvalidateLock: SpinLock;
  /** `kvm->mn_active_invalidate_count`: every start/end pair, memslots or not. */
  mnActiveInvalidateCount = 0;
  /** `kvm->mmu_invalidate_seq`: bumped by every `invalidate_range_end` that hit a memslot. */
  mmuInvalidateSeq = 0;
  /** `kvm->mmu_invalidate_in_progress`. */
  mmuInvalidateInProgress = 0;
  /** `kvm->mmu_invalidate_range_start` (gfn; {@link INVALID_GFN} when unset). */
  mmuInvalidateRangeStart = INVALID_GFN;
  /** `kvm->mmu_invalidate_range_end` (gfn, exclusive; {@link INVALID_GFN} when unset). */
  mmuInvalidateRangeEnd = INVALID_GFN;
  /** The active memslot set (`kvm->memslots[0]`). */
  memslots: Memslots = new Memslots([], 0);
  /** The TDP MMU. */
  readonly tdp: TdpMmu;
  /** True once the VM is being destroyed (or is bugged): vCPUs return -EIO. */
  dead = false;
  /** True once `destroy` finished. */
  destroyed = false;
  /** A test's probe (see {@link KvmProbePoint}), or null. */
  probe: KvmProbe | null = null;
  /** Counters. */
  readonly stats: VmStats = {
    faults: 0,
    fastFixed: 0,
    installed: 0,
    retries: 0,
    remoteTlbFlushRequests: 0,
    remoteTlbFlushes: 0,
    ipis: 0,
    invalidations: 0,
    zapped: 0,
    zapYields: 0,
  };
  /** The host mm. */
  readonly mm: MmStruct;
  /** Host physical memory. */
  readonly phys: PhysMem;
  /** EPT A/D bits. */
  readonly adBits: boolean;
  private readonly memslotsUpdateWq: WaitQueue;
  private readonly ipiAck: WaitQueue;
  private readonly bugs: KvmBugs;
  private deferredFlush = false;

  /**
   * Built by {@link KvmService.createVm}.
   * @param id the VM's id.
   * @param label its name for tasks and reports.
   * @param name the secondary-MMU name its `smmu.*` events carry (`kvm`).
   * @param process the host process whose mm backs guest memory.
   * @param kernel the kernel services.
   * @param core the memory model.
   * @param mmn the notifier subsystem.
   * @param events the `smmu.*` events of KVM.
   * @param config VM-wide tunables.
   * @param cpus the physical CPU of each vCPU.
   * @param onDestroy called when the VM is gone.
   */
  constructor(
    readonly id: number,
    readonly label: string,
    readonly name: string,
    readonly process: Process,
    readonly kernel: Kernel,
    readonly core: MmCore,
    private readonly mmn: MmuNotifierSubsystem,
    readonly events: SecondaryMmuEvents,
    readonly config: VmConfig,
    cpus: readonly number[],
    private readonly onDestroy: (vm: Vm) => void,
  ) {
    this.mm = process.mm;
    this.phys = core.phys;
    this.adBits = config.adBits;
    this.bugs = config.bugs;
    this.srcu = new SrcuDomain(kernel, 'kvm->srcu');
    this.mmuLock = new RwLock(kernel, 'kvm->mmu_lock');
    this.slotsLock = new Mutex(kernel, 'kvm->slots_lock');
    this.mnInvalidateLock = new SpinLock(kernel, 'kvm->mn_invalidate_lock');
    this.memslotsUpdateWq = new WaitQueue(kernel.scheduler, `${label} mn_memslots_update_rcuwait`);
    this.ipiAck = new WaitQueue(kernel.scheduler, `${label} IPI acknowledgements`);
    this.tdp = new TdpMmu(this);
    this.vcpus = cpus.map((cpu, i) => new Vcpu(this, i, cpu));
    this.notifier = new MmuNotifier({
      name: `kvm ${label}`,
      invalidateRangeStart: (_s, range) => this.invalidateRangeStart(range),
      invalidateRangeEnd: (_s, range) => this.invalidateRangeEnd(range),
      clearFlushYoung: (_s, _mm, start, end) => this.ageHva(start, end, true),
      clearYoung: (_s, _mm, start, end) => this.ageHva(start, end, true),
      testYoung: (_s, _mm, address) => this.ageHva(address, address + 1, false),
      release: () => this.release(),
    });
  }

  /** vCPU `i`. @throws ConfigError when there is no such vCPU. */
  vcpu(i: number): Vcpu {
    const v = this.vcpus[i];
    if (v === undefined)
      throw new ConfigError(
        `${this.label} has ${this.vcpus.length} vCPU(s); there is no vCPU ${i}`,
      );
    return v;
  }

  // --- the MMU notifier handlers ---------------------------------------------------------------

  /**
   * `kvm_mmu_notifier_invalidate_range_start`: count the pair in `mn_active_invalidate_count`;
   * then, if a memslot overlaps the range, under `mmu_lock` (write): `in_progress++` (the range
   * is reset on 0→1), widen the invalidation range, zap the leaf SPTEs (yielding every
   * `tdpYieldEvery` SPTEs when the range is blockable, flushing before each yield) and flush
   * every vCPU's TLB before unlocking. With no overlapping memslot neither the lock nor the
   * counters are touched. Always returns 0; never sleeps for a non-blockable range.
   *
   * @see kvm_mmu_notifier_invalidate_range_start
   */
  *invalidateRangeStart(range: NotifierRange): TaskGen<number> {
    this.stats.invalidations++;
    yield* this.mnInvalidateLock.lock();
    this.mnActiveInvalidateCount++;
    this.mnInvalidateLock.unlock();
    const r = yield* this.handleHvaRange(range.start, range.end, 'unmap', range.blockable);
    const bus = this.kernel.bus;
    if (bus.wants('kvm.invalidate.start')) {
      bus.emit('kvm.invalidate.start', {
        vm: this.id,
        start: range.start,
        end: range.end,
        found: r.found,
        inProgress: this.mmuInvalidateInProgress,
        seq: this.mmuInvalidateSeq,
        rangeStart: this.mmuInvalidateRangeStart,
        rangeEnd: this.mmuInvalidateRangeEnd,
        zapped: r.zapped,
      });
    }
    return 0;
  }

  /**
   * `kvm_mmu_notifier_invalidate_range_end`: if a memslot overlaps, under `mmu_lock` (write):
   * `mmu_invalidate_seq++`, then (write barrier) `in_progress--`; then drop
   * `mn_active_invalidate_count` and wake a memslot update waiting for it to reach 0.
   *
   * @see kvm_mmu_notifier_invalidate_range_end
   */
  *invalidateRangeEnd(range: NotifierRange): TaskGen<void> {
    if (this.deferredFlush) {
      // The flushAfterStartReturns bug: the flush start should have done.
      this.deferredFlush = false;
      yield* this.flushRemoteTlbs();
    }
    const r = yield* this.handleHvaRange(range.start, range.end, 'end', range.blockable);
    yield* this.mnInvalidateLock.lock();
    let wake = false;
    if (this.mnActiveInvalidateCount === 0) {
      this.kernel.report(
        'kvm-mn-count-underflow',
        `WARNING: ${this.label}: invalidate_range_end with mn_active_invalidate_count already 0`,
      );
    } else wake = --this.mnActiveInvalidateCount === 0;
    this.mnInvalidateLock.unlock();
    if (wake) this.memslotsUpdateWq.wakeAll();
    const bus = this.kernel.bus;
    if (bus.wants('kvm.invalidate.end')) {
      bus.emit('kvm.invalidate.end', {
        vm: this.id,
        start: range.start,
        end: range.end,
        found: r.found,
        inProgress: this.mmuInvalidateInProgress,
        seq: this.mmuInvalidateSeq,
      });
    }
  }

  /**
   * `__kvm_handle_hva_range` for the invalidation pair: inside `kvm->srcu`, for each memslot
   * whose host range meets `[start, end)`, clip and convert to gfns (a partly covered page
   * counts); at the first one take `mmu_lock` for write and run the on-lock hook (begin or end;
   * end has no handler and stops there); zap; flush before unlocking if anything was zapped.
   */
  private *handleHvaRange(
    start: number,
    end: number,
    kind: 'unmap' | 'end',
    mayBlock: boolean,
  ): TaskGen<{ found: boolean; zapped: number }> {
    if (end <= start) {
      this.kernel.report(
        'kvm-bad-hva-range',
        `WARN_ON_ONCE: ${this.label}: notifier range [0x${start.toString(16)}, 0x${end.toString(16)}) is empty`,
      );
      return { found: false, zapped: 0 };
    }
    const idx = this.srcu.readLock();
    let found = false;
    let flush = false;
    let zapped = 0;
    for (const slot of this.memslots.overlappingHva(start, end - 1)) {
      const hs = Math.max(start, slot.userspaceAddr);
      const he = Math.min(end, slot.hvaEnd);
      const gs = slot.hvaToGfn(hs);
      const ge = slot.hvaToGfn(he + PAGE_SIZE - 1);
      if (!found) {
        found = true;
        yield* this.mmuLock.writeLock();
        if (kind === 'end') {
          yield* this.invalidateEnd();
          break;
        }
        this.invalidateBegin();
      }
      this.invalidateRangeAdd(gs, ge);
      if (!this.bugs.startSkipsZap) {
        const r: ZapResult = yield* this.tdp.zapLeafs(
          gs,
          ge,
          mayBlock,
          flush,
          this.config.tdpYieldEvery,
          (f) => this.condResched(f),
        );
        flush = r.flush;
        zapped += r.zapped;
      }
    }
    this.stats.zapped += zapped;
    if (flush) {
      yield* this.callProbe('start:after-zap', null);
      if (this.bugs.flushAfterStartReturns) this.deferredFlush = true;
      else yield* this.flushRemoteTlbs();
    }
    if (found) this.mmuLock.writeUnlock();
    this.srcu.readUnlock(idx);
    return { found, zapped };
  }

  /** `kvm_mmu_invalidate_begin` (under `mmu_lock`). */
  private invalidateBegin(): void {
    this.mmuInvalidateInProgress++;
    if (this.mmuInvalidateInProgress === 1) {
      this.mmuInvalidateRangeStart = INVALID_GFN;
      this.mmuInvalidateRangeEnd = INVALID_GFN;
    }
  }

  /**
   * `kvm_mmu_invalidate_range_add`: the first range of a busy period is stored as is; later ones
   * only widen it while any invalidation is outstanding.
   */
  private invalidateRangeAdd(gs: number, ge: number): void {
    if (this.mmuInvalidateInProgress === 0)
      this.kernel.report(
        'kvm-range-add-idle',
        `WARN_ON_ONCE: ${this.label}: mmu_invalidate_range_add with no invalidation in progress`,
      );
    if (this.mmuInvalidateRangeStart === INVALID_GFN) {
      this.mmuInvalidateRangeStart = gs;
      this.mmuInvalidateRangeEnd = ge;
    } else {
      this.mmuInvalidateRangeStart = Math.min(this.mmuInvalidateRangeStart, gs);
      this.mmuInvalidateRangeEnd = Math.max(this.mmuInvalidateRangeEnd, ge);
    }
  }

  /**
   * `kvm_mmu_invalidate_end` (under `mmu_lock` for write): seq++, write barrier, in_progress--.
   * A lockless reader (the fault path's pre-check) reads in_progress, then the seq: it sees
   * either the old non-zero in_progress or the new seq. The barrier is a scheduling point here.
   */
  private *invalidateEnd(): TaskGen<void> {
    if (this.bugs.endOrderReversed) {
      this.mmuInvalidateInProgress--;
      yield* this.callProbe('end:between-writes', null);
      yield PREEMPT;
      this.mmuInvalidateSeq++;
    } else {
      this.mmuInvalidateSeq++;
      yield* this.callProbe('end:between-writes', null);
      yield PREEMPT; // smp_wmb()
      this.mmuInvalidateInProgress--;
    }
    if (this.mmuInvalidateInProgress < 0) {
      this.kernel.report(
        'kvm-bug-in-progress-negative',
        `KVM_BUG_ON: ${this.label}: mmu_invalidate_in_progress went negative (${this.mmuInvalidateInProgress})`,
      );
      this.dead = true;
    }
    if (this.mmuInvalidateRangeStart === INVALID_GFN)
      this.kernel.report(
        'kvm-invalidate-range-unset',
        `WARN_ON_ONCE: ${this.label}: invalidate_range_end but no range was added since begin`,
      );
  }

  /**
   * `tdp_mmu_iter_cond_resched` for a write-locked zap: flush what is pending (the bug
   * `zapYieldWithoutFlush` skips it), drop `mmu_lock`, let others run, take it again. Returns
   * whether a flush is still pending.
   */
  private *condResched(flush: boolean): TaskGen<boolean> {
    this.stats.zapYields++;
    if (flush && !this.bugs.zapYieldWithoutFlush) {
      yield* this.flushRemoteTlbs();
      flush = false;
    }
    this.mmuLock.writeUnlock();
    yield* this.callProbe('zap:resched', null);
    yield PREEMPT;
    yield* this.mmuLock.writeLock();
    return flush;
  }

  /**
   * The young handlers (`kvm_mmu_notifier_clear_flush_young`, `clear_young`, `test_young`):
   * inside `kvm->srcu`, age (or test) the SPTEs of every memslot part of `[start, end)`. On x86
   * no TLB flush is done (`KVM_ELIDE_TLB_FLUSH_IF_YOUNG`). Lockless and atomic (the callers hold
   * the page-table spinlock), as with `KVM_MMU_LOCKLESS_AGING`.
   *
   * @returns 1 if a leaf was young.
   * @see kvm_mmu_notifier_clear_flush_young
   * @see kvm_age_gfn
   * @see kvm_test_age_gfn
   */
  ageHva(start: number, end: number, clear: boolean): number {
    if (end <= start) return 0;
    const idx = this.srcu.readLock();
    let young = false;
    for (const slot of this.memslots.overlappingHva(start, end - 1)) {
      const hs = Math.max(start, slot.userspaceAddr);
      const he = Math.min(end, slot.hvaEnd);
      if (this.tdp.age(slot.hvaToGfn(hs), slot.hvaToGfn(he + PAGE_SIZE - 1), clear)) young = true;
    }
    this.srcu.readUnlock(idx);
    return young ? 1 : 0;
  }

  /**
   * `kvm_mmu_notifier_release`: the mm is going away (exit) or the VM unregisters: inside
   * `kvm->srcu`, zap every SPTE and free the TDP tables (`kvm_flush_shadow_all`) — before any
   * page of the mm is freed.
   *
   * @see kvm_mmu_notifier_release
   */
  *release(): TaskGen<void> {
    const idx = this.srcu.readLock();
    yield* this.zapAllSptes();
    this.srcu.readUnlock(idx);
  }

  // --- remote TLB flush ------------------------------------------------------------------------

  /**
   * `kvm_flush_remote_tlbs`: make KVM_REQ_TLB_FLUSH (WAIT | NO_WAKEUP) on every vCPU — halted
   * vCPUs are not woken, they flush on their next entry — and IPI the CPU of every vCPU that is
   * not OUTSIDE_GUEST_MODE (IN_GUEST_MODE becomes EXITING_GUEST_MODE), except the sender's own;
   * then spin until every IPI was acknowledged. When it returns, no vCPU can run guest code with
   * a translation older than the call. Callable under `mmu_lock`.
   *
   * @see kvm_flush_remote_tlbs
   * @see kvm_make_all_cpus_request
   */
  *flushRemoteTlbs(): TaskGen<void> {
    this.stats.remoteTlbFlushRequests++;
    const sched = this.kernel.scheduler;
    const me = sched.current.context;
    const targets: number[] = [];
    const modes: string[] = [];
    for (const v of this.vcpus) {
      const mode = v.mode;
      modes.push(mode);
      v.requests |= KvmRequest.TLB_FLUSH;
      // kvm_request_needs_ipi: kvm_vcpu_exiting_guest_mode, then for a WAIT request any mode
      // but OUTSIDE_GUEST_MODE needs the IPI (a lockless walker must be waited for).
      if (mode === VcpuMode.IN_GUEST_MODE) v.mode = VcpuMode.EXITING_GUEST_MODE;
      const needs = this.bugs.ipiOnlyInGuestMode
        ? mode === VcpuMode.IN_GUEST_MODE
        : mode !== VcpuMode.OUTSIDE_GUEST_MODE;
      if (needs && sched.context(v.cpu) !== me && !targets.includes(v.cpu)) targets.push(v.cpu);
    }
    const bus = this.kernel.bus;
    if (bus.wants('kvm.flush')) bus.emit('kvm.flush', { vm: this.id, ipis: targets, modes });
    if (targets.length > 0) {
      const ack = { pending: targets.length };
      this.spawnIpis(targets, ack);
      yield* this.ipiAck.waitEvent(() => ack.pending === 0, { spin: true });
    }
    this.stats.remoteTlbFlushes++;
    if (bus.wants('kvm.flush.done')) bus.emit('kvm.flush.done', { vm: this.id });
  }

  /**
   * Sends an IPI to each CPU in `cpus` (interrupt work on that CPU): any vCPU of this VM running
   * guest code there exits at its next instruction. With `ack`, each handler counts itself off
   * and wakes the sender (`smp_call_function_many(..., wait = true)`).
   */
  spawnIpis(cpus: readonly number[], ack: { pending: number } | null): void {
    const sched = this.kernel.scheduler;
    for (const cpu of cpus) {
      this.stats.ipis++;
      sched.spawn(`${this.label} ipi cpu${cpu}`, cpu, () => this.ipiHandler(cpu, ack), {
        interrupt: true,
      });
    }
  }

  private *ipiHandler(cpu: number, ack: { pending: number } | null): TaskGen<void> {
    for (const v of this.vcpus) if (v.cpu === cpu && v.executing) v.irqExit = true;
    const bus = this.kernel.bus;
    if (bus.wants('kvm.ipi')) bus.emit('kvm.ipi', { vm: this.id, cpu });
    if (ack !== null) {
      ack.pending--;
      this.ipiAck.wakeAll();
    }
  }

  // --- whole-root and shared zaps -------------------------------------------------------------

  /**
   * `kvm_mmu_zap_all` (what release and VM destruction use): under `mmu_lock` for write, zap
   * every SPTE and unlink every TDP table; flush every vCPU's TLB; then free the tables (the
   * kernel's RCU callback) — so a lockless walker that announced itself is waited for by the
   * flush before its table goes away.
   *
   * @see kvm_mmu_zap_all
   */
  *zapAllSptes(): TaskGen<void> {
    yield* this.mmuLock.writeLock();
    const tables = this.tdp.zapAll();
    if (tables.length > 0) yield* this.flushRemoteTlbs();
    this.tdp.freeTables(tables);
    this.mmuLock.writeUnlock();
  }

  /**
   * A zap under `mmu_lock` held for read, as KVM does when it drops small mappings to rebuild
   * huge ones (`kvm_tdp_mmu_zap_collapsible_sptes` after dirty logging stops): for each present
   * leaf of `[gfnStart, gfnEnd)`, `tdp_mmu_zap_spte_atomic` — freeze it with cmpxchg
   * (FROZEN_SPTE: concurrent faults see it and retry), flush the TLBs, write the non-present
   * value, then propagate its dirty/accessed bits. Returns the number of SPTEs zapped.
   *
   * @see tdp_mmu_zap_spte_atomic
   */
  *zapSptesShared(gfnStart: number, gfnEnd: number): TaskGen<number> {
    yield* this.mmuLock.readLock();
    let n = 0;
    for (let gfn = gfnStart; gfn < gfnEnd; gfn++) {
      const t = this.tdp.tables.get(Math.floor(gfn / SPTES_PER_TABLE));
      if (t === undefined) {
        gfn = (Math.floor(gfn / SPTES_PER_TABLE) + 1) * SPTES_PER_TABLE - 1;
        continue;
      }
      const i = gfn % SPTES_PER_TABLE;
      const old = t.sptes[i]!;
      if (!isShadowPresent(old)) continue;
      yield PREEMPT; // the iterator read `old`; the cmpxchg below fails if it changed
      if (t.sptes[i] !== old) continue;
      t.sptes[i] = SPTE_FROZEN;
      const bus = this.kernel.bus;
      if (bus.wants('kvm.spte.freeze')) bus.emit('kvm.spte.freeze', { vm: this.id, gfn });
      yield* this.callProbe('zap:frozen', null);
      yield* this.flushRemoteTlbs(); // kvm_flush_remote_tlbs_gfn: no ranged flush here
      t.sptes[i] = SPTE_NONPRESENT;
      this.tdp.changed(gfn, old, SPTE_NONPRESENT, t.hvas[i]!, t.gens[i]!);
      n++;
    }
    this.mmuLock.readUnlock();
    return n;
  }

  // --- the fault path ---------------------------------------------------------------------------

  /**
   * `kvm_tdp_page_fault` for an EPT violation of vCPU `v` at `gpa` (called outside guest mode,
   * with `kvm->srcu` held):
   * 1. the lockless fast path when it can help (`page_fault_can_be_fast`);
   * 2. top up the page-table cache (may allocate: before `mmu_lock`);
   * 3. `kvm_faultin_pfn`: snapshot `mmu_invalidate_seq`, the lockless pre-check, GUP the host
   *    page (a reference, not a pin; a read fault is mapped writable when the host PTE already
   *    is), the pre-check again;
   * 4. `mmu_lock` for read; `is_page_fault_stale` (in progress with the gfn in the range, or the
   *    seq moved) → retry;
   * 5. install the SPTE with cmpxchg (a frozen or changed SPTE → retry);
   * 6. unlock, drop the page reference.
   *
   * Returns 0 when the access should be retried (fixed, spurious, or RET_PF_RETRY — then after
   * `retryDelayNs`), or a negated errno for an exit to userspace (-EFAULT: no memslot (MMIO) or
   * GUP failed; -EIO: the VM is dead).
   *
   * @see kvm_tdp_page_fault
   * @see kvm_faultin_pfn
   * @see is_page_fault_stale
   */
  *pageFault(v: Vcpu, gpa: number, write: boolean): TaskGen<number> {
    const gfn = Math.floor(gpa / PAGE_SIZE);
    this.stats.faults++;
    if (this.dead) return this.faultDone(v, gpa, write, 'dead', '', -Errno.EIO);
    // page_fault_can_be_fast: `present` is the hardware's view (an access-tracked SPTE is not).
    const cur = this.tdp.lookup(gfn);
    const present = isShadowPresent(cur) && (spteFlags(cur) & (Spte.R | Spte.W | Spte.X)) !== 0;
    if ((!present && !this.adBits) || (present && write)) {
      const f = yield* this.fastPageFault(v, gfn, write);
      if (f !== 'invalid') {
        if (f === 'fixed') this.stats.fastFixed++;
        return this.faultDone(v, gpa, write, f, 'fast', 0);
      }
    }
    this.kernel.mightAlloc(GFP_KERNEL, 'kvm_mmu_topup_memory_cache');
    const slot = this.memslots.find(gfn);
    if (slot === undefined || (write && slot.readonly))
      return this.faultDone(v, gpa, write, 'mmio', '', -Errno.EFAULT);
    if (slot.invalid) return yield* this.retry(v, gpa, write, 'invalid-slot');
    const hva = slot.gfnToHva(gfn);
    let mmuSeq = this.mmuInvalidateSeq;
    if (!this.bugs.seqSnapshotAfterGup && (yield* this.retryUnsafe(v, mmuSeq, gfn)))
      return yield* this.retry(v, gpa, write, 'precheck');
    yield* this.callProbe('fault:after-snapshot', v);
    if (!mmgetNotZero(this.mm))
      return this.faultDone(v, gpa, write, 'efault', 'no mm users', -Errno.EFAULT);
    const page = yield* this.hvaToPfn(hva, write, !slot.readonly);
    if (page === null) {
      yield* this.mmput(v);
      return this.faultDone(v, gpa, write, 'efault', 'gup', -Errno.EFAULT);
    }
    yield* this.callProbe('fault:after-gup', v);
    if (this.bugs.seqSnapshotAfterGup) mmuSeq = this.mmuInvalidateSeq;
    if (yield* this.retryUnsafe(v, mmuSeq, gfn)) {
      putPage(this.core, page.pfn);
      yield* this.mmput(v);
      return yield* this.retry(v, gpa, write, 'precheck');
    }
    yield* this.callProbe('fault:before-lock', v);
    yield* this.mmuLock.readLock();
    const stale = this.isPageFaultStale(mmuSeq, gfn);
    if (stale !== null) {
      this.mmuLock.readUnlock();
      putPage(this.core, page.pfn);
      yield* this.mmput(v);
      return yield* this.retry(v, gpa, write, stale);
    }
    if (this.bugs.dropLockBeforeInstall) {
      this.mmuLock.readUnlock();
      yield* this.callProbe('fault:lock-dropped', v);
      yield PREEMPT;
      yield* this.mmuLock.readLock();
    }
    const r = yield* this.map(v, gfn, hva, page.pfn, page.gen, page.writable, write);
    this.mmuLock.readUnlock();
    putPage(this.core, page.pfn); // kvm_release_faultin_page: SPTEs hold no reference
    yield* this.mmput(v);
    if (r === 'frozen' || r === 'cmpxchg') return yield* this.retry(v, gpa, write, r);
    if (r === 'bug') {
      this.dead = true;
      return this.faultDone(v, gpa, write, 'bug', '', -Errno.EIO);
    }
    if (r === 'fixed') this.stats.installed++;
    return this.faultDone(v, gpa, write, r, 'slow', 0);
  }

  /**
   * The TDP MMU install (`kvm_tdp_mmu_map` down to `tdp_mmu_map_handle_target_level`), under
   * `mmu_lock` for read: link the leaf table, read the old SPTE (frozen → retry), walk (a
   * scheduling point: other readers and the hardware run), then cmpxchg the new SPTE in — a
   * changed SPTE fails the cmpxchg and the fault retries. A present SPTE to the same frame that
   * already allows the access is a spurious fault.
   */
  private *map(
    v: Vcpu,
    gfn: number,
    hva: number,
    pfn: number,
    gen: number,
    writable: boolean,
    write: boolean,
  ): TaskGen<'fixed' | 'spurious' | 'frozen' | 'cmpxchg' | 'bug'> {
    const t = this.tdp.linkTable(gfn);
    const i = gfn % SPTES_PER_TABLE;
    const old = t.sptes[i]!;
    if (isFrozen(old)) return 'frozen';
    yield PREEMPT;
    if (t.freed || t.sptes[i] !== old) return 'cmpxchg';
    if (isShadowPresent(old) && sptePfn(old) === pfn && isAccessAllowed(old, write))
      return 'spurious';
    const spte = makeSpte(pfn, writable, writable, this.adBits);
    if (!this.tdp.setSpte(t, i, spte, hva, gen)) return 'bug';
    this.events.map(this.mm, hva, pfn, gen, writable);
    const bus = this.kernel.bus;
    if (bus.wants('kvm.spte.map')) {
      bus.emit('kvm.spte.map', {
        vm: this.id,
        mm: this.mm.id,
        gfn,
        hva,
        pfn,
        gen,
        writable,
        vcpu: v.id,
      });
    }
    return 'fixed';
  }

  /**
   * `fast_page_fault`: without `mmu_lock`, with interrupts off and the vCPU in
   * READING_SHADOW_PAGE_TABLES (so a WAIT flush waits for it), restore an access-tracked SPTE or
   * make an MMU-writable one writable, with cmpxchg; up to 4 retries. 'invalid' sends the fault
   * to the slow path.
   *
   * @see fast_page_fault
   */
  private *fastPageFault(
    v: Vcpu,
    gfn: number,
    write: boolean,
  ): TaskGen<'fixed' | 'spurious' | 'invalid'> {
    const k = this.kernel;
    const block = Math.floor(gfn / SPTES_PER_TABLE);
    const i = gfn % SPTES_PER_TABLE;
    k.localIrqSave(); // walk_shadow_page_lockless_begin
    v.mode = VcpuMode.READING_SHADOW_PAGE_TABLES;
    let ret: 'fixed' | 'spurious' | 'invalid' = 'invalid';
    for (let retry = 0; ;) {
      const t = this.tdp.tables.get(block);
      if (t === undefined) break;
      yield* this.callProbe('walk:table', v);
      yield PREEMPT; // the walk goes on into the table page
      if (this.walkedFreed(t.freed, gfn)) break;
      const spte = t.sptes[i]!;
      if (!isShadowPresent(spte)) break;
      if (isAccessAllowed(spte, write)) {
        ret = 'spurious';
        break;
      }
      let n = spte;
      if (isAccessTracked(n, this.adBits)) n = restoreAccessTrack(n);
      if (write && !isWritable(n) && (spteFlags(n) & Spte.MMU_WRITABLE) !== 0)
        n = spteWithFlags(n, spteFlags(n) | Spte.W | (this.adBits ? Spte.D : 0));
      if (n === spte || !isAccessAllowed(n, write)) break;
      yield PREEMPT; // between the read and the cmpxchg
      if (this.walkedFreed(t.freed, gfn)) break;
      if (t.sptes[i] === spte) {
        t.sptes[i] = n;
        ret = 'fixed';
        break;
      }
      if (++retry > 4) break;
    }
    v.mode = VcpuMode.OUTSIDE_GUEST_MODE; // walk_shadow_page_lockless_end
    k.localIrqRestore();
    return ret;
  }

  /** Reports a lockless walk that reached a freed table page; true if it did. */
  private walkedFreed(freed: boolean, gfn: number): boolean {
    if (!freed) return false;
    this.kernel.report(
      'kvm-walk-freed-table',
      `${this.label}: the lockless SPTE walk for gfn 0x${gfn.toString(16)} read a TDP page-table page that was freed: the zap that freed it did not wait for the walker (a WAIT flush must IPI vCPUs in READING_SHADOW_PAGE_TABLES)`,
    );
    return true;
  }

  /**
   * `hva_to_pfn`: GUP the page behind `hva` under `mmap_lock` (read): for a write fault with
   * FOLL_WRITE (which breaks COW); for a read fault without it, then opportunistically writable
   * if the host PTE already allows writes without faulting (`get_user_page_fast_only` with
   * FOLL_WRITE). Returns the frame with a reference held, or null on failure.
   */
  private *hvaToPfn(
    hva: number,
    write: boolean,
    mapWritable: boolean,
  ): TaskGen<{ pfn: number; gen: number; writable: boolean } | null> {
    const mm = this.mm;
    const core = this.core;
    yield* mm.mmapLock.downRead();
    const pages = [0];
    const n = yield* getUserPages(core, mm, hva, 1, write ? Foll.WRITE : 0, pages);
    if (n !== 1) {
      mm.mmapLock.upRead();
      return null;
    }
    let pfn = pages[0]!;
    let writable = write;
    if (!write && mapWritable) {
      const wp = [0];
      if ((yield* getUserPages(core, mm, hva, 1, Foll.WRITE | Foll.NOFAULT, wp)) === 1) {
        putPage(core, pfn);
        pfn = wp[0]!;
        writable = true;
      }
    }
    mm.mmapLock.upRead();
    const gen = core.phys.generation[pfn]!;
    yield PREEMPT; // GUP returned and dropped mmap_lock: the vCPU thread may be preempted here
    return { pfn, gen, writable };
  }

  /**
   * `mmu_invalidate_retry_gfn` under `mmu_lock`: the reason to retry (`'range'`: an
   * invalidation covering the gfn is in progress; `'seq'`: one completed since the snapshot), or
   * null. In progress with no range recorded is a KVM bug: WARN and retry.
   *
   * @see mmu_invalidate_retry_gfn
   */
  isPageFaultStale(mmuSeq: number, gfn: number): 'range' | 'seq' | null {
    if (this.mmuInvalidateInProgress > 0) {
      if (
        this.mmuInvalidateRangeStart === INVALID_GFN ||
        this.mmuInvalidateRangeEnd === INVALID_GFN
      ) {
        this.kernel.report(
          'kvm-invalidate-range-unset',
          `WARN_ON_ONCE: ${this.label}: an invalidation is in progress with no range recorded`,
        );
        return 'range';
      }
      if (
        !this.bugs.staleCheckIgnoresRange &&
        gfn >= this.mmuInvalidateRangeStart &&
        gfn < this.mmuInvalidateRangeEnd
      )
        return 'range';
    }
    return this.mmuInvalidateSeq !== mmuSeq ? 'seq' : null;
  }

  /**
   * `mmu_invalidate_retry_gfn_unsafe`: the lockless pre-check. Reads `in_progress` (and the
   * range), then — after a read barrier, a scheduling point here — the seq. Only an
   * optimisation: the check under `mmu_lock` decides.
   */
  private *retryUnsafe(v: Vcpu, mmuSeq: number, gfn: number): TaskGen<boolean> {
    const inProgress = this.mmuInvalidateInProgress;
    const inRange =
      !this.bugs.staleCheckIgnoresRange &&
      inProgress > 0 &&
      gfn >= this.mmuInvalidateRangeStart &&
      gfn < this.mmuInvalidateRangeEnd;
    yield* this.callProbe('precheck:between-reads', v);
    yield PREEMPT; // smp_rmb()
    const seq = this.mmuInvalidateSeq;
    const retry = inRange || seq !== mmuSeq;
    const bus = this.kernel.bus;
    if (bus.wants('kvm.precheck')) {
      bus.emit('kvm.precheck', {
        vm: this.id,
        vcpu: v.id,
        gfn,
        inProgress,
        seq,
        snapshot: mmuSeq,
        retry,
      });
    }
    return retry;
  }

  /** RET_PF_RETRY: the vCPU will re-enter and fault again, after `retryDelayNs`. */
  private *retry(v: Vcpu, gpa: number, write: boolean, why: string): TaskGen<number> {
    this.stats.retries++;
    this.faultDone(v, gpa, write, 'retry', why, 0);
    const d = this.config.retryDelayNs;
    if (d > 0) yield* this.kernel.scheduler.sleepFor(d);
    else yield PREEMPT;
    return 0;
  }

  /**
   * Drops the fault's `mm_users` reference. The model's vCPU tasks are not threads of the host
   * process, so this put may be the last one and tear the mm down (exit_mmap, which calls this
   * VM's release): `kvm->srcu` is left around it so the release path does not nest in it.
   */
  private *mmput(v: Vcpu): TaskGen<void> {
    this.srcu.readUnlock(v.srcuIdx);
    yield* mmput(this.core, this.mm);
    v.srcuIdx = this.srcu.readLock();
  }

  private faultDone(
    v: Vcpu,
    gpa: number,
    write: boolean,
    result: string,
    why: string,
    ret: number,
  ): number {
    const bus = this.kernel.bus;
    if (bus.wants('kvm.fault'))
      bus.emit('kvm.fault', { vm: this.id, vcpu: v.id, gpa, write, result, why });
    return ret;
  }

  /** Runs the test probe at `point`, if any. */
  private *callProbe(point: Parameters<KvmProbe>[0], v: Vcpu | null): TaskGen<void> {
    const p = this.probe;
    if (p === null) return;
    const g = p(point, v);
    if (isTaskGen(g)) yield* g;
  }

  // --- memslots --------------------------------------------------------------------------------

  /**
   * `KVM_SET_USER_MEMORY_REGION`: create, delete (`size` 0), move (another `gpa`) or change the
   * flags of memslot `spec.slot`. Under `kvm->slots_lock`: a delete or move first publishes the
   * slot flagged INVALID (faults on it retry) and zaps its SPTEs (`kvm_arch_flush_shadow_memslot`),
   * then publishes the final set. Every publication waits until `mn_active_invalidate_count` is
   * 0 (so each start/end pair sees the same memslots), swaps the set in, waits for `kvm->srcu`
   * readers, and bumps the generation.
   *
   * Returns 0 or -EINVAL (unaligned or out of range, changing size or host address of a slot,
   * unknown flags, deleting a missing slot), -EEXIST (overlapping guest range).
   *
   * @see kvm_set_memory_region
   * @see kvm_swap_active_memslots
   */
  *setMemslot(spec: MemslotSpec): TaskGen<number> {
    const flags = spec.flags ?? 0;
    const aligned = (x: number) => Number.isInteger(x) && x >= 0 && x % PAGE_SIZE === 0;
    if (
      !Number.isInteger(spec.slot) ||
      spec.slot < 0 ||
      spec.slot >= KVM_USER_MEM_SLOTS ||
      !aligned(spec.gpa) ||
      !aligned(spec.size) ||
      !aligned(spec.hva) ||
      (flags & ~MEMSLOT_USER_FLAGS) !== 0 ||
      this.destroyed
    )
      return -Errno.EINVAL;
    yield* this.slotsLock.lock();
    const r = yield* this.setMemslotLocked(spec, flags);
    this.slotsLock.unlock();
    return r;
  }

  private *setMemslotLocked(spec: MemslotSpec, flags: number): TaskGen<number> {
    const cur = this.memslots;
    const old = cur.get(spec.slot);
    const npages = spec.size / PAGE_SIZE;
    const baseGfn = spec.gpa / PAGE_SIZE;
    if (npages === 0) {
      if (old === undefined) return -Errno.EINVAL;
      yield* this.invalidateSlot(old);
      yield* this.install(
        this.memslots.byGfn.filter((s) => s.id !== old.id),
        old,
        'delete',
      );
      return 0;
    }
    if (old !== undefined && (old.npages !== npages || old.userspaceAddr !== spec.hva))
      return -Errno.EINVAL;
    if (cur.overlappingGfn(baseGfn, baseGfn + npages, spec.slot) !== undefined)
      return -Errno.EEXIST;
    const slot = new Memslot(spec.slot, baseGfn, npages, spec.hva, flags);
    if (old === undefined) {
      yield* this.install([...cur.byGfn, slot], slot, 'create');
      return 0;
    }
    if (old.baseGfn !== baseGfn) {
      yield* this.invalidateSlot(old);
      yield* this.install(
        [...this.memslots.byGfn.filter((s) => s.id !== old.id), slot],
        slot,
        'move',
      );
      return 0;
    }
    // KVM_MR_FLAGS_ONLY: KVM_MEM_READONLY cannot be changed on an existing slot.
    if (((old.flags ^ flags) & MemslotFlags.READONLY) !== 0) return -Errno.EINVAL;
    yield* this.install(
      this.memslots.byGfn.map((s) => (s.id === old.id ? slot : s)),
      slot,
      'flags',
    );
    return 0;
  }

  /** Publishes `old` flagged INVALID, then zaps its SPTEs and flushes. */
  private *invalidateSlot(old: Memslot): TaskGen<void> {
    const invalid = old.withFlags(old.flags | MemslotFlags.INVALID);
    yield* this.install(
      this.memslots.byGfn.map((s) => (s.id === old.id ? invalid : s)),
      invalid,
      'invalidate',
    );
    // kvm_arch_flush_shadow_memslot
    yield* this.mmuLock.writeLock();
    const r: ZapResult = yield* this.tdp.zapLeafs(
      old.baseGfn,
      old.gfnEnd,
      true,
      false,
      this.config.tdpYieldEvery,
      (f) => this.condResched(f),
    );
    if (r.flush) yield* this.flushRemoteTlbs();
    this.mmuLock.writeUnlock();
  }

  /** `kvm_swap_active_memslots`: wait for no invalidation pair, publish, synchronize, bump. */
  private *install(slots: readonly Memslot[], changed: Memslot, op: string): TaskGen<void> {
    const old = this.memslots;
    const next = new Memslots(slots, old.generation);
    yield* this.mnInvalidateLock.lock();
    while (this.mnActiveInvalidateCount !== 0) {
      this.mnInvalidateLock.unlock();
      yield* this.memslotsUpdateWq.wait();
      yield* this.mnInvalidateLock.lock();
    }
    this.memslots = next;
    this.mnInvalidateLock.unlock();
    yield* this.srcu.synchronize(); // synchronize_srcu_expedited
    next.generation = old.generation + 1;
    const bus = this.kernel.bus;
    if (bus.wants('kvm.memslot')) {
      bus.emit('kvm.memslot', {
        vm: this.id,
        slot: changed.id,
        op,
        baseGfn: changed.baseGfn,
        npages: changed.npages,
        hva: changed.userspaceAddr,
        flags: changed.flags,
        generation: next.generation,
      });
    }
  }

  // --- lifetime --------------------------------------------------------------------------------

  /**
   * `kvm_destroy_vm` (the last reference to the VM went away): stop the vCPUs (KVM_REQ_VM_DEAD,
   * kicked, joined), unregister the MMU notifier (which calls release if exit has not), reset
   * an `mn_active_invalidate_count` left unbalanced by an unregister between start and end (else
   * WARN if an invalidation is in progress), free the TDP MMU, drop the mm reference.
   *
   * Context: process context, may sleep; not from a vCPU of this VM.
   *
   * @see kvm_destroy_vm
   */
  *destroy(): TaskGen<void> {
    if (this.destroyed) return;
    const sched = this.kernel.scheduler;
    const me = sched.current;
    if (this.vcpus.some((v) => v.task === me))
      throw new ConfigError(`${this.label}.destroy() called from one of its own vCPUs`);
    this.dead = true;
    for (const v of this.vcpus) {
      v.requests |= KvmRequest.VM_DEAD;
      v.kick();
    }
    for (const v of this.vcpus) if (v.task !== null) yield* sched.join(v.task);
    yield* this.mmn.unregister(this.notifier, this.mm);
    if (this.mnActiveInvalidateCount !== 0) this.mnActiveInvalidateCount = 0;
    else if (this.mmuInvalidateInProgress !== 0)
      this.kernel.report(
        'kvm-destroy-in-progress',
        `WARN_ON: ${this.label} destroyed with mmu_invalidate_in_progress ${this.mmuInvalidateInProgress}`,
      );
    yield* this.mmuLock.writeLock();
    this.tdp.freeTables(this.tdp.zapAll());
    this.mmuLock.writeUnlock();
    mmdrop(this.core, this.mm);
    this.destroyed = true;
    this.onDestroy(this);
    const bus = this.kernel.bus;
    if (bus.wants('kvm.vm.destroy')) bus.emit('kvm.vm.destroy', { vm: this.id });
  }

  // --- SecondaryMmu ------------------------------------------------------------------------------

  /**
   * See {@link SecondaryMmu.mappings}: the present SPTEs, and the guest TLB entries of every
   * vCPU that can still use them ({@link Vcpu.tlbLive}).
   */
  *mappings(mm?: MmStruct): Iterable<SecondaryMapping> {
    const own = this.mm;
    if (mm !== undefined && mm !== own) return;
    yield* this.tdp.mappings(own);
    for (const v of this.vcpus) {
      if (!v.tlbLive()) continue;
      for (const e of v.tlb.values())
        yield { mm: own, va: e.hva, pfn: e.pfn, gen: e.gen, writable: e.writable };
    }
  }

  /** The gfn whose SPTE maps host address `hva`, in the active memslots (or -1). */
  hvaToGfn(hva: number): number {
    const s = this.memslots.overlappingHva(hva, hva)[0];
    return s === undefined ? -1 : s.hvaToGfn(hva);
  }

  /** The SPTE of `gfn` (0 when none). */
  spte(gfn: number): number {
    return this.tdp.lookup(gfn);
  }
}
