// ZONE_DEVICE page maps (mm/memremap.c, include/linux/memremap.h): the device memory a driver
// registers with an owner and ops, the per-frame lookup from a page to its pagemap, and the
// page lifecycle (zone_device_page_init, free_zone_device_folio → page_free). Its own file:
// every device-memory feature (migration, faults, GUP, pagemap) looks pages up through it.
import { Errno, KernelBug } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import type { MmCore } from '../core.js';
import type { FaultResult } from '../fault.js';
import type { MmStruct } from '../mm.js';
import { Frame } from '../physmem.js';
import type { Vma } from '../vma.js';
import './events.js';

/**
 * `enum memory_type`, the two kinds a driver can register for migration: device-private memory
 * (not CPU-addressable: the CPU page table holds a device-private entry) and device-coherent
 * memory (CPU-addressable, mapped by ordinary PTEs, but not long-term pinnable).
 *
 * @see enum memory_type
 */
export type MemoryType = 'device-private' | 'device-coherent';

/** The allowed {@link MemoryType} values. */
export const MEMORY_TYPES: readonly MemoryType[] = ['device-private', 'device-coherent'];

/**
 * `struct vm_fault` as `migrate_to_ram` sees it: the faulting mm, VMA and page-aligned address,
 * the device page of the entry (locked, with a reference the fault path holds), and the access.
 *
 * @see struct vm_fault
 */
export interface DeviceFault {
  /** The faulting mm (its `mmap_lock` is held for read). */
  readonly mm: MmStruct;
  /** The VMA. */
  readonly vma: Vma;
  /** Page-aligned faulting address. */
  readonly address: number;
  /** The device page (`vmf->page`): locked by the fault path, one reference held. */
  readonly page: number;
  /** FAULT_FLAG_WRITE. */
  readonly write: boolean;
}

/**
 * `struct dev_pagemap_ops`.
 *
 * @see struct dev_pagemap_ops
 */
export interface DevPagemapOps {
  /**
   * `page_free`: the last reference to device page `pfn` went (refcount 0). The driver puts it
   * back on its free list. Called from `folio_put` wherever it happens (zap under a PTE lock,
   * migration finalize): a plain function that must not sleep.
   */
  pageFree(pfn: number): void;
  /**
   * `migrate_to_ram`: a CPU access hit a device-private entry of this pagemap. The driver
   * migrates the page (at least `fault.page`) back to system memory, normally with
   * `migrateVmaSetup` (`faultPage` = `fault.page`, SELECT_DEVICE_PRIVATE, its owner), copy,
   * `migrateVmaPages`, `migrateVmaFinalize`. Returns `'ok'` (the access is retried) or
   * `'sigbus'`/`'oom'`. Required for device-private memory.
   */
  migrateToRam?(fault: DeviceFault): TaskGen<FaultResult>;
}

/**
 * `struct dev_pagemap`: one registered range of device memory, `[start, start + npages)` in
 * frame numbers, with its type, owner cookie and ops.
 *
 * @see struct dev_pagemap
 */
export class DevPagemap {
  /** False once `memunmapPages` removed it. */
  live = true;

  /**
   * Built by {@link memremapPages}.
   * @param id pagemap id (events).
   * @param type device-private or device-coherent.
   * @param owner `pgmap->owner`: compared with `migrate_vma.pgmap_owner` and `hmm_range.dev_private_owner`.
   * @param name label for events and reports.
   * @param start first frame.
   * @param npages number of pages.
   * @param ops the driver's ops.
   */
  constructor(
    readonly id: number,
    readonly type: MemoryType,
    readonly owner: unknown,
    readonly name: string,
    readonly start: number,
    readonly npages: number,
    readonly ops: DevPagemapOps,
  ) {}

  /** True if `pfn` is one of this pagemap's pages. */
  contains(pfn: number): boolean {
    return pfn >= this.start && pfn < this.start + this.npages;
  }
}

/** The device memory of one memory model: its pagemaps and the page → pagemap lookup. */
export class DeviceMemory {
  /** Pagemaps by id (removed ones stay, `live` false). */
  readonly pgmaps = new Map<number, DevPagemap>();
  /** Pagemap id per frame, 0 for system memory. */
  readonly pgmapOf: Int32Array;
  private nextId = 1;

  /** @param core the memory model (its `PhysMem.zoneDeviceFree` hook is installed here). */
  constructor(readonly core: MmCore) {
    this.pgmapOf = new Int32Array(core.phys.total);
    core.phys.zoneDeviceFree = (pfn) => this.free(pfn);
  }

  /** Next pagemap id. */
  allocId(): number {
    return this.nextId++;
  }

  /** The pagemap of `pfn`, or undefined for system memory. */
  pagemap(pfn: number): DevPagemap | undefined {
    const id = pfn >= 0 && pfn < this.pgmapOf.length ? this.pgmapOf[pfn]! : 0;
    return id === 0 ? undefined : this.pgmaps.get(id);
  }

  private free(pfn: number): void {
    const phys = this.core.phys;
    const pgmap = this.pagemap(pfn);
    if (pgmap === undefined)
      throw new KernelBug(`free_zone_device_folio: frame ${pfn} has no pagemap`);
    if (phys.isLocked(pfn))
      throw new KernelBug(`freeing device page ${pfn} of ${pgmap.name} with its folio lock held`);
    // free_zone_device_folio: the folio forgets its anon/rmap state before page_free.
    phys.flags[pfn] = Frame.DEVICE;
    phys.mapping[pfn] = 0;
    phys.index[pfn] = 0;
    const bus = this.core.kernel.bus;
    if (bus.wants('mm.device.free')) bus.emit('mm.device.free', { pfn, pgmap: pgmap.id });
    pgmap.ops.pageFree(pfn);
  }
}

const registries = new WeakMap<MmCore, DeviceMemory>();

/** The device memory of `core` (created on first use). */
export function deviceMemory(core: MmCore): DeviceMemory {
  let d = registries.get(core);
  if (d === undefined) {
    d = new DeviceMemory(core);
    registries.set(core, d);
  }
  return d;
}

/** What a driver passes to {@link memremapPages} (the fields of `struct dev_pagemap` it fills in). */
export interface DevPagemapInit {
  /** `pgmap->type`. */
  readonly type: MemoryType;
  /** Pages of device memory (the `range` length / PAGE_SIZE): a positive integer. */
  readonly npages: number;
  /** `pgmap->owner`: required (non-null) for both types. */
  readonly owner: unknown;
  /** `pgmap->ops`: `pageFree` always, `migrateToRam` for device-private memory. */
  readonly ops: DevPagemapOps;
  /** Label for events and reports (default `pgmap<id>`). */
  readonly name?: string;
}

/**
 * `memremap_pages`: registers `init.npages` pages of device memory. Device-private memory needs
 * `ops.pageFree`, `ops.migrateToRam` and an owner; device-coherent memory `ops.pageFree` and an
 * owner (mm/memremap.c checks both and WARNs, returning -EINVAL). The pages start free
 * (refcount 0, as since 6.14); the driver takes one into use with {@link zoneDevicePageInit}.
 *
 * The model carves the range out of physical memory (a contiguous run of free frames from the
 * top), so those frames are no longer system RAM until {@link memunmapPages}.
 *
 * Returns the pagemap, or -EINVAL (bad type, count, owner or ops) / -ENOMEM (no free run).
 *
 * Context: process context.
 *
 * @see memremap_pages
 */
export function memremapPages(core: MmCore, init: DevPagemapInit): DevPagemap | number {
  if (!MEMORY_TYPES.includes(init.type)) return -Errno.EINVAL;
  const n = init.npages;
  if (!Number.isInteger(n) || n < 1 || n >= core.phys.total) return -Errno.EINVAL;
  if (init.owner === null || init.owner === undefined) return -Errno.EINVAL;
  if (typeof init.ops?.pageFree !== 'function') return -Errno.EINVAL;
  if (init.type === 'device-private' && typeof init.ops.migrateToRam !== 'function')
    return -Errno.EINVAL;
  const dev = deviceMemory(core);
  const start = core.phys.reserveRange(n, Frame.DEVICE);
  if (start < 0) return -Errno.ENOMEM;
  const id = dev.allocId();
  const pgmap = new DevPagemap(
    id,
    init.type,
    init.owner,
    init.name ?? `pgmap${id}`,
    start,
    n,
    init.ops,
  );
  dev.pgmaps.set(id, pgmap);
  dev.pgmapOf.fill(id, start, start + n);
  const bus = core.kernel.bus;
  if (bus.wants('mm.devmap.add'))
    bus.emit('mm.devmap.add', { pgmap: id, type: init.type, name: pgmap.name, start, npages: n });
  return pgmap;
}

/**
 * `memunmap_pages`: removes a pagemap. The kernel kills the pagemap's percpu ref and waits until
 * every page reference is gone; a page still in use here would wait forever, so it is reported
 * (`devmap-busy`) and the pagemap stays. The driver first migrates every page back
 * (`migrateDeviceRange`). Returns 0, or -EBUSY when pages are in use, -EINVAL if already removed.
 *
 * @see memunmap_pages
 */
export function memunmapPages(core: MmCore, pgmap: DevPagemap): number {
  if (!pgmap.live) return -Errno.EINVAL;
  const phys = core.phys;
  for (let pfn = pgmap.start; pfn < pgmap.start + pgmap.npages; pfn++) {
    if (phys.refcount[pfn]! > 0) {
      core.kernel.report(
        'devmap-busy',
        `memunmap_pages(${pgmap.name}): device page ${pfn} still has ${phys.refcount[pfn]} reference(s); the kernel would wait forever`,
      );
      return -Errno.EBUSY;
    }
  }
  pgmap.live = false;
  deviceMemory(core).pgmapOf.fill(0, pgmap.start, pgmap.start + pgmap.npages);
  phys.unreserveRange(pgmap.start, pgmap.npages);
  const bus = core.kernel.bus;
  if (bus.wants('mm.devmap.remove')) bus.emit('mm.devmap.remove', { pgmap: pgmap.id });
  return 0;
}

/**
 * `zone_device_page_init`: a driver takes free device page `pfn` into use: refcount 0 → 1, folio
 * locked (the driver unlocks it after migration finalize). A page that is not a free device
 * page is a kernel BUG.
 *
 * @see zone_device_page_init
 */
export function zoneDevicePageInit(core: MmCore, pfn: number): void {
  const pgmap = deviceMemory(core).pagemap(pfn);
  const phys = core.phys;
  if (pgmap === undefined || !pgmap.live)
    throw new KernelBug(`zone_device_page_init: frame ${pfn} is not device memory`);
  if (phys.refcount[pfn]! !== 0)
    throw new KernelBug(
      `zone_device_page_init: device page ${pfn} is in use (refcount ${phys.refcount[pfn]})`,
    );
  phys.refcount[pfn] = 1;
  if (!phys.tryLockFolio(pfn)) throw new KernelBug(`zone_device_page_init: page ${pfn} locked`);
  const bus = core.kernel.bus;
  if (bus.wants('mm.device.init')) bus.emit('mm.device.init', { pfn, pgmap: pgmap.id });
}

/**
 * The pagemap of `pfn` (`page_pgmap`), or undefined for system memory.
 *
 * @see page_pgmap
 */
export function pagePgmap(core: MmCore, pfn: number): DevPagemap | undefined {
  return deviceMemory(core).pagemap(pfn);
}

/** True for a device-private page. @see is_device_private_page */
export function isDevicePrivatePage(core: MmCore, pfn: number): boolean {
  return (
    (core.phys.flags[pfn]! & Frame.DEVICE) !== 0 && pagePgmap(core, pfn)?.type === 'device-private'
  );
}

/** True for a device-coherent page. @see is_device_coherent_page */
export function isDeviceCoherentPage(core: MmCore, pfn: number): boolean {
  return (
    (core.phys.flags[pfn]! & Frame.DEVICE) !== 0 && pagePgmap(core, pfn)?.type === 'device-coherent'
  );
}

/** True for any ZONE_DEVICE page. @see is_zone_device_page */
export function isZoneDevicePage(core: MmCore, pfn: number): boolean {
  return pfn > 0 && pfn < core.phys.total && (core.phys.flags[pfn]! & Frame.DEVICE) !== 0;
}
