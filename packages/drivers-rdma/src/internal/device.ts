import { Errno, WaitQueue } from '@mmnsim/core';
import type { Kernel, Task, TaskGen } from '@mmnsim/core';
import { PAGE_SIZE, SecondaryMmuEvents } from '@mmnsim/mm';
import type {
  DmaAgent,
  MmCore,
  MmStruct,
  MmuNotifierSubsystem,
  Process,
  SecondaryMapping,
  SecondaryMmu,
  SecondaryMmuKind,
} from '@mmnsim/mm';
import { IbAccess, ibAccessWritable } from './constants.js';
import type { RdmaBug } from './constants.js';
import type { MemoryRegion, OdpStats } from './mr.js';
import { OdpMr, PinnedMr } from './mr.js';
import { handleOdpFault, odpDeregister, odpRegister } from './odp.js';
import type { RdmaOptions } from './options.js';
import { pinnedDeregister, pinnedRegister } from './pinned.js';
import { QueuePair } from './qp.js';
import type { PageFaultRecord } from './qp.js';
import type { Umr } from './umr.js';
import { umrEngine } from './umr.js';

/**
 * What a device needs from the simulation and from the {@link RdmaService} that created it.
 * @internal
 */
export interface RdmaEnv {
  /** Kernel services. */
  readonly kernel: Kernel;
  /** The memory model. */
  readonly core: MmCore;
  /** The MMU notifier subsystem. */
  readonly mmn: MmuNotifierSubsystem;
  /** The plugin's options. */
  readonly options: RdmaOptions;
  /** A fresh memory key. */
  nextKey(): number;
  /** `mm->pinned_vm`, in pages. */
  pinnedVm(mm: MmStruct): number;
  /** Sets `mm->pinned_vm`. */
  setPinnedVm(mm: MmStruct, pages: number): void;
  /** An MR became visible (`added`) or went away. */
  onMr(mr: MemoryRegion, added: boolean): void;
}

/** Options of a device after validation. @internal */
export interface ResolvedDeviceOptions {
  /** Engine context name. */
  readonly engine: string;
  /** CPU of the fault kworker. */
  readonly faultCpu: number;
  /** Deliberate bugs. */
  readonly bugs: readonly RdmaBug[];
}

/**
 * An RDMA NIC and its driver (an mlx5 `ib_device`): memory regions and their MTTs, queue pairs
 * whose DMA engines execute work requests, the UMR engine that writes MTTs, and the page-fault
 * kworker that serves the NIC's faults on ODP MRs.
 *
 * Tasks: the DMA engine of each queue pair and the UMR engine run on the device's execution
 * context (`engine`, a `devices` entry of the simulation); the page-fault handler runs as a
 * kworker on CPU `faultCpu`. All are daemons.
 *
 * For the oracles the device is a {@link SecondaryMmu} of kind `'shadow'` holding the MTT
 * entries of its ODP MRs (reported as `smmu.*` events under its name), and {@link
 * RdmaDevice.pinnedMmu} one of kind `'tlb'` holding those of its pinned MRs: pinned
 * translations legitimately survive every invalidation (the pin keeps the frames), so only the
 * frame checks (use after free, mapping of a freed frame) apply to them.
 *
 * ## Example
 * ```ts
 * const nic = sim.get(RdmaService).createDevice('mlx5_0', { engine: 'nic0' });
 * sim.spawn('app', 0, function* () {
 *   const mr = yield* nic.registerOdpMr(proc, buf, len, IbAccess.LOCAL_WRITE | IbAccess.REMOTE_WRITE);
 *   if (typeof mr === 'number') return; // a negated errno
 *   yield* nic.deregisterMr(mr);
 * });
 * ```
 *
 * @see struct mlx5_ib_dev
 */
export class RdmaDevice implements SecondaryMmu {
  /** See {@link SecondaryMmu.kind}: the ODP MTTs are the device's own copies of translations. */
  readonly kind: SecondaryMmuKind = 'shadow';
  /** The execution context of the NIC's engines. */
  readonly engine: string;
  /** The CPU of the page-fault kworker. */
  readonly faultCpu: number;
  /** The deliberate bugs this device was created with (empty for a correct driver). */
  readonly bugs: ReadonlySet<RdmaBug>;
  /** The secondary MMU of the pinned MRs (name `<device>/pinned`, kind `'tlb'`). */
  readonly pinnedMmu: SecondaryMmu;
  /** The UMR engine task. */
  readonly umrTask: Task;
  /** The page-fault kworker task. */
  readonly faultTask: Task;
  /** Why the last registration on this device failed (null if none failed). */
  lastError: string | null = null;
  /** @internal `smmu.*` events of the ODP MTTs. */
  readonly events: SecondaryMmuEvents;
  /** @internal `smmu.*` events of the pinned MTTs. */
  readonly pinnedEvents: SecondaryMmuEvents;
  /** @internal Posted UMRs, executed in order by the UMR engine. */
  readonly umrQueue: Umr[] = [];
  /** @internal The UMR engine sleeps here. */
  readonly umrWork: WaitQueue;
  /** @internal Posters of UMRs sleep here until theirs is done. */
  readonly umrDone: WaitQueue;
  /** @internal Deregistration waits here for the fault handlers of an MR. */
  readonly mrIdle: WaitQueue;
  private readonly faults: PageFaultRecord[] = [];
  private readonly faultWork: WaitQueue;
  private readonly mrs = new Map<number, MemoryRegion>();
  private readonly qps: QueuePair[] = [];

  /**
   * Created by {@link RdmaService.createDevice}.
   * @param name the device's name (`'mlx5_0'`).
   * @param env the simulation services. @internal
   * @param agent the DMA agent its DMA goes through.
   * @param options engine, fault CPU and bugs.
   */
  constructor(
    readonly name: string,
    /** @internal */ readonly env: RdmaEnv,
    readonly agent: DmaAgent,
    options: ResolvedDeviceOptions,
  ) {
    const k = env.kernel;
    const sched = k.scheduler;
    this.engine = options.engine;
    this.faultCpu = options.faultCpu;
    this.bugs = new Set(options.bugs);
    this.events = new SecondaryMmuEvents(k, name);
    this.pinnedEvents = new SecondaryMmuEvents(k, `${name}/pinned`);
    this.umrWork = new WaitQueue(sched, `${name} UMR queue`);
    this.umrDone = new WaitQueue(sched, `${name} UMR completion`);
    this.mrIdle = new WaitQueue(sched, `${name} mkey usecount`);
    this.faultWork = new WaitQueue(sched, `${name} page-fault EQ`);
    this.pinnedMmu = {
      name: `${name}/pinned`,
      kind: 'tlb',
      mappings: (mm?: MmStruct) => this.mappingsOf('pinned', mm),
    };
    this.umrTask = sched.spawn(`${name}-umr`, this.engine, () => umrEngine(this), { daemon: true });
    this.faultTask = sched.spawn(`${name}-pf`, this.faultCpu, () => this.faultWorker(), {
      daemon: true,
    });
  }

  /** The registered memory regions (live or being torn down), by key order. */
  get memoryRegions(): MemoryRegion[] {
    return [...this.mrs.values()];
  }

  /** The queue pairs created so far. */
  get queuePairs(): readonly QueuePair[] {
    return this.qps;
  }

  /** The memory region with key `key`, if registered. */
  mr(key: number): MemoryRegion | undefined {
    return this.mrs.get(key);
  }

  /** See {@link SecondaryMmu.mappings}: the present MTT entries of the ODP MRs. */
  mappings(mm?: MmStruct): Iterable<SecondaryMapping> {
    return this.mappingsOf('odp', mm);
  }

  private *mappingsOf(kind: 'odp' | 'pinned', mm?: MmStruct): Iterable<SecondaryMapping> {
    for (const mr of this.mrs.values()) {
      if (mr.kind !== kind || (mm !== undefined && mr.mm !== mm)) continue;
      const mtt = mr.mtt;
      for (let i = 0; i < mtt.size; i++) {
        const a = mtt.access[i]!;
        if (a === 0) continue;
        yield {
          mm: mr.mm,
          va: mr.start + i * PAGE_SIZE,
          pfn: mtt.pfn[i]!,
          gen: mtt.gen[i]!,
          writable: (a & 2) !== 0,
        };
      }
    }
  }

  /**
   * Creates a queue pair and its DMA engine (`ib_create_qp` + the transitions to RTS).
   *
   * @see ib_create_qp
   */
  createQp(): QueuePair {
    const qp = new QueuePair(this, this.qps.length);
    this.qps.push(qp);
    return qp;
  }

  /**
   * `ibv_reg_mr(IB_ACCESS_ON_DEMAND | access)` → `ib_umem_odp_get` + mlx5 `create_user_odp_mr`:
   * registers `[addr, addr + length)` of `process` as an on-demand-paging MR. Nothing is pinned;
   * the pages the CPU already maps are DMA-mapped and entered in the MTT at once (the SNAPSHOT
   * pass), the others when the NIC faults on them. Returns the MR, or -EINVAL (bad range, or
   * the process has no users left), or what the interval insert returned.
   *
   * Context: a task of `process` (the kernel uses `current->mm`); may sleep; no `mmap_lock` held.
   *
   * @param process the owning process.
   * @param addr first byte (the iova).
   * @param length bytes.
   * @param access `IbAccess` bits (ON_DEMAND is implied).
   * @see ib_umem_odp_get
   */
  *registerOdpMr(
    process: Process,
    addr: number,
    length: number,
    access: number,
  ): TaskGen<OdpMr | number> {
    const acc = access | IbAccess.ON_DEMAND;
    return yield* odpRegister(this, process, addr, length, acc, ibAccessWritable(acc));
  }

  /**
   * `ibv_reg_mr(access)` without ON_DEMAND → `ib_umem_get`: pins every page of `[addr, addr +
   * length)` with `pin_user_pages_fast(FOLL_LONGTERM [| FOLL_WRITE])`, accounting them in the
   * mm's `pinned_vm` against RLIMIT_MEMLOCK (`memlockLimitPages`), DMA-maps them and programs the
   * MTT. Returns the MR or a negated errno: -EOPNOTSUPP (ON_DEMAND given), -EINVAL (bad range),
   * -EPERM (RLIMIT_MEMLOCK 0 without CAP_IPC_LOCK), -ENOMEM (over RLIMIT_MEMLOCK: the
   * `rdma.mr.reg_fail` event carries the arithmetic), or the pinning's error (-EFAULT for an
   * unmapped page …).
   *
   * Context: a task of `process`; may sleep; no `mmap_lock` held.
   *
   * @param process the owning process.
   * @param addr first byte.
   * @param length bytes.
   * @param access `IbAccess` bits.
   * @see ib_umem_get
   */
  *registerPinnedMr(
    process: Process,
    addr: number,
    length: number,
    access: number,
  ): TaskGen<PinnedMr | number> {
    if ((access & IbAccess.ON_DEMAND) !== 0) {
      return this.regFail(
        'pinned',
        process.mm,
        addr,
        length,
        -Errno.EOPNOTSUPP,
        'ib_umem_get does not take IB_ACCESS_ON_DEMAND: use registerOdpMr',
      );
    }
    return yield* pinnedRegister(this, process, addr, length, access, ibAccessWritable(access));
  }

  /**
   * `ibv_dereg_mr`: stops the NIC from using the MR and releases its pages — for ODP: wait for
   * running fault handlers, revoke the mkey, DMA-unmap every page, remove the interval
   * subscription; for pinned: revoke, DMA-unmap, unpin (dirtying if writable), give the pages
   * back to `pinned_vm`. Work requests still using it fail with an access error. Returns 0, or
   * -EINVAL if the MR is not a live MR of this device.
   *
   * Context: process context; may sleep; not from a notifier callback.
   *
   * @see ib_dereg_mr
   */
  *deregisterMr(mr: MemoryRegion): TaskGen<number> {
    if (mr.device !== this || mr.state !== 'live') return -Errno.EINVAL;
    if (mr instanceof OdpMr) yield* odpDeregister(this, mr);
    else if (mr instanceof PinnedMr) yield* pinnedDeregister(this, mr);
    return 0;
  }

  /** @internal An MR becomes reachable by its key. */
  addMr(mr: MemoryRegion): void {
    this.mrs.set(mr.key, mr);
    this.env.onMr(mr, true);
    const bus = this.env.kernel.bus;
    if (bus.wants('rdma.mr.reg')) {
      bus.emit('rdma.mr.reg', {
        dev: this.name,
        mr: mr.key,
        kind: mr.kind,
        mm: mr.mm.id,
        addr: mr.addr,
        length: mr.length,
        access: mr.access,
        pages: mr.pages,
      });
    }
  }

  /** @internal An MR is gone. */
  removeMr(mr: MemoryRegion): void {
    this.mrs.delete(mr.key);
    this.env.onMr(mr, false);
    if (mr instanceof OdpMr) {
      const r = this.retiredStats;
      for (const k of Object.keys(r) as (keyof OdpStats)[]) r[k] += mr.stats[k];
    }
    const bus = this.env.kernel.bus;
    if (bus.wants('rdma.mr.dereg')) bus.emit('rdma.mr.dereg', { dev: this.name, mr: mr.key });
  }

  /** @internal Reports a failed registration and returns its errno. */
  regFail(
    kind: 'odp' | 'pinned',
    mm: MmStruct,
    addr: number,
    length: number,
    errno: number,
    reason: string,
  ): number {
    const bus = this.env.kernel.bus;
    if (bus.wants('rdma.mr.reg_fail'))
      bus.emit('rdma.mr.reg_fail', {
        dev: this.name,
        kind,
        mm: mm.id,
        addr,
        length,
        errno,
        reason,
      });
    this.lastError = reason;
    return errno;
  }

  /** @internal The NIC queues a page-fault event (the EQ interrupt schedules the kworker). */
  raiseFault(pf: PageFaultRecord): void {
    this.faults.push(pf);
    this.faultWork.wakeAll();
  }

  /**
   * The page-fault kworker (`mlx5_ib_eqe_pf_action` on the `mlx5_ib_page_fault` workqueue):
   * handles one fault at a time, then resumes the stalled queue pair with the result
   * (`mlx5_ib_page_fault_resume`).
   */
  private *faultWorker(): TaskGen<void> {
    const q = this.faults;
    const bus = this.env.kernel.bus;
    for (;;) {
      yield* this.faultWork.waitEvent(() => q.length > 0);
      const pf = q.shift()!;
      const r =
        pf.mr instanceof OdpMr
          ? yield* handleOdpFault(this, pf.mr, pf.va, pf.bytes)
          : -Errno.EFAULT;
      pf.result = r;
      if (bus.wants('rdma.pf.resume'))
        bus.emit('rdma.pf.resume', { dev: this.name, qp: pf.qp.qpn, mr: pf.mr.key, result: r });
      pf.qp.resume.wakeAll();
    }
  }

  /** Counters summed over the device's live ODP MRs and the ones it deregistered. */
  get odpStats(): Readonly<OdpStats> {
    const sum = { ...this.retiredStats };
    for (const mr of this.mrs.values()) {
      if (!(mr instanceof OdpMr)) continue;
      for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += mr.stats[k];
    }
    return sum;
  }

  /** @internal Counters of deregistered ODP MRs. */
  readonly retiredStats: OdpStats = {
    faults: 0,
    faultPages: 0,
    busyRetries: 0,
    collisions: 0,
    timeouts: 0,
    invalidations: 0,
    refused: 0,
    zapped: 0,
    unmapped: 0,
  };
}
