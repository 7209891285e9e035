import { WaitQueue } from '@mmnsim/core';
import type {
  ExecutionContext,
  EventBus,
  Kernel,
  RandomStream,
  Scheduler,
  TaskGen,
  Task,
} from '@mmnsim/core';
import {
  describePte,
  Frame,
  PAGE_SIZE,
  Pte,
  PTE_NONE,
  pteFlags,
  ptePfn,
  ptePresent,
  PTRS_PER_TABLE,
  TASK_SIZE,
  hugeLeafTranslate,
  pmdIsLeaf,
} from '@mmnsim/mm';
import type { MmCore, MmStruct, PteSlot, TlbFlushProvider } from '@mmnsim/mm';
import { CpuTlb, EntryBit, GLOBAL_TAG, Stale, TLB_NR_DYN_ASIDS } from './cpu-tlb.js';
import type { PscEntry } from './cpu-tlb.js';
import type { X86TlbBug, X86TlbOptions } from './options.js';

/** `TLB_FLUSH_ALL`: the end of a flush request that covers the whole address space. */
export const TLB_FLUSH_ALL = -1;

/** `TLB_GENERATION_INVALID`: the generation of a request that is not tied to one (batched flushes). */
const GEN_INVALID = -1;

/** `ctx_id` of init_mm; every other mm gets a larger one, never reused. */
const INIT_CTX_ID = 1;

/** `_PAGE_GLOBAL` on a present PTE. */
const PAGE_GLOBAL = 0x100;

/** Stale marks kept per mm before dead ones are pruned. */
const MAX_PENDING_MARKS = 4096;

/** `struct flush_tlb_info`. */
interface FlushInfo {
  /** The mm, or null for a batched flush (each CPU flushes what it has loaded). */
  readonly mm: MmStruct | null;
  /** First address (page flushes). */
  readonly start: number;
  /** Exclusive end, or {@link TLB_FLUSH_ALL}. */
  readonly end: number;
  /** `new_tlb_gen`, or GEN_INVALID. */
  readonly newGen: number;
  /** Page-table pages are being freed. */
  readonly freedTables: boolean;
  /** The initiating CPU (-1 outside one). */
  readonly from: number;
}

/** A change that made a TLB entry stale, waiting for the flush that must remove it. */
interface Mark {
  readonly cpu: number;
  readonly index: number;
  readonly tag: number;
  readonly fillTick: number;
  readonly va: number;
  readonly changeTick: number;
}

/** Per-mm TLB state: `mm->context.ctx_id`, `context.tlb_gen`, `mm_cpumask`. */
class MmTlbContext {
  /** `context.tlb_gen`. */
  tlbGen = 0;
  /** Stale marks not yet resolved by a covering flush. */
  pending: Mark[] = [];

  constructor(
    readonly mm: MmStruct | null,
    readonly ctxId: number,
    readonly cpumask: Uint8Array,
  ) {}
}

/** `arch_tlbflush_unmap_batch` of one task (`current->tlb_ubc`). */
interface Batch {
  readonly cpus: Uint8Array;
  readonly mms: MmStruct[];
}

/** Counters of what the TLB model did, for tests and benchmarks. */
export interface X86TlbStats {
  /** Accesses that used a TLB entry. */
  hits: number;
  /** Accesses that walked the page table (including dirty-bit walks). */
  misses: number;
  /** Entries created by walks (speculative ones included). */
  fills: number;
  /** Entries created by speculative walks. */
  speculativeFills: number;
  /** Valid entries evicted by fills. */
  evictions: number;
  /** Stores through a read-only entry (the page fault invalidates it). */
  protectionFaults: number;
  /** Per-page (INVLPG) flush passes on a CPU. */
  pageFlushes: number;
  /** Pages invalidated by those passes. */
  pagesInvalidated: number;
  /** Full flushes of a PCID by a shootdown or a local flush. */
  fullFlushes: number;
  /** Shootdown IPIs sent. */
  ipisSent: number;
  /** Shootdown IPIs handled. */
  ipisAcked: number;
  /** `switch_mm` calls that loaded another mm or reloaded a lazy one. */
  switches: number;
  /** Of those, the ones that flushed their PCID. */
  switchFlushes: number;
  /** `flush_tlb_mm_range` calls. */
  rangeFlushes: number;
  /** Batched (reclaim) flushes performed. */
  batchFlushes: number;
}

/** One of a CPU's ASID slots (`cpu_tlbstate.ctxs[]`). */
export interface AsidSlotView {
  /** `ctx_id` of the mm whose entries the slot holds (0: never used, 1: init_mm). */
  readonly ctxId: number;
  /** `tlb_gen`: the generation of that mm the slot's entries are up to date with. */
  readonly gen: number;
}

/** What a CPU's TLB state looks like, for tests and viewers. */
export interface CpuTlbView {
  /** The CPU. */
  readonly cpu: number;
  /** Id of the loaded mm (`cpu_tlbstate.loaded_mm`), 0 for init_mm. */
  readonly loadedMm: number;
  /** `loaded_mm_asid`. */
  readonly asid: number;
  /** `is_lazy`. */
  readonly lazy: boolean;
  /** The ASID slots, by ASID. */
  readonly slots: readonly AsidSlotView[];
  /** Valid TLB entries. */
  readonly entries: number;
  /** Paging-structure-cache entries. */
  readonly pscEntries: number;
}

/** One TLB entry, for tests and viewers. */
export interface TlbEntryView {
  /** Page address. */
  readonly va: number;
  /** Frame. */
  readonly pfn: number;
  /** The mm it was filled for. */
  readonly mm: number;
  /** ASID tag (0..5), or 7 for a global entry. */
  readonly asid: number;
  /** Writable. */
  readonly writable: boolean;
  /** Accessed as the walk left the PTE. */
  readonly accessed: boolean;
  /** Dirty as cached. */
  readonly dirty: boolean;
  /** Global. */
  readonly global: boolean;
}

function indexAt(va: number, level: number): number {
  return Math.floor(va / 2 ** (12 + 9 * level)) % PTRS_PER_TABLE;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * The x86 TLB model (`arch/x86/mm/tlb.c`): per-CPU TLBs with PCIDs, lazy TLB mode, and TLB
 * shootdowns by IPI, bound as the memory model's {@link TlbFlushProvider}.
 *
 * - **Accesses** (`translate`): a hit uses the cached frame without looking at the PTE; a miss
 *   walks the current mm's tables (through the paging-structure cache), sets the accessed bit
 *   (and dirty for a store) and fills an entry. A store through an entry whose cached dirty bit
 *   is clear walks again; a store through a read-only entry faults and drops the entry.
 * - **Context switches** (`switch_mm_irqs_off`, `enter_lazy_tlb`): a task's mm is the last mm it
 *   accessed (or the one given to {@link X86Tlb.useMm}); a task that never accessed user memory is
 *   a kernel task, and a CPU running one keeps its mm loaded, lazily. Switches are applied when
 *   the CPU's TLB state is next looked at (its own access, a flush looking at it, an IPI on it),
 *   which no observer can tell from applying them at the switch itself.
 * - **Flushes** (`flush_tlb_mm_range`): a new `tlb_gen`, the ceiling, IPIs to the CPUs of the
 *   mm's cpumask that need them (all of them when tables are freed), the local flush, waiting for
 *   every acknowledgement (a spin-wait: interrupts stay on), then
 *   `mmu_notifier_arch_invalidate_secondary_tlbs` with the caller's range.
 * - **Batches** (`arch_tlbbatch_add_pending` / `arch_tlbbatch_flush`): per task; adding bumps the
 *   mm's generation and calls the secondary-TLB hook at once; the flush is one full flush on
 *   every non-lazy CPU of the accumulated cpumask.
 * - **Oracle**: an access through an entry that a completed flush should have removed, or whose
 *   frame was freed, is reported (`stale-tlb`, `tlb-use-after-free`), as is a page walk through
 *   a freed page-table page cached in a paging-structure cache.
 *
 * Context: `flushRange` and `batchFlush` may spin-wait for other CPUs, never sleep, and may be
 * called in atomic context (under the page-table lock). The rest are plain functions.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({ seed: 1, cpus: 2, plugins: [mmPlugin(), x86TlbPlugin()] });
 * const tlb = sim.get(X86Tlb);
 * // … run a workload …
 * tlb.cpuState(1); // { loadedMm, asid, lazy, slots, entries, pscEntries }
 * ```
 *
 * @see flush_tlb_mm_range
 * @see switch_mm_irqs_off
 */
export class X86Tlb implements TlbFlushProvider {
  /** See {@link TlbFlushProvider.name}. */
  readonly name = 'x86';
  /** What the model did so far. */
  readonly stats: X86TlbStats = {
    hits: 0,
    misses: 0,
    fills: 0,
    speculativeFills: 0,
    evictions: 0,
    protectionFaults: 0,
    pageFlushes: 0,
    pagesInvalidated: 0,
    fullFlushes: 0,
    ipisSent: 0,
    ipisAcked: 0,
    switches: 0,
    switchFlushes: 0,
    rangeFlushes: 0,
    batchFlushes: 0,
  };
  private readonly sched: Scheduler;
  private readonly bus: EventBus;
  private readonly random: RandomStream;
  private readonly contexts: readonly ExecutionContext[];
  private readonly cpus: (CpuTlb | undefined)[];
  private readonly ncpus: number;
  private readonly bug: X86TlbBug;
  private core: MmCore | null = null;
  private frameFlags: Uint32Array = new Uint32Array(0);
  private frameGen: Uint32Array = new Uint32Array(0);
  private readonly taskMm = new Map<number, MmStruct>();
  private readonly contextOf = new WeakMap<MmStruct, MmTlbContext>();
  private readonly byId = new Map<number, MmTlbContext>();
  private readonly initCtx: MmTlbContext;
  private readonly batches = new Map<number, Batch>();
  private readonly frees = new Map<number, { seq: number; step: number }>();
  private readonly acks: WaitQueue;
  private nextCtxId = INIT_CTX_ID + 1;
  private tick = 0;

  /**
   * Built by the `x86-tlb` plugin.
   * @param kernel the kernel services.
   * @param options the validated plugin options.
   */
  constructor(
    private readonly kernel: Kernel,
    readonly options: X86TlbOptions,
  ) {
    this.sched = kernel.scheduler;
    this.bus = kernel.bus;
    this.random = kernel.random.stream('x86-tlb');
    this.contexts = kernel.scheduler.contexts.filter((c) => c.kind === 'cpu');
    this.ncpus = this.contexts.length;
    this.cpus = new Array<CpuTlb | undefined>(this.ncpus);
    this.bug = options.bug;
    this.initCtx = new MmTlbContext(null, INIT_CTX_ID, new Uint8Array(this.ncpus));
    this.acks = new WaitQueue(kernel.scheduler, 'flush_tlb_multi: waiting for IPI acks');
  }

  /** See {@link TlbFlushProvider.attach}: subscribes to PTE changes and frame frees (for the oracle). */
  attach(core: MmCore): void {
    this.core = core;
    this.frameFlags = core.phys.flags;
    this.frameGen = core.phys.generation;
    const bus = this.bus;
    bus.on('mm.pte.set').subscribe((e) => {
      const d = e.data;
      this.onPteSet(e.seq, e.step, d.mm, d.va, d.pte, d.old);
    });
    bus.on('mm.frame.free').subscribe((e) => {
      this.frees.set(e.data.pfn, { seq: e.seq, step: e.step });
    });
  }

  private get c(): MmCore {
    if (this.core === null) throw new Error('X86Tlb used before attach()');
    return this.core;
  }

  // --- inspection ----------------------------------------------------------------------------

  /**
   * CPU `n`'s TLB state (`cpu_tlbstate`), after applying any context switch not yet seen.
   * @param n the CPU number.
   */
  cpuState(n: number): CpuTlbView {
    const cpu = this.cpuAt(n);
    this.sync(cpu);
    const slots: AsidSlotView[] = [];
    for (let a = 0; a < TLB_NR_DYN_ASIDS; a++)
      slots.push({ ctxId: cpu.ctxId[a]!, gen: cpu.ctxGen[a]! });
    return {
      cpu: n,
      loadedMm: cpu.loadedMm?.id ?? 0,
      asid: cpu.asid,
      lazy: cpu.lazy,
      slots,
      entries: cpu.count(),
      pscEntries: cpu.psc.size,
    };
  }

  /**
   * The valid entries of CPU `n`'s TLB, in array order.
   * @param n the CPU number.
   */
  entries(n: number): TlbEntryView[] {
    const cpu = this.cpuAt(n);
    const out: TlbEntryView[] = [];
    for (let i = 0; i < cpu.tag.length; i++) {
      const t = cpu.tag[i]!;
      if (t < 0) continue;
      const b = cpu.bits[i]!;
      out.push({
        va: Math.floor(t / 8) * PAGE_SIZE,
        pfn: cpu.pfn[i]!,
        mm: cpu.mm[i]!,
        asid: t % 8,
        writable: (b & EntryBit.WRITE) !== 0,
        accessed: (b & EntryBit.ACCESSED) !== 0,
        dirty: (b & EntryBit.DIRTY) !== 0,
        global: (b & EntryBit.GLOBAL) !== 0,
      });
    }
    return out;
  }

  /** `mm->context.tlb_gen` (0 for an mm no flush was ever requested for). */
  generation(mm: MmStruct): number {
    return this.contextOf.get(mm)?.tlbGen ?? 0;
  }

  /** `mm_cpumask(mm)`: the CPUs that may hold translations of `mm`, ascending. */
  cpumask(mm: MmStruct): number[] {
    const st = this.contextOf.get(mm);
    const out: number[] = [];
    if (st === undefined) return out;
    for (let c = 0; c < this.ncpus; c++) if (st.cpumask[c] === 1) out.push(c);
    return out;
  }

  // --- task ↔ mm --------------------------------------------------------------------------

  /**
   * `kthread_use_mm`: the running task adopts `mm` as its address space (`current->mm`), and its
   * CPU switches to it. A task also adopts an mm by accessing it (`Process.load`/`store`).
   * @see kthread_use_mm
   */
  useMm(mm: MmStruct): void {
    const t = this.sched.current;
    this.taskMm.set(t.id, mm);
    if (t.context.kind === 'cpu' && !t.interrupt) this.sync(this.cpuAt(t.context.index));
  }

  /**
   * `kthread_unuse_mm`: the running task drops its mm and becomes a kernel task; its CPU keeps
   * the mm loaded, lazily (`enter_lazy_tlb`).
   * @see kthread_unuse_mm
   */
  unuseMm(): void {
    const t = this.sched.current;
    this.taskMm.delete(t.id);
    if (t.context.kind === 'cpu' && !t.interrupt) this.sync(this.cpuAt(t.context.index));
  }

  /**
   * The CPU of the running task walks the page tables of its loaded mm for `va` speculatively,
   * as the prefetcher or speculative execution may do at any time — also in lazy mode, while a
   * kernel task runs. The walk goes through the paging-structure cache, fills a TLB entry if the
   * PTE is present, and sets no accessed bit. Returns the frame it found, or -1.
   *
   * A walk through a cached page-table page that was freed is reported
   * (`tlb-use-after-free`): the flush that freed it should have reached this CPU (scenario 33).
   */
  speculativeWalk(va: number): number {
    const t = this.sched.current;
    if (t.context.kind !== 'cpu') return -1;
    const cpu = this.cpuAt(t.context.index);
    this.sync(cpu);
    const mm = cpu.loadedMm;
    if (mm === null || mm.freed) return -1;
    return this.walk(cpu, mm, va - (va % PAGE_SIZE), false, true);
  }

  // --- TlbFlushProvider -----------------------------------------------------------------------

  /** See {@link TlbFlushProvider.translate}: the hardware access path of the running task's CPU. */
  translate(mm: MmStruct, va: number, write: boolean): number {
    if (mm.freed) return -1;
    const t = this.sched.currentOrNull;
    if (t === null || t.interrupt || t.context.kind !== 'cpu') {
      return this.walk(null, mm, va - (va % PAGE_SIZE), write, false);
    }
    const cpu = this.cpuAt(t.context.index);
    if (cpu.task !== t || cpu.loadedMm !== mm || cpu.lazy) this.enterMm(cpu, t, mm);
    const vpn = Math.floor(va / PAGE_SIZE);
    let i = cpu.find(vpn, cpu.asid);
    if (i < 0) i = cpu.find(vpn, GLOBAL_TAG);
    let cause = 'miss';
    if (i >= 0) {
      const b = cpu.bits[i]!;
      if (write && (b & EntryBit.WRITE) === 0) {
        // A protection fault: the CPU drops the entry (and the cached walk) before raising #PF.
        cpu.invalidate(i);
        cpu.pscDropVa(va, cpu.asid);
        this.stats.protectionFaults++;
        this.emitMiss(cpu, mm, vpn, write, 'protection');
        return -1;
      }
      if (!write || (b & EntryBit.DIRTY) !== 0) {
        cpu.touch(i);
        this.stats.hits++;
        const pfn = cpu.pfn[i]!;
        const p = cpu.poison[i]!;
        if (
          (p === Stale.ANY ||
            (p === Stale.WRITE && write) ||
            (this.frameFlags[pfn]! & Frame.FREE) !== 0 ||
            this.frameGen[pfn] !== cpu.gen[i]) &&
          cpu.reported[i] === 0
        ) {
          this.reportStaleUse(cpu, i, mm, vpn * PAGE_SIZE, write);
        }
        const bus = this.bus;
        if (bus.wants('tlb.hit'))
          bus.emit('tlb.hit', { cpu: cpu.index, mm: mm.id, va: vpn * PAGE_SIZE, pfn, write });
        return pfn;
      }
      // A store through a clean entry: the CPU walks again to set the dirty bit.
      cpu.invalidate(i);
      cause = 'dirty';
    }
    this.stats.misses++;
    this.emitMiss(cpu, mm, vpn, write, cause);
    const pfn = this.walk(cpu, mm, vpn * PAGE_SIZE, write, false);
    if (pfn < 0) cpu.pscDropVa(va, cpu.asid); // #PF invalidates the cached walk of the address
    return pfn;
  }

  /** See {@link TlbFlushProvider.flushRange}: `flush_tlb_mm_range`. */
  *flushRange(mm: MmStruct, start: number, end: number, freedTables: boolean): TaskGen<void> {
    const c = this.c;
    const startTick = ++this.tick;
    this.stats.rangeFlushes++;
    const st = this.ctxOf(mm);
    const newGen = this.incGen(st);
    // The page-aligned range the caller asked for; more than the ceiling's pages: a full flush.
    const rs = Math.floor(start / PAGE_SIZE) * PAGE_SIZE;
    const re = Math.ceil(end / PAGE_SIZE) * PAGE_SIZE;
    let fs = rs;
    let fe = re;
    if ((re - rs) / PAGE_SIZE > this.options.flushCeiling) {
      fs = 0;
      fe = TLB_FLUSH_ALL;
    }
    const t = this.sched.currentOrNull;
    const me = this.cpuOfTask(t);
    const info: FlushInfo = { mm, start: fs, end: fe, newGen, freedTables, from: me };
    if (t !== null) this.sched.preemptDisable('flush_tlb_mm_range (get_cpu)');
    if (me >= 0) this.sync(this.cpuAt(me));
    if (this.anyBut(st.cpumask, me)) {
      yield* this.flushMulti(st.cpumask, info, me);
    } else if (me >= 0 && this.cpuAt(me).loadedMm === mm) {
      this.flushFunc(this.cpuAt(me), info, 'local');
    }
    if (t !== null) this.sched.preemptEnable();
    const bus = this.bus;
    const ev = bus.wants('mm.tlb.flush')
      ? bus.emit('mm.tlb.flush', { mm: mm.id, start, end, freedTables })
      : undefined;
    this.resolve(st, rs, re, startTick, ev?.seq ?? -1);
    const spin = c.notifiers.archInvalidateSecondaryTlbs(mm, start, end);
    if (spin !== undefined) yield* spin;
  }

  /**
   * See {@link TlbFlushProvider.batchAdd}: `arch_tlbbatch_add_pending` — bumps the mm's
   * generation, adds its cpumask to the running task's batch, and invalidates the secondary TLBs
   * at once, for the whole address space as x86 does (`(mm, 0, -1)`).
   */
  batchAdd(mm: MmStruct, _start: number, _end: number): TaskGen<void> | void {
    const st = this.ctxOf(mm);
    this.incGen(st);
    const key = this.sched.currentOrNull?.id ?? -1;
    let b = this.batches.get(key);
    if (b === undefined) {
      b = { cpus: new Uint8Array(this.ncpus), mms: [] };
      this.batches.set(key, b);
    }
    for (let cpu = 0; cpu < this.ncpus; cpu++) if (st.cpumask[cpu] === 1) b.cpus[cpu] = 1;
    if (!b.mms.includes(mm)) b.mms.push(mm);
    return this.c.notifiers.archInvalidateSecondaryTlbs(mm, 0, TASK_SIZE);
  }

  /**
   * See {@link TlbFlushProvider.batchFlush}: `arch_tlbbatch_flush` of the running task's batch —
   * a full flush on every non-lazy CPU of the accumulated cpumask whose loaded mm is behind.
   */
  *batchFlush(): TaskGen<void> {
    const t = this.sched.currentOrNull;
    const key = t?.id ?? -1;
    const b = this.batches.get(key);
    if (b === undefined) return;
    this.batches.delete(key);
    const startTick = ++this.tick;
    this.stats.batchFlushes++;
    const me = this.cpuOfTask(t);
    const info: FlushInfo = {
      mm: null,
      start: 0,
      end: TLB_FLUSH_ALL,
      newGen: GEN_INVALID,
      freedTables: false,
      from: me,
    };
    if (t !== null) this.sched.preemptDisable('arch_tlbbatch_flush (get_cpu)');
    if (this.anyBut(b.cpus, me)) {
      yield* this.flushMulti(b.cpus, info, me);
    } else if (me >= 0 && b.cpus[me] === 1) {
      const cpu = this.cpuAt(me);
      this.sync(cpu);
      this.flushFunc(cpu, info, 'local');
    }
    if (t !== null) this.sched.preemptEnable();
    const bus = this.bus;
    for (const mm of b.mms) {
      const ev = bus.wants('mm.tlb.flush')
        ? bus.emit('mm.tlb.flush', { mm: mm.id, start: 0, end: TASK_SIZE, freedTables: false })
        : undefined;
      this.resolve(this.ctxOf(mm), 0, TASK_SIZE, startTick, ev?.seq ?? -1);
    }
  }

  // --- CPUs, context switches ---------------------------------------------------------------

  private cpuAt(n: number): CpuTlb {
    let cpu = this.cpus[n];
    if (cpu === undefined) {
      if (n < 0 || n >= this.ncpus) throw new RangeError(`x86-tlb: no CPU ${n}`);
      const o = this.options;
      cpu = new CpuTlb(n, o.entries, o.ways, o.replacement, o.pscEntries, this.random);
      cpu.ctxId[0] = INIT_CTX_ID;
      this.cpus[n] = cpu;
    }
    return cpu;
  }

  private cpuOfTask(t: Task | null): number {
    return t !== null && !t.interrupt && t.context.kind === 'cpu' ? t.context.index : -1;
  }

  private ctxOf(mm: MmStruct): MmTlbContext {
    let st = this.contextOf.get(mm);
    if (st === undefined) {
      st = new MmTlbContext(mm, this.nextCtxId++, new Uint8Array(this.ncpus));
      this.contextOf.set(mm, st);
      this.byId.set(mm.id, st);
    }
    return st;
  }

  /** `inc_mm_tlb_gen`. */
  private incGen(st: MmTlbContext): number {
    const g = ++st.tlbGen;
    const bus = this.bus;
    if (bus.wants('tlb.gen')) bus.emit('tlb.gen', { mm: st.mm?.id ?? 0, gen: g, cpu: -1 });
    return g;
  }

  /** The running task accesses `mm`: it is (now) its mm, and its CPU loads it. */
  private enterMm(cpu: CpuTlb, t: Task, mm: MmStruct): void {
    this.taskMm.set(t.id, mm);
    this.sync(cpu);
    if (cpu.loadedMm !== mm || cpu.lazy) this.switchMm(cpu, mm, 'task');
  }

  /**
   * Applies the context switches CPU `cpu` went through since it was last looked at: the task
   * running there now (the interrupted one under an interrupt handler) decides — its mm is
   * loaded, or the CPU goes lazy for a kernel task or the idle loop.
   */
  private sync(cpu: CpuTlb): void {
    const ctx = this.contexts[cpu.index]!;
    let t = ctx.occupant;
    if (t !== null && t.interrupt) t = ctx.interrupted;
    let want: MmStruct | null = t === null ? null : (this.taskMm.get(t.id) ?? null);
    if (want !== null && want.freed) {
      this.taskMm.delete(t!.id);
      want = null;
    }
    // A freed mm cannot stay loaded (the kernel keeps a lazily loaded mm alive with a reference).
    if (cpu.loadedMm !== null && cpu.loadedMm.freed) this.switchToInit(cpu, 'mm-freed');
    if (t === cpu.task && want === cpu.taskMm) return;
    cpu.task = t;
    cpu.taskMm = want;
    if (want === null) this.enterLazy(cpu);
    else this.switchMm(cpu, want, 'task');
  }

  /** `enter_lazy_tlb`. */
  private enterLazy(cpu: CpuTlb): void {
    if (cpu.loadedMm === null || cpu.lazy) return;
    cpu.lazy = true;
    const bus = this.bus;
    if (bus.wants('tlb.lazy')) bus.emit('tlb.lazy', { cpu: cpu.index, mm: cpu.loadedMm.id });
  }

  /** `switch_mm_irqs_off(prev, next)`. */
  private switchMm(cpu: CpuTlb, next: MmStruct, reason: string): void {
    const prev = cpu.loadedMm;
    const wasLazy = cpu.lazy;
    cpu.lazy = false;
    const st = this.ctxOf(next);
    if (prev === next) {
      // Another thread of the same process: nothing. Back from lazy mode: the flushes this CPU
      // was spared meanwhile are caught up by comparing generations.
      if (!wasLazy) return;
      const g = st.tlbGen;
      if (this.bug === 'no-lazy-generation-check' || cpu.ctxGen[cpu.asid] === g) {
        this.emitSwitch(cpu, prev, next, false, 'lazy-return');
        this.stats.switches++;
        return;
      }
      this.loadCr3(cpu, st, cpu.asid, g, true, prev, 'lazy-return');
      return;
    }
    // Start receiving IPIs for next, then read its generation.
    st.cpumask[cpu.index] = 1;
    const g = st.tlbGen;
    const [asid, flush] = this.chooseNewAsid(cpu, st.ctxId, g);
    this.loadCr3(cpu, st, asid, g, flush, prev, reason);
  }

  /** `switch_mm_irqs_off(NULL, &init_mm)`: drop the user page tables (a lazy CPU being flushed). */
  private switchToInit(cpu: CpuTlb, reason: string): void {
    const prev = cpu.loadedMm;
    cpu.lazy = false;
    if (prev === null) return;
    const [asid, flush] = this.chooseNewAsid(cpu, INIT_CTX_ID, 0);
    this.loadCr3(cpu, this.initCtx, asid, 0, flush, prev, reason);
  }

  /** `choose_new_asid`: the mm's slot if it has one (flush if behind), else the next slot round-robin. */
  private chooseNewAsid(cpu: CpuTlb, ctxId: number, gen: number): [number, boolean] {
    if (!this.options.pcid) return [0, true];
    for (let a = 0; a < TLB_NR_DYN_ASIDS; a++) {
      if (cpu.ctxId[a] === ctxId) return [a, cpu.ctxGen[a]! < gen];
    }
    let a = cpu.nextAsid++;
    if (a >= TLB_NR_DYN_ASIDS) {
      a = 0;
      cpu.nextAsid = 1;
    }
    return [a, true];
  }

  /** `load_new_mm_cr3` and the bookkeeping around it. */
  private loadCr3(
    cpu: CpuTlb,
    st: MmTlbContext,
    asid: number,
    gen: number,
    flush: boolean,
    prev: MmStruct | null,
    reason: string,
  ): void {
    let removed = 0;
    if (flush) {
      cpu.ctxId[asid] = st.ctxId;
      cpu.ctxGen[asid] = gen;
      removed = cpu.flushAsid(asid);
      this.stats.switchFlushes++;
    }
    cpu.loadedMm = st.mm;
    cpu.asid = asid;
    this.stats.switches++;
    this.emitSwitch(cpu, prev, st.mm, flush, reason);
    if (flush) {
      const bus = this.bus;
      const mmId = st.mm?.id ?? 0;
      if (bus.wants('tlb.flush')) {
        bus.emit('tlb.flush', {
          cpu: cpu.index,
          mm: mmId,
          pcid: this.pcidOf(asid),
          kind: 'full',
          start: 0,
          end: TLB_FLUSH_ALL,
          removed,
          reason: 'switch',
        });
      }
      if (st.mm !== null && bus.wants('tlb.gen'))
        bus.emit('tlb.gen', { mm: mmId, gen, cpu: cpu.index });
    }
  }

  // --- flushing -------------------------------------------------------------------------------

  private anyBut(mask: Uint8Array, me: number): boolean {
    for (let c = 0; c < mask.length; c++) if (mask[c] === 1 && c !== me) return true;
    return false;
  }

  /** `should_flush_tlb`: lazy CPUs catch up at their next switch; others only if the mm is loaded. */
  private shouldFlush(cpu: CpuTlb, info: FlushInfo): boolean {
    if (cpu.lazy) return false;
    if (info.mm === null) return true;
    return cpu.loadedMm === info.mm;
  }

  /**
   * `native_flush_tlb_multi`: IPI the CPUs of `mask` that need it (every one when tables are
   * freed, lazy ones included), run the flush locally if this CPU is in the mask, and spin until
   * every IPI was handled. Interrupts stay enabled while spinning, so IPIs sent to this CPU run.
   */
  private *flushMulti(mask: Uint8Array, info: FlushInfo, me: number): TaskGen<void> {
    const everyone = info.freedTables && this.bug !== 'skip-lazy-when-tables-freed';
    const targets: number[] = [];
    for (let c = 0; c < this.ncpus; c++) {
      if (mask[c] !== 1 || c === me) continue;
      const cpu = this.cpuAt(c);
      this.sync(cpu);
      if (everyone || this.shouldFlush(cpu, info)) targets.push(c);
    }
    const ack = { pending: targets.length };
    for (const c of targets) this.sendIpi(c, info, ack);
    if (me >= 0 && mask[me] === 1) {
      const cpu = this.cpuAt(me);
      this.sync(cpu);
      if (info.freedTables || this.shouldFlush(cpu, info)) this.flushFunc(cpu, info, 'local');
    }
    if (ack.pending > 0 && this.bug !== 'no-ipi-wait') {
      yield* this.acks.waitEvent(() => ack.pending === 0, { spin: true });
    }
  }

  /** Sends one shootdown IPI: interrupt work on CPU `c` running `flush_tlb_func`. */
  private sendIpi(c: number, info: FlushInfo, ack: { pending: number }): void {
    this.stats.ipisSent++;
    const bus = this.bus;
    const mmId = info.mm?.id ?? 0;
    if (bus.wants('tlb.ipi.send')) {
      bus.emit('tlb.ipi.send', {
        from: info.from,
        to: c,
        mm: mmId,
        gen: info.newGen,
        freedTables: info.freedTables,
      });
    }
    this.sched.spawn(`flush_tlb_func ipi cpu${c}`, c, () => this.handleIpi(c, info, ack), {
      interrupt: true,
    });
  }

  /** The IPI handler on CPU `c`: `flush_tlb_func`, then the acknowledgement. */
  private *handleIpi(c: number, info: FlushInfo, ack: { pending: number }): TaskGen<void> {
    const cpu = this.cpuAt(c);
    this.sync(cpu);
    this.flushFunc(cpu, info, 'ipi');
    ack.pending--;
    this.stats.ipisAcked++;
    const bus = this.bus;
    if (bus.wants('tlb.ipi.ack'))
      bus.emit('tlb.ipi.ack', { cpu: c, from: info.from, mm: info.mm?.id ?? 0 });
    if (ack.pending === 0) this.acks.wakeAll();
  }

  /**
   * `flush_tlb_func` on `cpu` (interrupts off): not loaded → leave the cpumask; lazy → switch to
   * init_mm; up to date → nothing; exactly one generation behind with a range → INVLPG each
   * page; otherwise a full flush of the PCID. Then the CPU's generation is the mm's.
   */
  private flushFunc(cpu: CpuTlb, info: FlushInfo, reason: string): void {
    const loaded = cpu.loadedMm;
    if (info.mm !== null && info.mm !== loaded) {
      this.ctxOf(info.mm).cpumask[cpu.index] = 0;
      return;
    }
    if (loaded === null) return;
    if (cpu.lazy) {
      // A lazy CPU must not keep walking tables that may be freed: drop to init_mm.
      this.switchToInit(cpu, 'lazy-ipi');
      return;
    }
    const asid = cpu.asid;
    const local = cpu.ctxGen[asid]!;
    if (info.newGen !== GEN_INVALID && info.newGen <= local) return;
    const st = this.ctxOf(loaded);
    const mmGen = st.tlbGen;
    if (local === mmGen) return;
    let removed = 0;
    let kind: string;
    if (
      info.end !== TLB_FLUSH_ALL &&
      ((info.newGen === local + 1 && info.newGen === mmGen) ||
        this.bug === 'partial-flush-ignores-generation')
    ) {
      kind = 'pages';
      let pages = 0;
      for (let va = info.start; va < info.end; va += PAGE_SIZE) {
        removed += cpu.flushPage(va / PAGE_SIZE, asid);
        pages++;
      }
      cpu.pscDropAsid(asid);
      this.stats.pageFlushes++;
      this.stats.pagesInvalidated += pages;
    } else {
      kind = 'full';
      removed = cpu.flushAsid(asid);
      this.stats.fullFlushes++;
    }
    cpu.ctxGen[asid] = mmGen;
    const bus = this.bus;
    if (bus.wants('tlb.flush')) {
      bus.emit('tlb.flush', {
        cpu: cpu.index,
        mm: loaded.id,
        pcid: this.pcidOf(asid),
        kind,
        start: kind === 'pages' ? info.start : 0,
        end: kind === 'pages' ? info.end : TLB_FLUSH_ALL,
        removed,
        reason,
      });
    }
    if (bus.wants('tlb.gen')) bus.emit('tlb.gen', { mm: loaded.id, gen: mmGen, cpu: cpu.index });
  }

  private pcidOf(asid: number): number {
    return this.options.pcid ? asid + 1 : 0;
  }

  // --- page walks ------------------------------------------------------------------------------

  /**
   * The hardware page walk of `va` (page aligned) in `mm` for `cpu` (null: a context without a
   * TLB, which walks and caches nothing): from the deepest paging-structure-cache entry that
   * covers it, else from the mm's root, caching each upper-level entry it reads. A present PTE
   * that allows the access gets its accessed bit (and dirty bit for a store) set, unless the walk
   * is speculative, and is cached. Returns the frame, or -1 (a page fault).
   */
  private walk(
    cpu: CpuTlb | null,
    mm: MmStruct,
    va: number,
    write: boolean,
    speculative: boolean,
  ): number {
    const tables = this.c.phys.tables;
    const gens = this.frameGen;
    const asid = cpu === null ? 0 : cpu.asid;
    let level = 3;
    let tablePfn = mm.pgd;
    if (cpu !== null && cpu.psc.size > 0) {
      for (let l = 0; l < 3; l++) {
        const key = CpuTlb.pscKey(va, l, asid);
        const e = cpu.psc.get(key);
        if (e === undefined) continue;
        if (tables[e.pfn] === undefined || gens[e.pfn] !== e.gen) {
          // The CPU reads whatever the frame holds now as page-table entries: the model reports
          // it and gives up the walk (no translation), dropping the cached walk of the address.
          this.reportFreedTableWalk(cpu, mm, va, l, e, speculative);
          cpu.pscDropVa(va, asid);
          return -1;
        }
        tablePfn = e.pfn;
        level = l;
        break;
      }
    }
    const step = this.sched.steps;
    while (level > 0) {
      const t = tables[tablePfn];
      if (t === undefined) return -1;
      const e = t[indexAt(va, level)]!;
      if (e === PTE_NONE) return -1;
      if (level === 1 && pmdIsLeaf(e)) {
        // A 2 MiB leaf: the walk ends here; the TLB keeps the 4 KiB piece it needs (flushes
        // of a huge mapping cover its whole 2 MiB, so a fragment is never left behind).
        const pfn = hugeLeafTranslate(this.c, mm, va, write, speculative);
        if (pfn >= 0 && cpu !== null)
          this.fill(cpu, mm, va, pfn, pteFlags(t[indexAt(va, level)]!), speculative);
        return pfn;
      }
      const child = ptePfn(e);
      if (cpu !== null) {
        cpu.pscSet(CpuTlb.pscKey(va, level - 1, asid), {
          pfn: child,
          gen: gens[child]!,
          step,
          mm: mm.id,
        });
      }
      tablePfn = child;
      level--;
    }
    const table = tables[tablePfn];
    if (table === undefined) return -1;
    const index = indexAt(va, 0);
    const pte = table[index]!;
    if (!ptePresent(pte)) return -1;
    const f = pteFlags(pte);
    if (write && (f & Pte.WRITE) === 0) return -1;
    let cur = pte;
    if (!speculative) {
      const want = f | Pte.ACCESSED | (write ? Pte.DIRTY | Pte.SOFT_DIRTY : 0);
      if (want !== f) {
        cur = pte - f + want;
        const slot: PteSlot = { table, tablePfn, index };
        this.c.pt.set(mm, slot, va, cur);
      }
    }
    const pfn = ptePfn(pte);
    if (cpu !== null) this.fill(cpu, mm, va, pfn, pteFlags(cur), speculative);
    return pfn;
  }

  private fill(
    cpu: CpuTlb,
    mm: MmStruct,
    va: number,
    pfn: number,
    f: number,
    speculative: boolean,
  ): void {
    const vpn = va / PAGE_SIZE;
    const global = (f & PAGE_GLOBAL) !== 0;
    const asidTag = global ? GLOBAL_TAG : cpu.asid;
    let i = cpu.find(vpn, asidTag);
    let evicted = -1;
    if (i < 0) {
      i = cpu.victim(vpn);
      const old = cpu.tag[i]!;
      if (old >= 0) {
        evicted = Math.floor(old / 8) * PAGE_SIZE;
        this.stats.evictions++;
      }
    }
    const writable = (f & Pte.WRITE) !== 0;
    const dirty = (f & Pte.DIRTY) !== 0;
    const bits =
      (writable ? EntryBit.WRITE : 0) |
      (dirty ? EntryBit.DIRTY : 0) |
      (global ? EntryBit.GLOBAL : 0) |
      ((f & Pte.ACCESSED) !== 0 ? EntryBit.ACCESSED : 0);
    const bus = this.bus;
    const ev = bus.wants('tlb.fill')
      ? bus.emit('tlb.fill', {
          cpu: cpu.index,
          mm: mm.id,
          va,
          pfn,
          pcid: global ? 0 : this.pcidOf(cpu.asid),
          writable,
          dirty,
          global,
          speculative,
          evicted,
        })
      : undefined;
    cpu.install(
      i,
      vpn,
      asidTag,
      pfn,
      this.frameGen[pfn]!,
      bits,
      mm.id,
      ++this.tick,
      ev?.seq ?? -1,
      this.sched.steps,
    );
    this.stats.fills++;
    if (speculative) this.stats.speculativeFills++;
  }

  // --- the stale-TLB oracle --------------------------------------------------------------------

  /**
   * A PTE changed: every cached entry of that page that the change makes wrong is marked with
   * the change (any access once the PTE maps another frame or nothing; stores once it lost its
   * write or dirty bit). The flush that completes after covering it turns the mark into poison.
   */
  private onPteSet(seq: number, step: number, mmId: number, va: number, pte: number, old: number) {
    if (!ptePresent(old)) return;
    let mode: number;
    if (!ptePresent(pte) || ptePfn(pte) !== ptePfn(old)) mode = Stale.ANY;
    else {
      const of = pteFlags(old);
      const nf = pteFlags(pte);
      const lostWrite = (of & Pte.WRITE) !== 0 && (nf & Pte.WRITE) === 0;
      const lostDirty = (of & Pte.DIRTY) !== 0 && (nf & Pte.DIRTY) === 0;
      if (!lostWrite && !lostDirty) return;
      mode = Stale.WRITE;
    }
    const st = this.byId.get(mmId);
    if (st === undefined) return;
    const vpn = Math.floor(va / PAGE_SIZE);
    const wd = EntryBit.WRITE | EntryBit.DIRTY;
    for (const cpu of this.cpus) {
      if (cpu === undefined) continue;
      for (let a = 0; a < TLB_NR_DYN_ASIDS; a++) {
        if (cpu.ctxId[a] !== st.ctxId) continue;
        const i = cpu.find(vpn, a);
        if (i < 0) continue;
        if (mode === Stale.WRITE && (cpu.bits[i]! & wd) !== wd) continue;
        const cur = cpu.stale[i]!;
        if (cur === Stale.ANY || cur === mode) continue;
        cpu.stale[i] = mode;
        cpu.staleSeq[i] = seq;
        cpu.staleStep[i] = step;
        cpu.staleOld[i] = old;
        cpu.staleNew[i] = pte;
        st.pending.push({
          cpu: cpu.index,
          index: i,
          tag: cpu.tag[i]!,
          fillTick: cpu.fillTick[i]!,
          va: vpn * PAGE_SIZE,
          changeTick: ++this.tick,
        });
      }
    }
    if (st.pending.length > MAX_PENDING_MARKS) this.prune(st);
  }

  /** Drops marks whose entry is gone (evicted, flushed or refilled). */
  private prune(st: MmTlbContext): void {
    st.pending = st.pending.filter((m) => {
      const cpu = this.cpus[m.cpu]!;
      return cpu.tag[m.index] === m.tag && cpu.fillTick[m.index] === m.fillTick;
    });
  }

  /**
   * A flush of `[start, end)` of the mm that started at `startTick` completed: every entry
   * marked by a change before it and still cached is poisoned.
   */
  private resolve(
    st: MmTlbContext,
    start: number,
    end: number,
    startTick: number,
    seq: number,
  ): void {
    if (st.pending.length === 0) return;
    const step = this.sched.steps;
    const keep: Mark[] = [];
    for (const m of st.pending) {
      if (m.changeTick > startTick || m.va < start || m.va >= end) {
        keep.push(m);
        continue;
      }
      const cpu = this.cpus[m.cpu]!;
      const i = m.index;
      if (cpu.tag[i] !== m.tag || cpu.fillTick[i] !== m.fillTick) continue;
      const mode = cpu.stale[i]!;
      if (mode === Stale.NONE || cpu.poison[i] === mode) continue;
      if (cpu.poison[i] === Stale.NONE) {
        cpu.flushSeq[i] = seq;
        cpu.flushStep[i] = step;
      }
      cpu.poison[i] = mode;
    }
    st.pending = keep;
  }

  private at(step: number, seq: number): string {
    return seq >= 0 ? `step ${step} (#${seq})` : `step ${step}`;
  }

  private reportStaleUse(cpu: CpuTlb, i: number, mm: MmStruct, va: number, write: boolean): void {
    cpu.reported[i] = 1;
    const pfn = cpu.pfn[i]!;
    const freed = (this.frameFlags[pfn]! & Frame.FREE) !== 0;
    const realloc = !freed && this.frameGen[pfn] !== cpu.gen[i];
    const uaf = freed || realloc;
    const evidence: number[] = [];
    const fillSeq = cpu.fillSeq[i]!;
    const parts: string[] = [];
    const access = write ? 'store to' : 'load from';
    parts.push(
      `cpu${cpu.index} ${access} ${hex(va)} in ${mm.toString()} used a TLB entry (pcid ${this.pcidOf(cpu.tag[i]! % 8)}) filled at ${this.at(cpu.fillStep[i]!, fillSeq)} with frame ${hex(pfn)}`,
    );
    if (fillSeq >= 0) evidence.push(fillSeq);
    const stale = cpu.stale[i]!;
    const details: Record<string, number | string | boolean> = {
      cpu: cpu.index,
      mm: mm.id,
      va,
      pfn,
      write,
      fillStep: cpu.fillStep[i]!,
    };
    if (stale !== Stale.NONE) {
      const seq = cpu.staleSeq[i]!;
      parts.push(
        `its PTE changed at ${this.at(cpu.staleStep[i]!, seq)} (${describePte(cpu.staleOld[i]!)} → ${describePte(cpu.staleNew[i]!)})`,
      );
      if (seq >= 0) evidence.push(seq);
      details.changeStep = cpu.staleStep[i]!;
    }
    if (cpu.poison[i] !== Stale.NONE) {
      const seq = cpu.flushSeq[i]!;
      parts.push(
        `the flush covering it completed at ${this.at(cpu.flushStep[i]!, seq)} without removing it from cpu${cpu.index}`,
      );
      if (seq >= 0) evidence.push(seq);
      details.flushStep = cpu.flushStep[i]!;
    } else if (stale !== Stale.NONE) {
      parts.push('no flush covering it had completed');
    } else {
      parts.push('no PTE change of this page was seen (the page was freed while still mapped)');
    }
    if (uaf) {
      const f = this.frees.get(pfn);
      parts.push(
        `the frame was freed${f !== undefined ? ` at ${this.at(f.step, f.seq)}` : ''}${realloc ? ' and reallocated' : ''}`,
      );
      if (f !== undefined && f.seq >= 0) evidence.push(f.seq);
    }
    evidence.sort((a, b) => a - b);
    this.kernel.oracles.report('x86-tlb', {
      kind: uaf ? 'tlb-use-after-free' : 'stale-tlb',
      message: `${uaf ? 'use after free through a CPU TLB entry' : 'stale CPU TLB entry used'}: ${parts.join('; ')}`,
      evidence,
      details,
    });
  }

  private reportFreedTableWalk(
    cpu: CpuTlb,
    mm: MmStruct,
    va: number,
    level: number,
    e: PscEntry,
    speculative: boolean,
  ): void {
    const what = ['PTE', 'PMD', 'PUD'][level]!;
    const f = this.frees.get(e.pfn);
    const evidence = f !== undefined && f.seq >= 0 ? [f.seq] : [];
    const freed = (this.frameFlags[e.pfn]! & Frame.FREE) !== 0;
    this.kernel.oracles.report('x86-tlb', {
      kind: 'tlb-use-after-free',
      message:
        `use after free through a paging-structure cache: cpu${cpu.index}${cpu.lazy ? ' (lazy)' : ''} ` +
        `${speculative ? 'speculatively walked' : 'walked'} ${hex(va)} of ${mm.toString()} through the ${what} table in frame ${hex(e.pfn)}, ` +
        `cached at step ${e.step}, which was ${freed ? 'freed' : 'freed and reused'}${f !== undefined ? ` at ${this.at(f.step, f.seq)}` : ''}: ` +
        'the flush before that free did not reach this CPU',
      evidence,
      details: { cpu: cpu.index, mm: mm.id, va, table: e.pfn, level, speculative },
    });
  }

  private emitMiss(cpu: CpuTlb, mm: MmStruct, vpn: number, write: boolean, cause: string): void {
    const bus = this.bus;
    if (bus.wants('tlb.miss'))
      bus.emit('tlb.miss', { cpu: cpu.index, mm: mm.id, va: vpn * PAGE_SIZE, write, cause });
  }

  private emitSwitch(
    cpu: CpuTlb,
    from: MmStruct | null,
    to: MmStruct | null,
    flush: boolean,
    reason: string,
  ): void {
    const bus = this.bus;
    if (bus.wants('tlb.switch')) {
      bus.emit('tlb.switch', {
        cpu: cpu.index,
        from: from?.id ?? 0,
        to: to?.id ?? 0,
        pcid: this.pcidOf(cpu.asid),
        flush,
        reason,
      });
    }
  }
}
