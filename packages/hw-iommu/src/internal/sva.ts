/**
 * Shared virtual addressing (drivers/iommu/iommu-sva.c with the VT-d and SMMUv3 SVA drivers):
 * global PASIDs per mm, one SVA domain per mm per IOMMU with a users count, bind/unbind with
 * their errno rules, and the SVA domain's mmu_notifier (`arch_invalidate_secondary_tlbs` and
 * `release`). Its own file: it is the part of the model the notifier subsystem calls into.
 */
import { Errno, Mutex } from '@mmnsim/core';
import type { Kernel, TaskGen } from '@mmnsim/core';
import { MmuNotifier, PAGE_SIZE, TASK_SIZE } from '@mmnsim/mm';
import type { MmStruct, MmuNotifierOps, MmuNotifierSubsystem } from '@mmnsim/mm';
import { cacheTag } from './cache.js';
import type { FillClock } from './cache.js';
import { FIRST_GLOBAL_PASID, PASID_SPACE } from './constants.js';
import type { PageRequestQueue } from './prq.js';
import type { QiDesc } from './qi.js';
import type { IommuDeviceState, IommuDomain, IommuUnit } from './unit.js';

type Desc = Omit<QiDesc, 'id' | 'done'>;

/** `struct iommu_mm_data`: the mm's global PASID and its SVA domains (one per IOMMU). */
interface IommuMm {
  readonly pasid: number;
  readonly domains: IommuDomain[];
}

/** A bond (`struct iommu_sva`): device + mm, refcounted by binds. */
interface SvaHandle {
  users: number;
  readonly dev: IommuDeviceState;
  readonly unit: IommuUnit;
  readonly domain: IommuDomain;
  readonly pasid: number;
}

/** The largest chunk one page-selective invalidation covers (2^MAMV pages; MAMV 9 here). */
const MAX_CHUNK_PAGES = 512;
/** Ranges of more pages than this get one PASID-wide flush instead of chunks. */
const FULL_FLUSH_PAGES = 64 * MAX_CHUNK_PAGES;

/** One page-selective invalidation chunk. */
export interface PsiChunk {
  /** First address. */
  readonly addr: number;
  /** Pages (a power of two, `addr` aligned to it). */
  readonly pages: number;
}

/** One bond of an mm: a device, its IOMMU and the PASID. */
export interface SvaBond {
  /** The device. */
  readonly dev: IommuDeviceState;
  /** Its IOMMU. */
  readonly unit: IommuUnit;
  /** The PASID. */
  readonly pasid: number;
}

/**
 * `[start, end)` as naturally aligned power-of-two page chunks (each at most
 * 512 pages), as the VT-d page-selective invalidation needs them (address mask).
 */
export function psiChunks(start: number, end: number): PsiChunk[] {
  const out: PsiChunk[] = [];
  let vpn = Math.floor(start / PAGE_SIZE);
  const last = Math.ceil(end / PAGE_SIZE);
  while (vpn < last) {
    let n = 1;
    while (n < MAX_CHUNK_PAGES && vpn % (n * 2) === 0 && vpn + n * 2 <= last) n *= 2;
    out.push({ addr: vpn * PAGE_SIZE, pages: n });
    vpn += n;
  }
  return out;
}

/**
 * The SVA layer: binds process address spaces to devices under the global `iommu_sva_lock`.
 *
 * Context: bind and unbind sleep (the mutex, notifier registration, draining page requests).
 *
 * @see iommu_sva_bind_device
 * @see iommu_sva_unbind_device
 */
export class SvaManager {
  private readonly lock: Mutex;
  private readonly mms = new Map<MmStruct, IommuMm>();
  private readonly used = new Set<number>();
  private readonly handles = new Map<string, SvaHandle>();
  private readonly ops: MmuNotifierOps;
  private readonly domainOf = new Map<MmuNotifier, { unit: IommuUnit; domain: IommuDomain }>();
  /** Binds, unbinds (detaches), invalidation hooks and releases so far. */
  readonly stats: Record<'binds' | 'unbinds' | 'invalidations' | 'releases', number> = {
    binds: 0,
    unbinds: 0,
    invalidations: 0,
    releases: 0,
  };

  /**
   * @param kernel the kernel services.
   * @param mmn the notifier subsystem.
   * @param prqOf the page-request queue of a unit.
   * @param fills the caches' shared fill clock.
   */
  constructor(
    private readonly kernel: Kernel,
    private readonly mmn: MmuNotifierSubsystem,
    private readonly prqOf: (unit: IommuUnit) => PageRequestQueue,
    private readonly fills: FillClock,
  ) {
    this.lock = new Mutex(kernel, 'iommu_sva_lock');
    this.ops = {
      name: 'iommu-sva',
      release: (sub, mm) => this.release(sub, mm),
      archInvalidateSecondaryTlbs: (sub, mm, start, end) => this.invalidate(sub, mm, start, end),
    };
  }

  /** The PASID of `mm`, or -1 if it has none. */
  pasidOf(mm: MmStruct): number {
    return this.mms.get(mm)?.pasid ?? -1;
  }

  /** The bonds of an mm (for the oracle). */
  bondsOf(mm: MmStruct): SvaBond[] {
    const out: SvaBond[] = [];
    for (const h of this.handles.values()) if (h.domain.mm === mm) out.push(h);
    return out;
  }

  /**
   * `iommu_sva_bind_device(dev, mm)`: returns the PASID, or a negated errno: -ENODEV (no IOMMU
   * group), -EOVERFLOW (the mm's PASID ≥ the device's `max_pasids`), -ENOSPC (no PASID left, or
   * a device without PASID support and an mm without one), -EINVAL (the device has not enabled
   * PASID, or ATS; VT-d `intel_iommu_sva_supported`), -EBUSY (the PASID is bound to another mm),
   * -ENOMEM. Binding the same pair again takes another reference.
   *
   * Context: process context with an `mm_users` reference; sleeps.
   */
  *bind(unit: IommuUnit, dev: IommuDeviceState, mm: MmStruct): TaskGen<number> {
    yield* this.lock.lock();
    const r = yield* this.bindLocked(unit, dev, mm);
    this.lock.unlock();
    const bus = this.kernel.bus;
    if (bus.wants('iommu.sva.bind'))
      bus.emit('iommu.sva.bind', {
        device: dev.name,
        mm: mm.id,
        pasid: r >= 0 ? r : -1,
        result: r >= 0 ? 0 : r,
      });
    return r;
  }

  private *bindLocked(unit: IommuUnit, dev: IommuDeviceState, mm: MmStruct): TaskGen<number> {
    // iommu_alloc_mm_data
    let im = this.mms.get(mm);
    if (im !== undefined) {
      if (im.pasid >= dev.maxPasids) return -Errno.EOVERFLOW;
    } else {
      const pasid = this.allocPasid(dev.maxPasids);
      if (pasid < 0) return -Errno.ENOSPC;
      im = { pasid, domains: [] };
      this.mms.set(mm, im);
    }
    const key = `${dev.name}|${im.pasid}`;
    const h = this.handles.get(key);
    if (h !== undefined) {
      if (h.domain.mm !== mm) return -Errno.EBUSY;
      h.users++;
      return im.pasid;
    }
    if (!dev.ats || dev.maxPasids === 0) return -Errno.EINVAL; // intel_iommu_sva_supported
    let domain = im.domains.find((d) => unit.domains.get(d.did) === d);
    if (domain === undefined) {
      // iommu_sva_domain_alloc → intel_svm_domain_alloc: the domain registers its notifier.
      domain = unit.allocDomain('sva', mm);
      const sub = new MmuNotifier(this.ops);
      const r = yield* this.mmn.register(sub, mm);
      if (r !== 0) {
        unit.freeDomain(domain);
        return r;
      }
      domain.notifier = sub;
      this.domainOf.set(sub, { unit, domain });
      im.domains.push(domain);
    }
    // intel_svm_set_dev_pasid: program the PASID entry for first-level translation.
    dev.pasids.set(im.pasid, { domain, present: true, quiet: false });
    domain.devPasids.push({ dev, pasid: im.pasid });
    domain.users++;
    this.handles.set(key, { users: 1, dev, unit, domain, pasid: im.pasid });
    this.stats.binds++;
    return im.pasid;
  }

  /**
   * `iommu_sva_unbind_device`: drops a reference; the last one detaches the PASID — tears down
   * the PASID entry, drains the page requests of the PASID (`intel_drain_pasid_prq`), removes the
   * device from the domain — and frees the domain when its users reach 0. Returns 0, or -EINVAL
   * if the device has no bond with `mm` (unbinding twice is a use-after-free of the handle in the
   * kernel; here it is refused).
   *
   * Context: process context; sleeps. The caller must have stopped the device's DMA on the PASID.
   */
  *unbind(unit: IommuUnit, dev: IommuDeviceState, mm: MmStruct): TaskGen<number> {
    yield* this.lock.lock();
    const im = this.mms.get(mm);
    const key = `${dev.name}|${im?.pasid ?? -1}`;
    const h = this.handles.get(key);
    if (im === undefined || h === undefined || h.domain.mm !== mm) {
      this.lock.unlock();
      return -Errno.EINVAL;
    }
    if (--h.users > 0) {
      this.lock.unlock();
      return 0;
    }
    this.handles.delete(key);
    const domain = h.domain;
    const pasid = h.pasid;
    // intel_iommu_remove_dev_pasid: tear down the entry, then drain the PASID's page requests.
    dev.pasids.delete(pasid);
    yield* unit.qi.submitSync(
      this.teardownDescs(unit, dev, domain, pasid),
      !unit.bug('no-wait-descriptor'),
    );
    if (!unit.bug('unbind-no-drain')) yield* this.prqOf(unit).drain(dev, pasid, domain.did);
    this.prqOf(unit).discardPartial(dev, pasid);
    const i = domain.devPasids.findIndex((x) => x.dev === dev && x.pasid === pasid);
    if (i >= 0) domain.devPasids.splice(i, 1);
    this.stats.unbinds++;
    const bus = this.kernel.bus;
    if (bus.wants('iommu.sva.unbind'))
      bus.emit('iommu.sva.unbind', { device: dev.name, mm: mm.id, pasid });
    if (--domain.users === 0) {
      im.domains.splice(im.domains.indexOf(domain), 1);
      unit.freeDomain(domain);
      if (domain.notifier !== null) {
        this.domainOf.delete(domain.notifier);
        this.mmn.put(domain.notifier); // intel_svm_domain_free → mmu_notifier_put
      }
    }
    this.lock.unlock();
    return 0;
  }

  private allocPasid(max: number): number {
    // mm_pasid_drop: PASIDs of freed mms go back first.
    for (const [mm, im] of this.mms) {
      if (mm.freed) {
        this.used.delete(im.pasid);
        this.mms.delete(mm);
      }
    }
    const hi = Math.min(max, PASID_SPACE);
    for (let p = FIRST_GLOBAL_PASID; p < hi; p++) {
      if (!this.used.has(p)) {
        this.used.add(p);
        return p;
      }
    }
    return -1;
  }

  private teardownDescs(
    unit: IommuUnit,
    dev: IommuDeviceState,
    domain: IommuDomain,
    pasid: number,
  ): Desc[] {
    const out: Desc[] = [
      { kind: 'pasid-cache', did: domain.did, pasid, addr: 0, pages: 0, device: dev.name },
      { kind: 'piotlb', did: domain.did, pasid, addr: 0, pages: 0, device: '' },
    ];
    if (dev.ats && !unit.bug('no-ats-invalidation'))
      out.push({ kind: 'devtlb', did: domain.did, pasid, addr: 0, pages: 0, device: dev.name });
    return out;
  }

  /**
   * `intel_arch_invalidate_secondary_tlbs` / `arm_smmu_mm_arch_invalidate_secondary_tlbs`: for
   * every device and PASID of the domain, a PASID-selective IOTLB invalidation of each chunk
   * first, then the device-TLB (ATS) invalidation of the chunk; (0, -1) and large ranges flush
   * the whole PASID. Submitted with a wait descriptor; the hook spin-waits for it.
   */
  private invalidate(
    sub: MmuNotifier,
    mm: MmStruct,
    start: number,
    end: number,
  ): TaskGen<void> | void {
    const d = this.domainOf.get(sub);
    if (d === undefined || d.domain.devPasids.length === 0) return;
    const { unit, domain } = d;
    this.stats.invalidations++;
    const bus = this.kernel.bus;
    if (bus.wants('iommu.sva.flush'))
      bus.emit('iommu.sva.flush', { unit: unit.name, mm: mm.id, start, end, stamp: this.fills.n });
    const full = start === 0 && end >= TASK_SIZE;
    const chunks =
      full || Math.ceil((end - start) / PAGE_SIZE) > FULL_FLUSH_PAGES
        ? [{ addr: 0, pages: 0 }]
        : psiChunks(start, end);
    const descs: Desc[] = [];
    const smmuBtm = unit.config.flavour === 'smmuv3' && unit.config.btm;
    for (const c of chunks) {
      for (const { dev, pasid } of domain.devPasids) {
        const io: Desc = {
          kind: 'piotlb',
          did: domain.did,
          pasid,
          addr: c.addr,
          pages: c.pages,
          device: '',
        };
        const atc: Desc = {
          kind: 'devtlb',
          did: domain.did,
          pasid,
          addr: c.addr,
          pages: c.pages,
          device: dev.name,
        };
        const withAtc = dev.ats && !unit.bug('no-ats-invalidation');
        if (smmuBtm) {
          // The SMMU snooped the CPU's broadcast TLBI: its TLB is already clean.
          unit.iotlb.invalidate(cacheTag(domain.did, pasid), c.addr / PAGE_SIZE, c.pages);
          unit.dropPsc(domain.did, pasid);
          if (withAtc) descs.push(atc);
        } else if (unit.bug('devtlb-before-iotlb')) {
          if (withAtc) descs.push(atc);
          descs.push(io);
        } else {
          descs.push(io);
          if (withAtc) descs.push(atc);
        }
      }
    }
    if (descs.length === 0) return;
    return unit.qi.submitSync(descs, !unit.bug('no-wait-descriptor'));
  }

  /**
   * `intel_mm_release` / `arm_smmu_mm_release`: the mm is exiting and the notifier leaves the
   * list, so no later invalidation reaches the IOMMU: tear down (VT-d: clear; SMMUv3: quiet CD)
   * the PASID entry of every device of the domain and flush the PASID cache, the IOTLB and the
   * ATC, so later DMA faults instead of walking page tables that are about to be freed.
   */
  private *release(sub: MmuNotifier, mm: MmStruct): TaskGen<void> {
    const d = this.domainOf.get(sub);
    if (d === undefined) return;
    const { unit, domain } = d;
    this.stats.releases++;
    const bus = this.kernel.bus;
    const pasid = this.pasidOf(mm);
    if (unit.bug('release-keeps-pasid')) {
      if (bus.wants('iommu.sva.release')) bus.emit('iommu.sva.release', { mm: mm.id, pasid });
      return;
    }
    const smmu = unit.config.flavour === 'smmuv3';
    const descs: Desc[] = [];
    for (const { dev, pasid: p } of domain.devPasids) {
      const e = dev.pasids.get(p);
      if (e !== undefined && e.domain === domain) {
        if (smmu) e.quiet = true;
        else e.present = false;
      }
      if (bus.wants('iommu.pasid.teardown'))
        bus.emit('iommu.pasid.teardown', {
          device: dev.name,
          pasid: p,
          how: smmu ? 'quiet' : 'clear',
        });
      descs.push(...this.teardownDescs(unit, dev, domain, p));
    }
    if (descs.length > 0) yield* unit.qi.submitSync(descs, !unit.bug('no-wait-descriptor'));
    if (bus.wants('iommu.sva.release')) bus.emit('iommu.sva.release', { mm: mm.id, pasid });
  }
}
