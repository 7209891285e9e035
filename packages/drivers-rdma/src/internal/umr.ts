import { GFP_ATOMIC } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE } from '@mmnsim/mm';
import type { RdmaDevice } from './device.js';
import type { MemoryRegion } from './mr.js';
import { OdpMr } from './mr.js';

/** What a UMR does to the MTT: program entries, zero them, or disable the whole mkey. */
export type UmrOp = 'update' | 'zap' | 'revoke';

/**
 * A UMR work request (`mlx5r_umr_update_xlt`, `mlx5r_umr_revoke_mr`): an update of an mkey's
 * translation table that the NIC executes atomically (`MLX5_IB_UPD_XLT_ATOMIC`). An update
 * carries the entries as the driver built them when it posted (`populate_mtt`), not a pointer
 * to driver state: what the NIC writes is what the driver saw at that moment.
 *
 * @see mlx5r_umr_update_xlt
 */
export interface Umr {
  /** The MR whose MTT changes. */
  readonly mr: MemoryRegion;
  /** What to do. */
  readonly op: UmrOp;
  /** First entry. */
  readonly first: number;
  /** Number of entries. */
  readonly count: number;
  /** For updates: the DMA address of each entry. */
  readonly dma: readonly number[];
  /** For updates: the `MttAccess` bits of each entry (0 clears it). */
  readonly access: readonly number[];
  /** For updates (bookkeeping): the frame of each entry. */
  readonly pfn: readonly number[];
  /** For updates (bookkeeping): the frame's generation. */
  readonly gen: readonly number[];
  /** Set by the NIC when it executed the UMR (the completion). */
  done: boolean;
}

const NONE: readonly number[] = [];

/**
 * Builds the update of entries `[first, first + count)` of an ODP MR from its `dma_list`
 * (`mlx5_odp_populate_xlt`): each entry gets the page's DMA address and rights, or is cleared if
 * the page is not mapped. The kernel asserts that `umem_mutex` is held here; the oracle checks it
 * on the post (`rdma.umr.post` with `locked`).
 *
 * @see mlx5_odp_populate_xlt
 */
export function odpUpdate(mr: OdpMr, first: number, count: number): Umr {
  const dma: number[] = [];
  const access: number[] = [];
  const pfn: number[] = [];
  const gen: number[] = [];
  for (let i = first; i < first + count; i++) {
    const a = mr.dmaAccess[i]!;
    access.push(a);
    dma.push(a === 0 ? 0 : mr.dmaList[i]!);
    pfn.push(a === 0 ? 0 : mr.pfnList[i]!);
    gen.push(a === 0 ? 0 : mr.genList[i]!);
  }
  return { mr, op: 'update', first, count, dma, access, pfn, gen, done: false };
}

/** A UMR that zeroes entries `[first, first + count)` (`MLX5_IB_UPD_XLT_ZAP`). */
export function zapUmr(mr: MemoryRegion, first: number, count: number): Umr {
  return {
    mr,
    op: 'zap',
    first,
    count,
    dma: NONE,
    access: NONE,
    pfn: NONE,
    gen: NONE,
    done: false,
  };
}

/** A UMR that disables the mkey and clears its whole MTT (`mlx5r_umr_revoke_mr`). */
export function revokeUmr(mr: MemoryRegion): Umr {
  return {
    mr,
    op: 'revoke',
    first: 0,
    count: mr.pages,
    dma: NONE,
    access: NONE,
    pfn: NONE,
    gen: NONE,
    done: false,
  };
}

/**
 * Posts a UMR on the device's UMR queue and sleeps until the NIC completed it
 * (`mlx5r_umr_post_send_wait`). After it returns the NIC translates with the new entries only.
 *
 * Context: process context; sleeps (reported as `sleep-in-atomic` if called where sleeping is
 * not allowed, such as a non-blockable invalidation). The XLT buffer is allocated with
 * GFP_ATOMIC, as for `MLX5_IB_UPD_XLT_ATOMIC` updates, so it never recurses into reclaim while
 * `umem_mutex` is held.
 *
 * @see mlx5r_umr_post_send_wait
 */
export function* postUmr(dev: RdmaDevice, umr: Umr): TaskGen<void> {
  const k = dev.env.kernel;
  k.mightAlloc(GFP_ATOMIC, 'mlx5r_umr_create_xlt');
  const mr = umr.mr;
  const bus = k.bus;
  if (bus.wants('rdma.umr.post')) {
    bus.emit('rdma.umr.post', {
      dev: dev.name,
      mr: mr.key,
      kind: mr.kind,
      sub: mr instanceof OdpMr ? mr.sub.id : 0,
      op: umr.op,
      first: umr.first,
      count: umr.count,
      locked: mr instanceof OdpMr ? mr.umemMutex.heldByCurrent() : false,
    });
  }
  dev.umrQueue.push(umr);
  dev.umrWork.wakeAll();
  k.mightSleep('mlx5r_umr_post_send_wait');
  yield* dev.umrDone.waitEvent(() => umr.done);
}

/**
 * The NIC executes one UMR: one atomic step. Every entry that changes is reported
 * (`rdma.mtt.set`, and `smmu.map` / `smmu.unmap` for the oracles), then the completion is
 * signalled.
 */
export function executeUmr(dev: RdmaDevice, umr: Umr): void {
  const mr = umr.mr;
  const mtt = mr.mtt;
  const ev = mr.kind === 'odp' ? dev.events : dev.pinnedEvents;
  const mm = mr.mm;
  const bus = dev.env.kernel.bus;
  const tell = bus.wants('rdma.mtt.set');
  const end = Math.min(umr.first + umr.count, mtt.size);
  for (let i = umr.first; i < end; i++) {
    const was = mtt.access[i]!;
    const j = i - umr.first;
    const access = umr.op === 'update' ? umr.access[j]! : 0;
    if (access === 0) {
      if (was === 0) continue;
      mtt.access[i] = 0;
      mtt.dma[i] = 0;
      if (tell)
        bus.emit('rdma.mtt.set', { dev: dev.name, mr: mr.key, index: i, dma: 0, access: 0 });
      ev.unmap(mm, mr.start + i * PAGE_SIZE);
      continue;
    }
    const dma = umr.dma[j]!;
    const pfn = umr.pfn[j]!;
    const gen = umr.gen[j]!;
    if (was === access && mtt.dma[i] === dma && mtt.pfn[i] === pfn && mtt.gen[i] === gen) continue;
    mtt.access[i] = access;
    mtt.dma[i] = dma;
    mtt.pfn[i] = pfn;
    mtt.gen[i] = gen;
    if (tell) bus.emit('rdma.mtt.set', { dev: dev.name, mr: mr.key, index: i, dma, access });
    ev.map(mm, mr.start + i * PAGE_SIZE, pfn, gen, (access & 2) !== 0);
  }
  umr.done = true;
  if (bus.wants('rdma.umr.done')) {
    bus.emit('rdma.umr.done', {
      dev: dev.name,
      mr: mr.key,
      op: umr.op,
      first: umr.first,
      count: umr.count,
    });
  }
  dev.umrDone.wakeAll();
}

/**
 * The NIC's UMR engine (a daemon task on the device's engine context): executes posted UMRs in
 * order, one per step, and sleeps while there is none.
 */
export function* umrEngine(dev: RdmaDevice): TaskGen<void> {
  const q = dev.umrQueue;
  const sched = dev.env.kernel.scheduler;
  for (;;) {
    yield* dev.umrWork.waitEvent(() => q.length > 0);
    const umr = q.shift()!;
    executeUmr(dev, umr);
    yield* sched.preempt();
  }
}
