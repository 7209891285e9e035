/**
 * The IOMMU model's oracle: the rules of IOMMU drivers that the generic stale-mapping oracles
 * of `@mmnsim/mm` cannot see (DMA-domain translations, PASID lifetime, flush queues, page
 * request groups). Its own file, as each package's oracle is.
 */
import type { Oracle, OracleContext, SimEvent } from '@mmnsim/core';
import { PAGE_SIZE, Pte, pteFlags, ptePfn, ptePresent } from '@mmnsim/mm';
import type { MmCore } from '@mmnsim/mm';
import { cacheTag } from './cache.js';
import type { CacheEntry, TranslationCache } from './cache.js';
import { hex } from './constants.js';
import type { PageRequestQueue } from './prq.js';
import type { IommuUnit } from './unit.js';

/** What the oracle needs of the IOMMU service. */
export interface IommuOracleTarget {
  /** The memory model. */
  readonly core: MmCore;
  /** The IOMMU. */
  readonly unit: IommuUnit;
  /** Its page-request queue. */
  readonly prq: PageRequestQueue;
  /** Every ATC of every device (live). */
  atcs(): Iterable<TranslationCache>;
}

/**
 * Checks the IOMMU rules:
 * - `iommu-dma-use-after-free`: a device access reached a frame that is free, or was
 *   reallocated since the translation was made (through an IOTLB or ATC entry, DMA or SVA);
 * - `iommu-translation-survived-invalidation`: when `arch_invalidate_secondary_tlbs` returned,
 *   an IOTLB or ATC entry of the range, filled before the call, still disagrees with the CPU
 *   page table (the secondary TLB must be invalidated whenever the CPU's is);
 * - `iommu-dma-after-release`: a DMA with a PASID succeeded after the mm's `release` or the
 *   unbind of that PASID (it must fault instead of using freed page tables or stale caches);
 * - `iommu-iova-reused-before-flush`: an IOVA was handed out again while the IOTLB or an ATC
 *   still held a translation of it (lazy mode must flush before freeing IOVAs);
 * - `iommu-unbind-prq-pending`: unbind detached a PASID with page requests of it still queued;
 * - `iommu-page-response-before-fault`: a SUCCESS group response was sent before every fault of
 *   the group was handled.
 * The model itself reports `iommu-walk-freed-tables`, `iommu-stale-paging-structure` and
 * `iommu-page-response-unknown-group` where it sees them.
 *
 * @see intel_arch_invalidate_secondary_tlbs
 * @see intel_mm_release
 * @see iommu_dma_free_iova
 * @see intel_drain_pasid_prq
 * @see iopf_group_response
 */
export class IommuOracle implements Oracle {
  /** See {@link Oracle.id}. */
  readonly id = 'iommu';
  private flushes = new Map<number, number>();
  private dead = new Map<string, number>();
  private groupSize = new Map<number, number>();
  private handled = new Map<number, number>();

  /** @param target the IOMMU service. */
  constructor(private readonly target: IommuOracleTarget) {}

  /** See {@link Oracle.attach}. */
  attach(ctx: OracleContext): void {
    this.flushes = new Map();
    this.dead = new Map();
    this.groupSize = new Map();
    this.handled = new Map();
    const bus = ctx.bus;
    bus.on('iommu.dma').subscribe((e) => this.onDma(ctx, e));
    bus.on('iommu.sva.flush').subscribe((e) => this.flushes.set(e.task, e.data.stamp));
    bus.on('mmn.secondary_tlbs').subscribe((e) => this.onFlushed(ctx, e));
    bus.on('iommu.sva.release').subscribe((e) => {
      for (const dev of this.target.unit.devices.values()) {
        const pe = dev.pasids.get(e.data.pasid);
        if (pe !== undefined && pe.domain.mm?.id === e.data.mm)
          this.dead.set(`${dev.name}|${e.data.pasid}`, e.seq);
      }
    });
    bus.on('iommu.sva.unbind').subscribe((e) => {
      this.dead.set(`${e.data.device}|${e.data.pasid}`, e.seq);
      this.onUnbind(ctx, e);
    });
    bus.on('iommu.sva.bind').subscribe((e) => {
      if (e.data.result === 0) this.dead.delete(`${e.data.device}|${e.data.pasid}`);
    });
    bus.on('iommu.iova.alloc').subscribe((e) => this.onIovaAlloc(ctx, e));
    bus.on('iommu.iopf.queue').subscribe((e) => this.groupSize.set(e.data.serial, e.data.faults));
    bus
      .on('iommu.iopf.handle')
      .subscribe((e) =>
        this.handled.set(e.data.serial, (this.handled.get(e.data.serial) ?? 0) + 1),
      );
    bus.on('iommu.page_response').subscribe((e) => {
      const d = e.data;
      if (d.serial < 0 || d.code !== 'success') return;
      const n = this.groupSize.get(d.serial) ?? 0;
      const h = this.handled.get(d.serial) ?? 0;
      if (h < n)
        ctx.report({
          kind: 'iommu-page-response-before-fault',
          message: `a SUCCESS page response went to ${d.device} for PASID ${d.pasid} group ${d.group} after ${h} of its ${n} fault(s) were handled: the device retries its translation before handle_mm_fault populated the page (drivers/iommu/iommu-sva.c: iommu_sva_handle_iopf answers after the faults)`,
          evidence: [e.seq],
        });
    });
  }

  private onDma(ctx: OracleContext, e: SimEvent<'iommu.dma'>): void {
    const d = e.data;
    if (d.pfn < 0) return;
    // The key string is built only when some PASID is dead (not on every healthy access).
    if (d.pasid >= 0 && this.dead.size > 0) {
      const since = this.dead.get(`${d.device}|${d.pasid}`);
      if (since !== undefined) {
        ctx.report({
          kind: 'iommu-dma-after-release',
          message: `${d.device} ${d.write ? 'wrote' : 'read'} ${hex(d.addr)} with PASID ${d.pasid} through its ${d.via} (frame ${d.pfn}) after the PASID was released or unbound: the PASID entry and the caches must be torn down so such DMA faults (drivers/iommu/intel/svm.c: intel_mm_release)`,
          evidence: [since, e.seq],
        });
        return;
      }
    }
    if (d.via === 'identity') return;
    const phys = this.target.core.phys;
    if (d.pfn >= phys.total) return;
    const free = phys.isFree(d.pfn);
    const gen = phys.generation[d.pfn]!;
    if (!free && gen === d.gen) return;
    ctx.report({
      kind: 'iommu-dma-use-after-free',
      message: `${d.device} ${d.write ? 'wrote' : 'read'} ${hex(d.addr)}${d.pasid >= 0 ? ` (PASID ${d.pasid})` : ''} through its ${d.via} entry to frame ${d.pfn}, which ${free ? 'is free' : `was freed and reallocated (generation ${d.gen} → ${gen})`}: a stale IOMMU translation outlived its invalidation`,
      evidence: [e.seq],
    });
  }

  private stale(core: MmCore, e: CacheEntry): boolean {
    const mm = e.mm!;
    if (mm.exited) return true;
    const pte = core.pt.pte(mm, e.vpn * PAGE_SIZE);
    if (!ptePresent(pte) || ptePfn(pte) !== e.pfn) return true;
    return e.write && (pteFlags(pte) & Pte.WRITE) === 0;
  }

  private onFlushed(ctx: OracleContext, e: SimEvent<'mmn.secondary_tlbs'>): void {
    const stamp = this.flushes.get(e.task);
    if (stamp === undefined) return;
    this.flushes.delete(e.task);
    const { mm, start, end } = e.data;
    const lo = Math.floor(start / PAGE_SIZE);
    const hi = Math.ceil(end / PAGE_SIZE);
    const core = this.target.core;
    const caches = [this.target.unit.iotlb, ...this.target.atcs()];
    for (const c of caches) {
      for (const x of c.entries()) {
        if (x.mm === null || x.mm.id !== mm || x.stamp > stamp || x.vpn < lo || x.vpn >= hi)
          continue;
        if (!this.stale(core, x)) continue;
        ctx.report({
          kind: 'iommu-translation-survived-invalidation',
          message: `${c.name} still translates ${hex(x.vpn * PAGE_SIZE)} of mm#${mm} (PASID ${x.pasid}) → frame ${x.pfn}${x.write ? ' writable' : ''} after arch_invalidate_secondary_tlbs(${hex(start)}, ${hex(end)}) returned, and the CPU page table no longer says so: the IOTLB and the device TLB must be invalidated, and the invalidation completed, before the CPU flush returns (drivers/iommu/intel/svm.c: intel_arch_invalidate_secondary_tlbs)`,
          evidence: [e.seq],
        });
        return;
      }
    }
  }

  private onIovaAlloc(ctx: OracleContext, e: SimEvent<'iommu.iova.alloc'>): void {
    const { did, iova, pages } = e.data;
    const lo = iova / PAGE_SIZE;
    const iotlb = this.target.unit.iotlb;
    // The IOTLB first, then every ATC, in that order (no array built per allocation).
    if (this.reusedIn(ctx, e, iotlb, cacheTag(did, -1), lo, pages)) return;
    for (const c of this.target.atcs())
      if (this.reusedIn(ctx, e, c, cacheTag(0, -1), lo, pages)) return;
  }

  /** Reports the first page of `[lo, lo + pages)` that `c` still translates under `tag`. */
  private reusedIn(
    ctx: OracleContext,
    e: SimEvent<'iommu.iova.alloc'>,
    c: TranslationCache,
    tag: number,
    lo: number,
    pages: number,
  ): boolean {
    for (let p = lo; p < lo + pages; p++) {
      const x = c.peek(tag, p);
      if (x === undefined) continue;
      ctx.report({
        kind: 'iommu-iova-reused-before-flush',
        message: `IOVA ${hex(p * PAGE_SIZE)} of domain ${e.data.did} was handed out again while ${c.name} still translates it to frame ${x.pfn}: an unmapped IOVA may be freed only after the IOTLB flush that covers it (drivers/iommu/dma-iommu.c: queue_iova / fq_ring_free)`,
        evidence: [e.seq],
      });
      return true;
    }
    return false;
  }

  private onUnbind(ctx: OracleContext, e: SimEvent<'iommu.sva.unbind'>): void {
    const dev = this.target.unit.devices.get(e.data.device);
    if (dev === undefined || !this.target.prq.pendingFor(dev, e.data.pasid)) return;
    ctx.report({
      kind: 'iommu-unbind-prq-pending',
      message: `${e.data.device} was unbound from PASID ${e.data.pasid} with page requests of that PASID still queued: unbind must drain them first (drivers/iommu/intel/prq.c: intel_drain_pasid_prq), or their faults run on a detached domain`,
      evidence: [e.seq],
    });
  }
}
