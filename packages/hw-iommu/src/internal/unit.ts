/**
 * One IOMMU unit (a VT-d DMAR unit or an SMMUv3): its domains, the per-device context and
 * PASID tables, its caches (IOTLB, paging-structure cache, PASID-entry cache) and the hardware
 * walk that fills them. Its own file because the DMA API, SVA, the page-request path and the
 * devices all act on it.
 */
import type { Kernel } from '@mmnsim/core';
import { mkPte, PAGE_SIZE, Pte, pteFlags, ptePfn, ptePresent } from '@mmnsim/mm';
import type { MmCore, MmStruct, MmuNotifier } from '@mmnsim/mm';
import { cacheTag, TranslationCache } from './cache.js';
import type { CacheEntry, FillClock } from './cache.js';
import { hex } from './constants.js';
import type { IommuBug, PageResponseCode } from './constants.js';
import { FlushQueue, IovaAllocator } from './iova.js';
import { InvalidationQueue } from './qi.js';
import type { QiBackend, QiDesc } from './qi.js';

/**
 * A domain's type (`IOMMU_DOMAIN_*`): `dma` translates IOVAs through its own I/O page table,
 * `identity` passes DMA addresses through as physical ones, `blocked` faults every access, `sva`
 * walks a process's CPU page tables (first-level / stage-1 with the CPU's page-table format).
 *
 * @see IOMMU_DOMAIN_DMA
 * @see IOMMU_DOMAIN_IDENTITY
 * @see IOMMU_DOMAIN_BLOCKED
 * @see IOMMU_DOMAIN_SVA
 */
export type IommuDomainType = 'dma' | 'identity' | 'blocked' | 'sva';

/** One I/O page-table entry of a DMA domain. */
export interface IoPte {
  /** The frame. */
  readonly pfn: number;
  /** True if the device may write through it. */
  readonly write: boolean;
}

/** A device and PASID attached to a domain (`struct dev_pasid_info`). */
export interface DevPasid {
  /** The device. */
  readonly dev: IommuDeviceState;
  /** The PASID. */
  readonly pasid: number;
}

/**
 * An IOMMU domain (`struct iommu_domain` / `struct dmar_domain`): a translation context with
 * its domain id (the IOTLB tag). DMA domains own an I/O page table, an IOVA allocator and (lazy
 * mode) a flush queue; SVA domains point at an mm and hold its notifier.
 *
 * @see struct iommu_domain
 */
export class IommuDomain {
  /** The I/O page table of a `dma` domain: I/O page number → entry. */
  readonly pt = new Map<number, IoPte>();
  /** The IOVA allocator of a `dma` domain. */
  readonly iova = new IovaAllocator(1, 1 << 20);
  /** The flush queue of a `dma` domain in lazy mode. */
  readonly fq: FlushQueue;
  /** Devices / PASIDs attached (SVA). */
  readonly devPasids: DevPasid[] = [];
  /** SVA: bonds using the domain (`domain->users`). */
  users = 0;
  /** SVA: the domain's mmu_notifier. */
  notifier: MmuNotifier | null = null;
  /** True once freed. */
  freed = false;

  /**
   * @param did domain id.
   * @param type see {@link IommuDomainType}.
   * @param mm the mm of an `sva` domain.
   * @param fqSize flush-queue size.
   */
  constructor(
    readonly did: number,
    readonly type: IommuDomainType,
    readonly mm: MmStruct | null,
    fqSize: number,
  ) {
    this.fq = new FlushQueue(fqSize);
  }
}

/** A PASID-table entry (VT-d scalable-mode PASID entry; SMMUv3 context descriptor). */
export interface PasidEntry {
  /** The domain it translates through. */
  readonly domain: IommuDomain;
  /** Present bit. */
  present: boolean;
  /** SMMUv3 "quiet" CD: valid but translation disabled (faults without events). */
  quiet: boolean;
}

/** What a device model gives the IOMMU so the hardware can reach it. */
export interface DeviceEndpoint {
  /** An ATS invalidation request arrived (the device completes it later through the queue). */
  atsInvalidate(d: QiDesc): void;
  /** A page group response arrived. */
  pageResponse(pasid: number, group: number, code: PageResponseCode, serial: number): void;
}

/**
 * What an IOMMU knows of one device behind it (`struct device_domain_info`): its requester id,
 * its capabilities (PASID width, ATS, PRI), its default (RID) domain and its PASID table.
 */
export class IommuDeviceState {
  /** PASID-table entries by PASID. */
  readonly pasids = new Map<number, PasidEntry>();
  /** The device model behind it, if it has one (ATS invalidations, page responses). */
  endpoint: DeviceEndpoint | null = null;

  /**
   * @param name the device's name.
   * @param index its requester id.
   * @param maxPasids PASIDs it supports (`dev->iommu->max_pasids`; 0 without PASID).
   * @param ats true if ATS is enabled.
   * @param pri true if PRI is enabled.
   * @param domain its RID domain (what DMA without PASID goes through).
   */
  constructor(
    readonly name: string,
    readonly index: number,
    readonly maxPasids: number,
    readonly ats: boolean,
    readonly pri: boolean,
    public domain: IommuDomain,
  ) {}
}

/** Why a translation failed. */
export type TranslationFault =
  'pasid-not-present' | 'pasid-disabled' | 'not-present' | 'write-protect' | 'blocked' | 'mm-gone';

/** What one translation gave (reused object: read it before the next translation). */
export interface Translation {
  /** The frame, or -1 on a fault. */
  pfn: number;
  /** Its generation. */
  gen: number;
  /** True if writes are allowed through it. */
  write: boolean;
  /** `iotlb`, `walk`, `identity`, or `fault`. */
  via: 'iotlb' | 'walk' | 'identity' | 'fault';
  /** The fault, when `via` is `fault`. */
  fault: TranslationFault | null;
  /** The IOTLB entry used or filled (null for identity / fault). */
  entry: CacheEntry | null;
}

/** Options of one unit (from the plugin options). */
export interface UnitConfig {
  /** IOTLB entries. */
  readonly iotlbEntries: number;
  /** Flush-queue size. */
  readonly fqSize: number;
  /** `vt-d` or `smmuv3`. */
  readonly flavour: 'vt-d' | 'smmuv3';
  /** SMMUv3 broadcast TLB maintenance. */
  readonly btm: boolean;
  /** Planted bugs. */
  readonly bugs: ReadonlySet<IommuBug>;
}

interface PscEntry {
  readonly tablePfn: number;
  readonly gen: number;
}

interface PasidCacheEntry {
  readonly entry: PasidEntry;
  readonly present: boolean;
  readonly quiet: boolean;
}

/**
 * One IOMMU: walks, caches and the invalidation queue. Created by the `IommuService`.
 *
 * Context: {@link IommuUnit.translate} is one hardware walk (atomic). The caches change only
 * through walks and the invalidation queue's descriptors.
 *
 * @see struct intel_iommu
 * @see struct arm_smmu_device
 */
export class IommuUnit implements QiBackend {
  /** The IOTLB (tagged by domain id, PASID, page). */
  readonly iotlb: TranslationCache;
  /** The invalidation queue. */
  readonly qi: InvalidationQueue;
  /** Devices behind it. */
  readonly devices = new Map<string, IommuDeviceState>();
  /** Domains by id. */
  readonly domains = new Map<number, IommuDomain>();
  /** Paging-structure cache: tag → 2 MiB region → the PTE table the walk used. */
  private readonly psc = new Map<number, Map<number, PscEntry>>();
  /** PASID-entry cache: requester id × PASID → snapshot. */
  private readonly pasidCache = new Map<number, PasidCacheEntry>();
  private nextDid = 2;
  private readonly tr: Translation = {
    pfn: -1,
    gen: -1,
    write: false,
    via: 'fault',
    fault: null,
    entry: null,
  };
  /** Walks, faults, paging-structure and PASID-entry cache hits so far. */
  readonly stats: Record<'walks' | 'faults' | 'pscHits' | 'pasidCacheHits', number> = {
    walks: 0,
    faults: 0,
    pscHits: 0,
    pasidCacheHits: 0,
  };

  /**
   * @param kernel the kernel services.
   * @param core the memory model.
   * @param name the unit's name (`'dmar0'`).
   * @param engine the device execution context its hardware (queue engine) runs on.
   * @param config its options.
   * @param fills the fill clock its caches share with the devices' ATCs.
   */
  constructor(
    readonly kernel: Kernel,
    readonly core: MmCore,
    readonly name: string,
    readonly engine: string,
    readonly config: UnitConfig,
    readonly fills: FillClock = { n: 0 },
  ) {
    this.iotlb = new TranslationCache(kernel, `${name}.iotlb`, config.iotlbEntries, fills);
    this.qi = new InvalidationQueue(kernel, this);
  }

  /** True if bug `b` is planted. */
  bug(b: IommuBug): boolean {
    return this.config.bugs.has(b);
  }

  /** Allocates a domain (`iommu_domain_alloc` / `domain_alloc_sva`). */
  allocDomain(type: IommuDomainType, mm: MmStruct | null = null): IommuDomain {
    // VT-d gives first-level (SVA) domains FLPT_DEFAULT_DID; distinct ids keep the tags apart here.
    const d = new IommuDomain(this.nextDid++, type, mm, this.config.fqSize);
    this.domains.set(d.did, d);
    return d;
  }

  /** Frees a domain. */
  freeDomain(d: IommuDomain): void {
    d.freed = true;
    this.domains.delete(d.did);
  }

  // --- the hardware walk ------------------------------------------------------------------

  /**
   * One translation of `addr` for `dev` (with `pasid`, or -1 for a request without PASID), as
   * the hardware does it for an untranslated DMA or an ATS translation request: PASID entry
   * (through the PASID-entry cache), IOTLB, else a walk (through the paging-structure cache)
   * that sets the accessed/dirty bits and fills the IOTLB.
   */
  translate(dev: IommuDeviceState, pasid: number, addr: number, write: boolean): Translation {
    const tr = this.tr;
    tr.entry = null;
    const vpn = Math.floor(addr / PAGE_SIZE);
    let domain: IommuDomain;
    if (pasid < 0) {
      domain = dev.domain;
      if (domain.type === 'identity') {
        tr.pfn = vpn;
        tr.gen = vpn < this.core.phys.total ? this.core.phys.generation[vpn]! : -1;
        tr.write = true;
        tr.via = 'identity';
        tr.fault = null;
        return tr;
      }
      if (domain.type === 'blocked') return this.fault('blocked');
    } else {
      const key = dev.index * 2 ** 21 + pasid;
      let pc = this.pasidCache.get(key);
      if (pc === undefined) {
        const e = dev.pasids.get(pasid);
        if (e === undefined || !e.present) return this.fault('pasid-not-present');
        pc = { entry: e, present: e.present, quiet: e.quiet };
        this.pasidCache.set(key, pc);
      } else {
        this.stats.pasidCacheHits++;
      }
      if (!pc.present) return this.fault('pasid-not-present');
      if (pc.quiet) return this.fault('pasid-disabled');
      domain = pc.entry.domain;
    }
    const tag = cacheTag(domain.did, pasid);
    const hit = this.iotlb.lookup(tag, vpn);
    if (hit !== undefined && (!write || hit.write)) {
      tr.pfn = hit.pfn;
      tr.gen = hit.gen;
      tr.write = hit.write;
      tr.via = 'iotlb';
      tr.fault = null;
      tr.entry = hit;
      return tr;
    }
    this.stats.walks++;
    return domain.type === 'sva'
      ? this.walkMm(domain, tag, pasid, vpn, write)
      : this.walkIo(domain, pasid, vpn, write);
  }

  private fault(f: TranslationFault): Translation {
    const tr = this.tr;
    this.stats.faults++;
    tr.pfn = -1;
    tr.gen = -1;
    tr.write = false;
    tr.via = 'fault';
    tr.fault = f;
    tr.entry = null;
    return tr;
  }

  private walkIo(domain: IommuDomain, pasid: number, vpn: number, write: boolean): Translation {
    const e = domain.pt.get(vpn);
    if (e === undefined) return this.fault('not-present');
    if (write && !e.write) return this.fault('write-protect');
    const gen = this.core.phys.generation[e.pfn]!;
    const entry = this.iotlb.fill(domain.did, pasid, vpn, e.pfn, gen, e.write, null);
    this.emitFill(domain.did, pasid, vpn, e.pfn, e.write);
    const tr = this.tr;
    tr.pfn = e.pfn;
    tr.gen = gen;
    tr.write = e.write;
    tr.via = 'walk';
    tr.fault = null;
    tr.entry = entry;
    return tr;
  }

  /** First-level (VT-d) / stage-1 (SMMUv3) walk of the CPU page tables of an SVA domain's mm. */
  private walkMm(
    domain: IommuDomain,
    tag: number,
    pasid: number,
    vpn: number,
    write: boolean,
  ): Translation {
    const mm = domain.mm!;
    const va = vpn * PAGE_SIZE;
    if (mm.exited || mm.freed) {
      this.kernel.report(
        'iommu-walk-freed-tables',
        `${this.name} walked the page tables of ${mm.toString()} for PASID ${pasid} at ${hex(va)} after the mm exited: its PASID entry was not torn down in the notifier's release (drivers/iommu/intel/svm.c: intel_mm_release), so the hardware walks freed page tables instead of faulting`,
      );
      return this.fault('mm-gone');
    }
    const phys = this.core.phys;
    const slot = this.core.pt.lookup(mm, va);
    // The paging-structure cache: the PTE table this region resolved to last time.
    const region = Math.floor(vpn / 512);
    let regions = this.psc.get(tag);
    const cached = regions?.get(region);
    if (cached !== undefined) {
      this.stats.pscHits++;
      if (slot === null || slot.tablePfn !== cached.tablePfn) {
        if (phys.isFree(cached.tablePfn) || phys.generation[cached.tablePfn] !== cached.gen) {
          this.kernel.report(
            'iommu-stale-paging-structure',
            `${this.name} resolved ${hex(va)} of ${mm.toString()} (PASID ${pasid}) through a cached page-table pointer to frame ${cached.tablePfn}, which was freed: a page-table free was not followed by an IOTLB/paging-structure invalidation`,
          );
          return this.fault('not-present');
        }
      }
    }
    if (slot === null) return this.fault('not-present');
    const pte = slot.table[slot.index]!;
    if (!ptePresent(pte) || (pteFlags(pte) & Pte.USER) === 0) return this.fault('not-present');
    let f = pteFlags(pte);
    if (write && (f & Pte.WRITE) === 0) return this.fault('write-protect');
    if (regions === undefined) {
      regions = new Map();
      this.psc.set(tag, regions);
    }
    if (cached === undefined || cached.tablePfn !== slot.tablePfn)
      regions.set(region, { tablePfn: slot.tablePfn, gen: phys.generation[slot.tablePfn]! });
    // The walk sets the accessed bit (and the dirty bit for a write), as the CPU's does.
    const want = f | Pte.ACCESSED | (write ? Pte.DIRTY | Pte.SOFT_DIRTY : 0);
    const pfn = ptePfn(pte);
    if (want !== f) {
      this.core.pt.set(mm, slot, va, mkPte(pfn, want));
      f = want;
    }
    const w = (f & Pte.WRITE) !== 0 && (f & Pte.DIRTY) !== 0;
    const gen = phys.generation[pfn]!;
    const entry = this.iotlb.fill(domain.did, pasid, vpn, pfn, gen, w, mm);
    this.emitFill(domain.did, pasid, vpn, pfn, w);
    const tr = this.tr;
    tr.pfn = pfn;
    tr.gen = gen;
    tr.write = w;
    tr.via = 'walk';
    tr.fault = null;
    tr.entry = entry;
    return tr;
  }

  private emitFill(did: number, pasid: number, vpn: number, pfn: number, write: boolean): void {
    const bus = this.kernel.bus;
    if (bus.wants('iommu.iotlb.fill'))
      bus.emit('iommu.iotlb.fill', {
        unit: this.name,
        did,
        pasid,
        va: vpn * PAGE_SIZE,
        pfn,
        write,
      });
  }

  // --- the queue's backend -----------------------------------------------------------------

  /** See {@link QiBackend.execute}. */
  execute(d: QiDesc): void {
    const vpn = Math.floor(d.addr / PAGE_SIZE);
    if (d.kind === 'iotlb') {
      if (d.pages === 0) this.iotlb.invalidateDomain(d.did);
      else this.iotlb.invalidate(cacheTag(d.did, -1), vpn, d.pages);
    } else if (d.kind === 'piotlb') {
      const tag = cacheTag(d.did, d.pasid);
      this.iotlb.invalidate(tag, vpn, d.pages);
      // IH = 0: the paging-structure caches of the PASID go too (all of them: see the README).
      this.psc.delete(tag);
    } else if (d.kind === 'pasid-cache') {
      const dev = this.devices.get(d.device);
      if (dev !== undefined) this.pasidCache.delete(dev.index * 2 ** 21 + d.pasid);
      else
        for (const k of [...this.pasidCache.keys()])
          if (k % 2 ** 21 === d.pasid) this.pasidCache.delete(k);
    }
  }

  /** See {@link QiBackend.sendAtsInvalidation}. */
  sendAtsInvalidation(d: QiDesc): void {
    const dev = this.devices.get(d.device);
    if (dev?.endpoint == null) this.qi.atsCompleted(d);
    else dev.endpoint.atsInvalidate(d);
  }

  /** Drops the paging-structure cache of a tag (with a broadcast TLBI on SMMUv3 with BTM). */
  dropPsc(did: number, pasid: number): void {
    this.psc.delete(cacheTag(did, pasid));
  }
}
