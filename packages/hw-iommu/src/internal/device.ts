/**
 * A PCIe device that does shared-virtual-memory DMA (an accelerator, a GPU, a SmartNIC): its DMA
 * engine, its ATS device TLB (ATC) with the task that executes ATS invalidation requests, and
 * its PRI side (page requests, waiting for the group response, retrying). Its own file: it is
 * the device half of the IOMMU protocol, the unit is the other.
 */
import { WaitQueue } from '@mmnsim/core';
import type { Kernel, TaskGen } from '@mmnsim/core';
import { DMA_FAULT, PAGE_SIZE } from '@mmnsim/mm';
import { cacheTag, TranslationCache } from './cache.js';
import { hex, PREEMPT, PRG_INDEX_MASK } from './constants.js';
import type { PageResponseCode } from './constants.js';
import type { PageRequestQueue } from './prq.js';
import type { QiDesc } from './qi.js';
import type { DeviceEndpoint, IommuDeviceState, IommuUnit } from './unit.js';

/** The access flags of a page request. */
export interface PagePerm {
  /** Read access requested. */
  readonly read?: boolean;
  /** Write access requested. */
  readonly write?: boolean;
  /** Execute access requested. */
  readonly exec?: boolean;
  /** Privileged (supervisor) mode request. */
  readonly priv?: boolean;
}

/** One raw page request a test or driver sends (see {@link SvaDevice.sendPageRequests}). */
export interface RawPageRequest extends PagePerm {
  /** The page address. */
  readonly va: number;
  /** Last request of its group (LPIG). */
  readonly last: boolean;
}

/** What a device's traffic was. */
export interface SvaDeviceStats {
  /** DMA accesses issued. */
  dma: number;
  /** Accesses whose first ATC lookup hit (no translation request needed). */
  atcHits: number;
  /** ATS translation requests sent. */
  translations: number;
  /** Page requests sent. */
  pageRequests: number;
  /** Page group responses received. */
  responses: number;
  /** ATS invalidation requests executed. */
  atsInvalidations: number;
  /** Accesses that ended in a fault. */
  faults: number;
}

interface Outstanding {
  readonly pasid: number;
  code: PageResponseCode | null;
}

/**
 * An SVA-capable PCIe device behind an IOMMU: PASID-tagged DMA, an ATC when ATS is enabled, and
 * page requests when PRI is. Create it with `IommuService.createDevice`; bind process address
 * spaces with `IommuService.bind`; run its DMA from a task on its engine context.
 *
 * DMA (one access of {@link SvaDevice.dma}): with ATS, an ATC hit is used at once; a miss sends a
 * translation request to the IOMMU (which walks and fills its IOTLB) and fills the ATC from the
 * completion. A failed translation sends a page request (PRI: PASID, address, access, group
 * index, last-in-group) and waits for the group response: after SUCCESS it retries the
 * translation, after INVALID or FAILURE the access faults. Without ATS every access is an
 * untranslated request the IOMMU translates.
 *
 * Context: `dma` and `sendPageRequests` run in a task on the device's engine context (they block
 * waiting for a page response, never spin). ATS invalidation requests are executed by the
 * device's own daemon task on the same context.
 *
 * ## Example
 * ```ts
 * const dev = iommu.createDevice('accel0', { engine: 'accel0', ats: true, pri: true });
 * const pasid = yield* iommu.bind('accel0', proc.mm);          // in a CPU task
 * sim.spawn('accel', 'accel0', function* () {
 *   yield* dev.dma(pasid, 0x40000000, true, 7);                 // a write, faulting the page in
 * });
 * ```
 *
 * @see pci_enable_ats
 * @see pci_enable_pri
 */
export class SvaDevice implements DeviceEndpoint {
  /** The device's ATC (null without ATS). */
  readonly atc: TranslationCache | null;
  /** Traffic counters. */
  readonly stats: SvaDeviceStats = {
    dma: 0,
    atcHits: 0,
    translations: 0,
    pageRequests: 0,
    responses: 0,
    atsInvalidations: 0,
    faults: 0,
  };
  private readonly invq: QiDesc[] = [];
  private readonly invWork: WaitQueue;
  private readonly respWq: WaitQueue;
  private readonly outstanding = new Map<number, Outstanding>();
  private readonly stopped = new Set<number>();
  private prg = 0;
  /** Page faults one access may take before it gives up (a device's retry limit). */
  readonly maxFaultRetries = 8;

  /**
   * @param kernel the kernel services.
   * @param unit the IOMMU it sits behind.
   * @param state what the IOMMU knows of it.
   * @param prq the unit's page-request queue.
   * @param engine its execution context.
   * @param atcEntries ATC capacity.
   */
  constructor(
    private readonly kernel: Kernel,
    readonly unit: IommuUnit,
    readonly state: IommuDeviceState,
    private readonly prq: PageRequestQueue,
    readonly engine: string,
    atcEntries: number,
  ) {
    this.atc = state.ats
      ? new TranslationCache(kernel, `${state.name}.atc`, atcEntries, unit.fills)
      : null;
    const sched = kernel.scheduler;
    this.invWork = new WaitQueue(sched, `${state.name} ats invalidation`);
    this.respWq = new WaitQueue(sched, `${state.name} page response`);
    state.endpoint = this;
    if (state.ats) {
      sched.spawn(`${state.name}-ats`, engine, () => this.atsEngine(), { daemon: true });
    }
  }

  /** The device's name. */
  get name(): string {
    return this.state.name;
  }

  /** Page request groups sent and not answered yet. */
  get pendingGroups(): number {
    return this.outstanding.size;
  }

  /**
   * Stops issuing page requests for `pasid` (what a driver does to its device before unbind:
   * "the device should not be issuing any more transaction for this PASID"); requests already
   * sent stay queued in the IOMMU until drained.
   */
  stop(pasid: number): void {
    this.stopped.add(pasid);
  }

  /** Lets the device use `pasid` again (after a new bind). */
  resume(pasid: number): void {
    this.stopped.delete(pasid);
  }

  /**
   * One DMA access of the 32-bit word at `va` (4-byte aligned) with `pasid`: a read returns the
   * word, a write stores `value` and returns 0; a fault returns `DMA_FAULT`.
   */
  *dma(pasid: number, va: number, write: boolean, value = 0): TaskGen<number> {
    const unit = this.unit;
    const phys = unit.core.phys;
    const vpn = Math.floor(va / PAGE_SIZE);
    const word = (va % PAGE_SIZE) >>> 2;
    const atc = this.atc;
    const tag = cacheTag(0, pasid);
    this.stats.dma++;
    yield PREEMPT; // one bus transaction: a scheduling point of the device
    let tries = 0;
    for (let faults = 0; ;) {
      let pfn: number;
      let gen: number;
      let via: string;
      const hit = atc?.lookup(tag, vpn);
      const first = tries++ === 0;
      if (hit !== undefined && (!write || hit.write)) {
        if (first) this.stats.atcHits++;
        atc!.access(hit, write);
        pfn = hit.pfn;
        gen = hit.gen;
        via = 'atc';
      } else {
        if (atc !== null) this.stats.translations++;
        const tr = unit.translate(this.state, pasid, va, write);
        if (tr.via === 'fault') {
          const f = tr.fault;
          if (
            (f === 'not-present' || f === 'write-protect') &&
            this.state.pri &&
            !this.stopped.has(pasid) &&
            faults < this.maxFaultRetries
          ) {
            faults++;
            const code = yield* this.pageRequest(pasid, va, { read: !write, write });
            if (code === 'success') continue;
          }
          this.stats.faults++;
          this.emitDma(pasid, va, write, 'fault', -1, -1);
          return DMA_FAULT;
        }
        pfn = tr.pfn;
        gen = tr.gen;
        via = tr.via;
        if (atc !== null) {
          // The translation completion fills the ATC; the access uses it next time round.
          const e = tr.entry;
          atc.fill(0, pasid, vpn, pfn, gen, tr.write, e?.mm ?? null);
          const bus = this.kernel.bus;
          if (bus.wants('iommu.atc.fill'))
            bus.emit('iommu.atc.fill', {
              device: this.name,
              pasid,
              va: vpn * PAGE_SIZE,
              pfn,
              write: tr.write,
            });
          yield PREEMPT;
          continue;
        }
        if (tr.entry !== null) unit.iotlb.access(tr.entry, write);
      }
      this.emitDma(pasid, va, write, via, pfn, gen);
      if (write) {
        if (pfn === 0) return DMA_FAULT;
        phys.write(pfn, word, value);
        return 0;
      }
      return phys.read(pfn, word);
    }
  }

  private emitDma(
    pasid: number,
    va: number,
    write: boolean,
    via: string,
    pfn: number,
    gen: number,
  ): void {
    const bus = this.kernel.bus;
    if (bus.wants('iommu.dma'))
      bus.emit('iommu.dma', { device: this.name, pasid, addr: va, write, via, pfn, gen });
  }

  /** One single-request page request group for `va`; waits for its response. */
  private *pageRequest(
    pasid: number,
    va: number,
    perm: PagePerm,
  ): TaskGen<PageResponseCode | null> {
    return yield* this.sendPageRequests(pasid, [{ va, last: true, ...perm }]);
  }

  /**
   * Sends one page request group (`reqs`, in order; the device sets last-in-group on the last one
   * only if the caller says so) with `pasid` (-1: a request without PASID), then waits for the
   * group response if the group's last request expects one (LPIG with read or write access).
   * Returns the response code, or null when no response is expected (a stop marker, a group
   * without its last request) or the request was dropped.
   */
  *sendPageRequests(
    pasid: number,
    reqs: readonly RawPageRequest[],
  ): TaskGen<PageResponseCode | null> {
    const group = this.prg;
    this.prg = (this.prg + 1) & PRG_INDEX_MASK;
    let wait = false;
    for (const r of reqs) {
      this.stats.pageRequests++;
      const expects = r.last && (r.read === true || r.write === true);
      if (expects) this.outstanding.set(group, { pasid, code: null });
      const queued = this.prq.push(this.state, pasid, r, group);
      if (expects && queued) wait = true;
      if (expects && !queued) this.outstanding.delete(group);
    }
    if (!wait) return null;
    const o = this.outstanding.get(group)!;
    yield* this.respWq.waitEvent(() => o.code !== null);
    this.outstanding.delete(group);
    return o.code;
  }

  /** See {@link DeviceEndpoint.pageResponse}. */
  pageResponse(pasid: number, group: number, code: PageResponseCode, serial: number): void {
    const o = this.outstanding.get(group);
    if (o === undefined || o.code !== null || o.pasid !== pasid) {
      this.kernel.report(
        'iommu-page-response-unknown-group',
        `${this.name} received a ${code} page response for PASID ${pasid} group ${group} (serial ${serial}) that it has no outstanding request for: the group is unknown or was already answered (drivers/iommu/io-pgfault.c: iopf_group_response)`,
      );
      return;
    }
    this.stats.responses++;
    o.code = code;
    this.respWq.wakeAll();
  }

  /** See {@link DeviceEndpoint.atsInvalidate}: queued for the device's ATS task. */
  atsInvalidate(d: QiDesc): void {
    this.invq.push(d);
    this.invWork.wakeAll();
  }

  /** The device's ATS invalidation engine: drops ATC entries, then sends the completion. */
  private *atsEngine(): TaskGen<void> {
    const q = this.invq;
    const atc = this.atc!;
    const sched = this.kernel.scheduler;
    for (;;) {
      if (q.length === 0) yield* this.invWork.waitEvent(() => q.length > 0);
      const d = q.shift()!;
      yield* sched.preempt(); // the request travels to the device
      const dropped = atc.invalidate(cacheTag(0, d.pasid), Math.floor(d.addr / PAGE_SIZE), d.pages);
      this.stats.atsInvalidations++;
      const bus = this.kernel.bus;
      if (bus.wants('iommu.atc.inv'))
        bus.emit('iommu.atc.inv', {
          device: this.name,
          pasid: d.pasid,
          addr: d.addr,
          pages: d.pages,
          dropped,
        });
      this.unit.qi.atsCompleted(d);
    }
  }

  /** For messages. */
  toString(): string {
    return `${this.name} (${hex(this.state.index)})`;
  }
}
