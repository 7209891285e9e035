import type { Mutex } from '@mmnsim/core';
import { PAGE_SIZE } from '@mmnsim/mm';
import type { MmStruct, MmuIntervalNotifier, Process } from '@mmnsim/mm';
import type { RdmaDevice } from './device.js';

/**
 * The translation table of one memory key as the NIC holds it in device memory (mlx5: the
 * mkey's MTT, one 8-byte entry per page: a DMA address plus read/write bits). Only the NIC
 * writes it, when it executes a UMR the driver posted; the NIC's DMA engine reads it on every
 * access.
 *
 * `pfn` and `gen` are the model's bookkeeping, not device state: the frame each DMA address
 * reached when the entry was programmed and that frame's allocation generation, which the
 * oracles compare with the frame's current state.
 *
 * @see struct mlx5_mtt
 */
export class Mtt {
  /** `MttAccess` bits per entry; 0 = no translation (a device access faults). */
  readonly access: Uint8Array;
  /** DMA address per entry (page aligned). */
  readonly dma: Float64Array;
  /** Bookkeeping: the frame the entry reaches. */
  readonly pfn: Float64Array;
  /** Bookkeeping: that frame's generation when the entry was written. */
  readonly gen: Float64Array;

  /** @param size number of entries (pages of the MR). */
  constructor(readonly size: number) {
    this.access = new Uint8Array(size);
    this.dma = new Float64Array(size);
    this.pfn = new Float64Array(size);
    this.gen = new Float64Array(size);
  }

  /** Number of entries that hold a translation. */
  get present(): number {
    let n = 0;
    for (let i = 0; i < this.size; i++) if (this.access[i] !== 0) n++;
    return n;
  }
}

/**
 * Where a memory region is in its life: `'new'` while it is being registered, `'live'` once the
 * NIC may use it, `'dying'` once deregistration started (the NIC and the fault handler refuse
 * it), `'dead'` when its pages are released.
 */
export type MrState = 'new' | 'live' | 'dying' | 'dead';

/**
 * A registered memory region (`struct ib_mr` with its `struct ib_umem` and the mlx5 mkey): a
 * range `[addr, addr + length)` of one process's address space that the NIC may access through
 * its MTT, with the rights of `access` (`IbAccess`). Pages are covered from `start` (addr rounded
 * down to a page) to `end` (rounded up); MTT entry `i` translates the page at `start + i *
 * PAGE_SIZE`. The key (`lkey` = `rkey`) is unique in the simulation.
 *
 * Two kinds: {@link OdpMr} (on-demand paging, an interval-notifier user) and {@link PinnedMr}.
 *
 * @see struct ib_umem
 * @see struct mlx5_ib_mr
 */
export abstract class MemoryRegion {
  /** `'odp'` or `'pinned'`. */
  abstract readonly kind: 'odp' | 'pinned';
  /** Life-cycle state; see {@link MrState}. */
  state: MrState = 'new';
  /** First page-aligned address covered (`ib_umem_start`). */
  readonly start: number;
  /** End of the covered pages, exclusive (`ib_umem_end`). */
  readonly end: number;
  /** Pages covered (`ib_umem_num_pages`). */
  readonly pages: number;
  /** `ib_access_writable(access)`: the umem may be written by the device. */
  readonly writable: boolean;
  /** The MR's translation table in the NIC. */
  readonly mtt: Mtt;

  /**
   * @param key the memory key.
   * @param device the NIC it is registered on.
   * @param process the owning process (`umem->owning_mm` is its mm).
   * @param addr first byte.
   * @param length bytes.
   * @param access `IbAccess` bits.
   * @param writable whether the device may write it.
   */
  constructor(
    readonly key: number,
    readonly device: RdmaDevice,
    readonly process: Process,
    readonly addr: number,
    readonly length: number,
    readonly access: number,
    writable: boolean,
  ) {
    this.start = addr - (addr % PAGE_SIZE);
    const last = addr + length;
    this.end = last % PAGE_SIZE === 0 ? last : last - (last % PAGE_SIZE) + PAGE_SIZE;
    this.pages = (this.end - this.start) / PAGE_SIZE;
    this.writable = writable;
    this.mtt = new Mtt(this.pages);
  }

  /** The owning mm (`umem->owning_mm`). */
  get mm(): MmStruct {
    return this.process.mm;
  }

  /** The MTT index of the page holding `va`. */
  index(va: number): number {
    return Math.floor((va - this.start) / PAGE_SIZE);
  }

  /** `mr<key>@<device>`, for reports. */
  toString(): string {
    return `mr${this.key}@${this.device.name}`;
  }
}

/** Counters of one ODP MR (what `mlx5_update_odp_stats` and the fault path count). */
export interface OdpStats {
  /** Device page faults handled (each `pagefault_real_mr` call with faulting). */
  faults: number;
  /** Pages made available by faults. */
  faultPages: number;
  /** `hmm_range_fault` returned -EBUSY and the fault path retried. */
  busyRetries: number;
  /** `mmu_interval_read_retry` said the snapshot was stale: unlock and retry. */
  collisions: number;
  /** Faults that gave up after `HMM_RANGE_DEFAULT_TIMEOUT` of -EBUSY. */
  timeouts: number;
  /** Calls of the invalidate op (including the ones that returned false). */
  invalidations: number;
  /** Non-blockable invalidations refused (returned false). */
  refused: number;
  /** MTT entries zapped (pages in the zapped blocks that were mapped). */
  zapped: number;
  /** Pages DMA-unmapped by invalidations. */
  unmapped: number;
}

/**
 * An on-demand-paging memory region (`struct ib_umem_odp` + its mlx5 MR): no page is pinned.
 * The MR's interval subscription covers `[start, end)`; the NIC raises a page fault for a page
 * it has no translation for, the fault path maps it with the collision-retry protocol
 * (`ib_umem_odp_map_dma_and_lock`), and the invalidate op zaps the MTT and unmaps the pages
 * whenever the CPU page tables change.
 *
 * Driver state, all guarded by `umemMutex` (the protocol's "driver lock"): `dmaList` /
 * `dmaAccess` (the DMA address and rights of each mapped page; 0 rights = not mapped),
 * `pfnList` / `genList` (the frame behind it), `npages` (pages mapped).
 *
 * @see struct ib_umem_odp
 */
export class OdpMr extends MemoryRegion {
  /** See {@link MemoryRegion.kind}. */
  readonly kind = 'odp' as const;
  /** DMA address of each mapped page (`dma_list[]`). */
  readonly dmaList: Float64Array;
  /** `MttAccess` rights each page is mapped with; 0 = not DMA-mapped. */
  readonly dmaAccess: Uint8Array;
  /** Frame behind each mapped page (`page_list[]`). */
  readonly pfnList: Float64Array;
  /** Generation of that frame when it was mapped (bookkeeping for the oracles). */
  readonly genList: Float64Array;
  /** Pages currently DMA-mapped (`umem_odp->npages`). */
  npages = 0;
  /** Page-fault handlers working on this MR (the mkey's usecount); deregistration waits for 0. */
  faultUsers = 0;
  /** Counters. */
  readonly stats: OdpStats = {
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

  /**
   * @param key the memory key.
   * @param device the NIC.
   * @param process the owning process.
   * @param addr first byte.
   * @param length bytes.
   * @param access `IbAccess` bits.
   * @param writable whether the device may write it.
   * @param sub the interval subscription (its op calls the device's invalidate).
   * @param umemMutex `umem_odp->umem_mutex`.
   */
  constructor(
    key: number,
    device: RdmaDevice,
    process: Process,
    addr: number,
    length: number,
    access: number,
    writable: boolean,
    readonly sub: MmuIntervalNotifier,
    readonly umemMutex: Mutex,
  ) {
    super(key, device, process, addr, length, access, writable);
    this.dmaList = new Float64Array(this.pages);
    this.dmaAccess = new Uint8Array(this.pages);
    this.pfnList = new Float64Array(this.pages);
    this.genList = new Float64Array(this.pages);
  }
}

/**
 * A pinned memory region (`ib_umem_get`): every page was pinned with
 * `pin_user_pages(FOLL_LONGTERM)` and DMA-mapped at registration, and the MTT was programmed
 * once. It is a snapshot of physical pages: whatever the process does to the virtual range
 * afterwards (munmap, mremap, mprotect, fork, reuse of the addresses), the NIC keeps reaching the
 * pages pinned here, until deregistration unpins them.
 *
 * @see ib_umem_get
 */
export class PinnedMr extends MemoryRegion {
  /** See {@link MemoryRegion.kind}. */
  readonly kind = 'pinned' as const;
  /** The pinned frames, one per page. */
  readonly frames: number[] = [];
  /** Their DMA addresses. */
  readonly dmaAddrs: number[] = [];
}
