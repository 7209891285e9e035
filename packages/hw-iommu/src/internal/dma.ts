/**
 * The DMA API on an IOMMU (drivers/iommu/dma-iommu.c): `dma_map_page` / `dma_unmap_page` /
 * `dma_map_sg` through the IOVA allocator and a DMA domain's I/O page table, strict and lazy
 * invalidation, and the device side of untranslated DMA. It is the `DmaAgent` the memory model's
 * extension point takes, so drivers that use the DMA API get IOVA translation unchanged.
 */
import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { DMA_FAULT, DMA_MAPPING_ERROR, PAGE_SIZE } from '@mmnsim/mm';
import type { DmaAgent, DmaDirection } from '@mmnsim/mm';
import { hex } from './constants.js';
import type { QiDesc } from './qi.js';
import type { IommuDeviceState, IommuDomain, IommuUnit } from './unit.js';

type Desc = Omit<QiDesc, 'id' | 'done'>;

/** One scatter-gather mapping (`dma_map_sg` result). */
export interface SgMapping {
  /** DMA address of the first page. */
  readonly dma: number;
  /** Pages mapped contiguously in IOVA space. */
  readonly pages: number;
}

/**
 * The IOMMU's DMA agent (`iommu_dma_ops`): devices attached to the unit get IOVAs from their
 * domain's allocator; an access through an address the I/O page table does not map faults.
 *
 * Invalidation policy (`iommu.strict`): strict — `dma_unmap_page` clears the I/O PTEs, queues an
 * IOTLB (and, for ATS devices, a device-TLB) invalidation with a wait descriptor and spins until
 * it completed, then frees the IOVA; lazy — it clears the PTEs and puts the IOVA on the domain's
 * flush queue; one domain-wide flush, when the queue is full or its 10 ms timer fires, frees
 * everything queued.
 *
 * Context: `mapPage` never sleeps; `unmapPage` spin-waits (strict) or may flush the queue.
 *
 * @see iommu_dma_map_page
 * @see iommu_dma_unmap_page
 * @see iommu_dma_map_sg
 */
export class IommuDmaAgent implements DmaAgent {
  /** See {@link DmaAgent.name}. */
  readonly name: string;
  /** Maps, unmaps, flush-queue flushes, device accesses and their faults. */
  readonly stats: Record<'maps' | 'unmaps' | 'fqFlushes' | 'dma' | 'faults', number> = {
    maps: 0,
    unmaps: 0,
    fqFlushes: 0,
    dma: 0,
    faults: 0,
  };

  /**
   * @param unit the IOMMU.
   * @param strict strict invalidation (true) or lazy (flush queue).
   * @param onQueued called when a lazy unmap left something on a flush queue (arms the timer).
   */
  constructor(
    readonly unit: IommuUnit,
    readonly strict: boolean,
    private readonly onQueued: (d: IommuDomain, dev: IommuDeviceState) => void = () => {},
  ) {
    this.name = unit.name;
  }

  /** See {@link DmaAgent.handles}: the devices attached to this IOMMU. */
  handles(device: string): boolean {
    return this.unit.devices.has(device);
  }

  private dev(device: string): IommuDeviceState | undefined {
    return this.unit.devices.get(device);
  }

  /** See {@link DmaAgent.mapPage}: `dma_map_page` of one page. */
  mapPage(device: string, pfn: number, dir: DmaDirection): number {
    const dma = this.map(device, pfn, null, 1, dir);
    return dma < 0 ? DMA_MAPPING_ERROR : dma;
  }

  /**
   * `dma_map_sg`: maps the frames `pfns` at contiguous IOVAs (as `iommu_dma_map_sg` does for
   * page-sized segments). Returns the mapping, or a negated errno: -EINVAL for no entries or a
   * frame outside memory, -ENOMEM when the IOVA space is exhausted, -EIO for a blocked domain.
   */
  mapSg(device: string, pfns: readonly number[], dir: DmaDirection): SgMapping | number {
    const dma = this.map(device, 0, pfns, pfns.length, dir);
    return dma < 0 ? dma : { dma, pages: pfns.length };
  }

  /**
   * Maps `n` frames — `pfns`, or the single frame `one` when `pfns` is null (`dma_map_page`
   * without building an array) — and returns the DMA address or a negated errno (see
   * {@link IommuDmaAgent.mapSg}).
   */
  private map(
    device: string,
    one: number,
    pfns: readonly number[] | null,
    n: number,
    dir: DmaDirection,
  ): number {
    const dev = this.dev(device);
    if (dev === undefined || n === 0) return -Errno.EINVAL;
    const total = this.unit.core.phys.total;
    for (let i = 0; i < n; i++) {
      const p = pfns === null ? one : pfns[i]!;
      if (!Number.isInteger(p) || p < 0 || p >= total) return -Errno.EINVAL;
    }
    const first = pfns === null ? one : pfns[0]!;
    const d = dev.domain;
    if (d.type === 'identity') {
      if (pfns !== null && n !== 1 && pfns.some((p, i) => p !== first + i)) return -Errno.EINVAL;
      return first * PAGE_SIZE;
    }
    if (d.type !== 'dma') return -Errno.EIO;
    const iova = d.iova.alloc(n);
    if (iova < 0) return -Errno.ENOMEM;
    const bus = this.unit.kernel.bus;
    if (bus.wants('iommu.iova.alloc'))
      bus.emit('iommu.iova.alloc', {
        unit: this.name,
        did: d.did,
        iova: iova * PAGE_SIZE,
        pages: n,
      });
    const write = dir !== 'to-device';
    for (let i = 0; i < n; i++) d.pt.set(iova + i, { pfn: pfns === null ? one : pfns[i]!, write });
    this.stats.maps++;
    if (bus.wants('iommu.map'))
      bus.emit('iommu.map', {
        unit: this.name,
        did: d.did,
        iova: iova * PAGE_SIZE,
        pfn: first,
        pages: n,
      });
    if (bus.wants('dma.map'))
      bus.emit('dma.map', { agent: this.name, device, pfn: first, dma: iova * PAGE_SIZE });
    return iova * PAGE_SIZE;
  }

  /** See {@link DmaAgent.unmapPage}. */
  unmapPage(device: string, dma: number, _dir: DmaDirection): TaskGen<void> {
    return this.unmapSg(device, dma);
  }

  /**
   * `dma_unmap_sg` / `dma_unmap_page`: unmaps the range that starts at `dma`. An address that
   * does not start a mapping of the device is reported (`dma-api-bad-unmap`, as DMA-API debug
   * does) and ignored.
   */
  *unmapSg(device: string, dma: number): TaskGen<void> {
    const dev = this.dev(device);
    if (dev === undefined) return;
    const d = dev.domain;
    if (d.type !== 'dma') return;
    const iova = dma / PAGE_SIZE;
    const pages = Number.isInteger(iova) ? d.iova.sizeOf(iova) : 0;
    if (pages === 0 || !d.pt.has(iova)) {
      this.unit.kernel.report(
        'dma-api-bad-unmap',
        `DMA-API: ${device} unmaps DMA address ${hex(dma)}, which it has not mapped (device driver tries to free DMA memory it has not allocated)`,
      );
      return;
    }
    for (let i = 0; i < pages; i++) d.pt.delete(iova + i);
    this.stats.unmaps++;
    const bus = this.unit.kernel.bus;
    if (bus.wants('iommu.unmap'))
      bus.emit('iommu.unmap', { unit: this.name, did: d.did, iova: dma, pages });
    if (bus.wants('dma.unmap')) bus.emit('dma.unmap', { agent: this.name, device, dma });
    if (this.strict) {
      // iommu_unmap → iotlb_sync: the IOTLB (and ATC) flush completes before the IOVA is reused.
      yield* this.unit.qi.submitSync(
        this.flushDescs(d, dev, dma, pages),
        !this.unit.bug('no-wait-descriptor'),
      );
      this.freeIova(d, iova, pages, false);
      return;
    }
    if (this.unit.bug('lazy-reuse-before-flush')) {
      this.freeIova(d, iova, pages, true);
      return;
    }
    // queue_iova: the range waits for the next domain-wide flush.
    if (d.fq.full) yield* this.flushQueue(d, dev);
    d.fq.entries.push({ pfn: iova, pages });
    this.onQueued(d, dev);
  }

  /**
   * `fq_flush_iotlb` + `fq_ring_free`: one domain-wide IOTLB (and device-TLB) flush, then every
   * queued IOVA goes back to the allocator.
   */
  *flushQueue(d: IommuDomain, dev: IommuDeviceState): TaskGen<void> {
    if (d.fq.entries.length === 0) return;
    const ranges = d.fq.entries.splice(0);
    this.stats.fqFlushes++;
    yield* this.unit.qi.submitSync(
      this.flushDescs(d, dev, 0, 0),
      !this.unit.bug('no-wait-descriptor'),
    );
    for (const r of ranges) this.freeIova(d, r.pfn, r.pages, true);
  }

  private flushDescs(d: IommuDomain, dev: IommuDeviceState, addr: number, pages: number): Desc[] {
    const out: Desc[] = [{ kind: 'iotlb', did: d.did, pasid: -1, addr, pages, device: '' }];
    if (dev.ats && !this.unit.bug('no-ats-invalidation'))
      out.push({ kind: 'devtlb', did: d.did, pasid: -1, addr, pages, device: dev.name });
    return out;
  }

  private freeIova(d: IommuDomain, iova: number, pages: number, lazy: boolean): void {
    d.iova.release(iova);
    const bus = this.unit.kernel.bus;
    if (bus.wants('iommu.iova.free'))
      bus.emit('iommu.iova.free', {
        unit: this.name,
        did: d.did,
        iova: iova * PAGE_SIZE,
        pages,
        lazy,
      });
  }

  /** See {@link DmaAgent.read}: an untranslated read (request without PASID) through the IOMMU. */
  read(device: string, dma: number): number {
    const pfn = this.access(device, dma, false);
    if (pfn < 0) return DMA_FAULT;
    return this.unit.core.phys.read(pfn, (dma % PAGE_SIZE) >>> 2);
  }

  /** See {@link DmaAgent.write}. */
  write(device: string, dma: number, value: number): boolean {
    const pfn = this.access(device, dma, true);
    if (pfn < 0 || pfn === 0) return false;
    this.unit.core.phys.write(pfn, (dma % PAGE_SIZE) >>> 2, value);
    return true;
  }

  private access(device: string, dma: number, write: boolean): number {
    const dev = this.dev(device);
    if (dev === undefined || !(dma >= 0) || !Number.isFinite(dma)) return -1;
    const unit = this.unit;
    const tr = unit.translate(dev, -1, dma, write);
    this.stats.dma++;
    const bus = unit.kernel.bus;
    if (tr.via === 'fault' || tr.pfn >= unit.core.phys.total) {
      this.stats.faults++;
      if (bus.wants('iommu.dma'))
        bus.emit('iommu.dma', {
          device,
          pasid: -1,
          addr: dma,
          write,
          via: 'fault',
          pfn: -1,
          gen: -1,
        });
      return -1;
    }
    if (bus.wants('iommu.dma'))
      bus.emit('iommu.dma', {
        device,
        pasid: -1,
        addr: dma,
        write,
        via: tr.via,
        pfn: tr.pfn,
        gen: tr.gen,
      });
    return tr.pfn;
  }
}
