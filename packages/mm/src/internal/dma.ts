import { serviceId } from '@mmnsim/core';
import type { Kernel, TaskGen } from '@mmnsim/core';
import { PAGE_SIZE } from './constants.js';
import type { MmCore } from './core.js';
import { isTaskGen } from './mmn/types.js';
import type { MaySleep } from './mmn/types.js';
import type { PhysMem } from './physmem.js';

declare module '@mmnsim/core' {
  interface SimEventMap {
    /** A page was mapped for DMA by a device (`dma_map_page`). */
    'dma.map': {
      /** The DMA agent's name (`'direct'`, an IOMMU's name). */
      agent: string;
      /** The device's name. */
      device: string;
      /** The frame mapped. */
      pfn: number;
      /** The DMA address the device uses for it. */
      dma: number;
    };
    /** A device's DMA mapping was removed (`dma_unmap_page`). */
    'dma.unmap': {
      /** The DMA agent's name. */
      agent: string;
      /** The device's name. */
      device: string;
      /** The DMA address unmapped. */
      dma: number;
    };
  }
}

/**
 * The direction of a DMA mapping (`enum dma_data_direction`): what the device may do with the
 * page. `'bidirectional'` (`DMA_BIDIRECTIONAL`) is what RDMA and HMM drivers use.
 *
 * @see enum dma_data_direction
 */
export type DmaDirection = 'bidirectional' | 'to-device' | 'from-device';

/**
 * What {@link DmaAgent.mapPage} returns when it cannot map the page (`DMA_MAPPING_ERROR`; check
 * with `dma_mapping_error`). Every valid DMA address is a non-negative number.
 *
 * @see DMA_MAPPING_ERROR
 */
export const DMA_MAPPING_ERROR = -1;

/**
 * What {@link DmaAgent.read} returns when the device's access faults (an IOMMU found no
 * translation, or the address is outside physical memory). Words are unsigned 32-bit values, so
 * it cannot be mistaken for data.
 */
export const DMA_FAULT = -1;

/**
 * How devices reach memory (ARCHITECTURE §6): the DMA API on the kernel side (map a page for a
 * device and get the address the device must use, unmap it again) and the bus on the device side
 * (read or write a 32-bit word through a DMA address).
 *
 * Drivers never touch frames directly: they map a page, give the DMA address to their hardware
 * (an RDMA MTT, a GPU page table), and the hardware reads and writes through the agent. Without
 * an IOMMU ({@link DirectDma}, the default) the DMA address is the physical address and the device
 * reaches whatever frame it names; an IOMMU plugin implements this interface with I/O page tables
 * and an IOTLB, so a device access through an unmapped address faults, and contributes it to
 * {@link DmaAgentContribution}. A driver picks the agent for each of its devices with
 * {@link dmaAgentFor}, so the IOMMU slots in without any change to the driver.
 *
 * Context: `mapPage` and `unmapPage` run in the driver's kernel task; an implementation may
 * sleep (return a generator, for example to wait for an IOTLB invalidation to complete) —
 * callers use {@link dmaMapPage} / {@link dmaUnmapPage}, which handle both forms. `read` and
 * `write` are one bus access of the device: plain functions, atomic, never sleeping.
 *
 * ## Example
 * ```ts
 * const agent = dmaAgentFor(sim.getAll(DmaAgentContribution), 'mlx5_0', new DirectDma(core));
 * const dma = yield* dmaMapPage(agent, 'mlx5_0', pfn, 'bidirectional');
 * if (dma === DMA_MAPPING_ERROR) return -Errno.EFAULT;
 * agent.write('mlx5_0', dma + 8, 42); // the device writes word 2 of the page
 * yield* dmaUnmapPage(agent, 'mlx5_0', dma, 'bidirectional');
 * ```
 *
 * @see dma_map_page
 * @see dma_unmap_page
 */
export interface DmaAgent {
  /** Short name for events and reports (`'direct'`, `'intel-iommu'`). */
  readonly name: string;
  /**
   * True if this agent translates the DMA of `device` (an IOMMU claims the devices in its
   * groups); {@link dmaAgentFor} takes the first contributed agent that handles a device.
   */
  handles(device: string): boolean;
  /**
   * `dma_map_page`: makes frame `pfn` reachable by `device` and returns the page-aligned DMA
   * address to program into the device, or {@link DMA_MAPPING_ERROR}. The caller keeps the page
   * allocated (it holds a reference, a pin, or — for HMM and ODP — the notifier protocol
   * guarantees the page is not freed before it unmaps). Mapping a page twice gives two
   * mappings, each to be unmapped.
   */
  mapPage(device: string, pfn: number, dir: DmaDirection): MaySleep<number>;
  /**
   * `dma_unmap_page`: removes a mapping made by {@link DmaAgent.mapPage}. The driver must make
   * sure its device no longer uses the address first (for RDMA: the MTT entry is zapped and the
   * UMR completed); after the call an IOMMU may reuse the address for another page.
   */
  unmapPage(device: string, dma: number, dir: DmaDirection): MaySleep<void>;
  /**
   * A device read of the 32-bit word at DMA address `dma` (4-byte aligned): the value, or
   * {@link DMA_FAULT}.
   */
  read(device: string, dma: number): number;
  /**
   * A device write of the 32-bit `value` at DMA address `dma` (4-byte aligned); false if the
   * access faulted (nothing was written).
   */
  write(device: string, dma: number, value: number): boolean;
}

/**
 * Extension point: DMA agents contributed by hardware plugins (multi-bound; an IOMMU plugin
 * binds its agent here). With none contributed, drivers use their own {@link DirectDma}.
 *
 * ## Example
 * ```ts
 * bind(DmaAgentContribution).toResolvedValue((mm: MmService) => new MyIommu(mm.core), [MmService]);
 * ```
 */
export const DmaAgentContribution = serviceId<DmaAgent>('@mmnsim/mm:DmaAgent');

/**
 * The agent a driver should use for `device`: the first of `agents` (the contributions to
 * {@link DmaAgentContribution}, in binding order) whose {@link DmaAgent.handles} claims it, else
 * `fallback` (usually a {@link DirectDma}).
 *
 * ## Example
 * ```ts
 * const agent = dmaAgentFor(sim.getAll(DmaAgentContribution), 'mlx5_0', new DirectDma(core));
 * ```
 *
 * @param agents the contributed agents.
 * @param device the device's name.
 * @param fallback what to use when no agent claims the device.
 * @returns the agent for the device.
 */
export function dmaAgentFor(
  agents: Iterable<DmaAgent>,
  device: string,
  fallback: DmaAgent,
): DmaAgent {
  for (const a of agents) if (a.handles(device)) return a;
  return fallback;
}

/**
 * `dma_map_page(dev, page, 0, PAGE_SIZE, dir)` through `agent`, whether its `mapPage` sleeps
 * (a generator) or not. Returns the DMA address or {@link DMA_MAPPING_ERROR}.
 *
 * Context: process context of the driver; may sleep if the agent does.
 *
 * @see dma_map_page
 */
export function* dmaMapPage(
  agent: DmaAgent,
  device: string,
  pfn: number,
  dir: DmaDirection,
): TaskGen<number> {
  const r = agent.mapPage(device, pfn, dir);
  return isTaskGen(r) ? yield* r : r;
}

/**
 * `dma_unmap_page(dev, addr, PAGE_SIZE, dir)` through `agent`, whether its `unmapPage` sleeps
 * or not.
 *
 * Context: process context of the driver; may sleep if the agent does.
 *
 * @see dma_unmap_page
 */
export function* dmaUnmapPage(
  agent: DmaAgent,
  device: string,
  dma: number,
  dir: DmaDirection,
): TaskGen<void> {
  const r = agent.unmapPage(device, dma, dir);
  if (isTaskGen(r)) yield* r;
}

/** Options of {@link DirectDma}. */
export interface DirectDmaOptions {
  /**
   * Report device accesses through an address that is not mapped for that device
   * (`dma-unmapped-access`; default true). A machine without an IOMMU lets such an access
   * through — it reaches the physical frame — which is exactly why the check is useful: an
   * IOMMU would fault, and swiotlb would lose the data.
   */
  readonly checkAccess?: boolean;
}

/**
 * The DMA agent of a machine without an IOMMU (`dma-direct`): the DMA address of a page is its
 * physical address (`pfn * PAGE_SIZE`), mapping and unmapping never fail or sleep, and a device
 * reaches any frame it names.
 *
 * It keeps the bookkeeping of `CONFIG_DMA_API_DEBUG` — which addresses each device has mapped,
 * counted — and reports what that debug option reports, plus what only an IOMMU would catch:
 * - `dma-api-bad-unmap`: unmapping an address the device has not mapped ("device driver tries to
 *   free DMA memory it has not allocated");
 * - `dma-unmapped-access`: a device access through an address it has no mapping for (the
 *   access still reaches the frame, as on real hardware; see {@link DirectDmaOptions.checkAccess}).
 *
 * ## Example
 * ```ts
 * const dma = new DirectDma(sim.get(MmService).core);
 * const addr = dma.mapPage('nic0', pfn, 'bidirectional'); // pfn * 4096
 * dma.write('nic0', addr + 4, 7);                          // word 1 of frame pfn
 * dma.unmapPage('nic0', addr, 'bidirectional');
 * ```
 *
 * @see dma_direct_map_page
 * @see debug_dma_unmap_page
 */
export class DirectDma implements DmaAgent {
  /** See {@link DmaAgent.name}. */
  readonly name = 'direct';
  private readonly kernel: Kernel;
  private readonly phys: PhysMem;
  private readonly check: boolean;
  /** Per device: how many live mappings each frame has. */
  private readonly maps = new Map<string, Uint16Array>();
  private lastDevice = '';
  private lastMaps: Uint16Array | undefined = undefined;
  private readonly reported = new Set<string>();

  /**
   * @param core the memory model (its physical memory and kernel services).
   * @param options see {@link DirectDmaOptions}.
   */
  constructor(core: MmCore, options: DirectDmaOptions = {}) {
    this.kernel = core.kernel;
    this.phys = core.phys;
    this.check = options.checkAccess ?? true;
  }

  /** See {@link DmaAgent.handles}: the direct agent takes any device. */
  handles(_device: string): boolean {
    return true;
  }

  /** Number of live mappings of frame `pfn` for `device` (the DMA-API debug bookkeeping). */
  mappedCount(device: string, pfn: number): number {
    return this.maps.get(device)?.[pfn] ?? 0;
  }

  /** See {@link DmaAgent.mapPage}: the physical address; never fails for an existing frame. */
  mapPage(device: string, pfn: number, _dir: DmaDirection): number {
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= this.phys.total) return DMA_MAPPING_ERROR;
    const m = this.mapsOf(device);
    m[pfn]!++;
    this.reported.delete(`${device}|${pfn}`);
    const dma = pfn * PAGE_SIZE;
    const bus = this.kernel.bus;
    if (bus.wants('dma.map')) bus.emit('dma.map', { agent: this.name, device, pfn, dma });
    return dma;
  }

  /** See {@link DmaAgent.unmapPage}. */
  unmapPage(device: string, dma: number, _dir: DmaDirection): void {
    const pfn = Math.floor(dma / PAGE_SIZE);
    const m = this.maps.get(device);
    if (m === undefined || dma % PAGE_SIZE !== 0 || !(pfn < m.length) || m[pfn] === 0) {
      this.kernel.report(
        'dma-api-bad-unmap',
        `DMA-API: ${device} unmaps DMA address 0x${dma.toString(16)}, which it has not mapped (device driver tries to free DMA memory it has not allocated)`,
      );
      return;
    }
    m[pfn]!--;
    const bus = this.kernel.bus;
    if (bus.wants('dma.unmap')) bus.emit('dma.unmap', { agent: this.name, device, dma });
  }

  /** See {@link DmaAgent.read}. */
  read(device: string, dma: number): number {
    const pfn = Math.floor(dma / PAGE_SIZE);
    if (pfn >= this.phys.total || dma < 0) return DMA_FAULT;
    if (this.check) this.checkMapped(device, pfn, dma, false);
    return this.phys.read(pfn, (dma % PAGE_SIZE) >>> 2);
  }

  /** See {@link DmaAgent.write}. Writes to the shared zero page fault. */
  write(device: string, dma: number, value: number): boolean {
    const pfn = Math.floor(dma / PAGE_SIZE);
    if (pfn >= this.phys.total || dma < 0 || pfn === 0) return false;
    if (this.check) this.checkMapped(device, pfn, dma, true);
    this.phys.write(pfn, (dma % PAGE_SIZE) >>> 2, value);
    return true;
  }

  private mapsOf(device: string): Uint16Array {
    let m = this.maps.get(device);
    if (m === undefined) {
      m = new Uint16Array(this.phys.total);
      this.maps.set(device, m);
    }
    return m;
  }

  private checkMapped(device: string, pfn: number, dma: number, write: boolean): void {
    let m = this.lastMaps;
    if (device !== this.lastDevice || m === undefined) {
      m = this.maps.get(device);
      this.lastDevice = device;
      this.lastMaps = m;
    }
    if (m !== undefined && m[pfn]! > 0) return;
    const key = `${device}|${pfn}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.kernel.report(
      'dma-unmapped-access',
      `${device} ${write ? 'wrote' : 'read'} DMA address 0x${dma.toString(16)} (frame ${pfn}), which is not mapped for it: without an IOMMU the access reaches the frame anyway (an IOMMU would fault it); the driver unmapped the page before its device stopped using it`,
    );
  }
}
