import { Errno, Mutex } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import {
  DMA_MAPPING_ERROR,
  dmaMapPage,
  dmaUnmapPage,
  Frame,
  HmmPfn,
  hmmPfnHas,
  hmmPfnToPfn,
  hmmRangeFault,
  MmuIntervalNotifier,
  mmdrop,
  mmgetNotZero,
  mmgrab,
  mmput,
  PAGE_SIZE,
  TASK_SIZE,
} from '@mmnsim/mm';
import type { MmStruct, NotifierRange, Process } from '@mmnsim/mm';
import { MttAccess, UMR_MTT_ALIGNMENT } from './constants.js';
import type { RdmaDevice } from './device.js';
import { OdpMr } from './mr.js';
import { odpUpdate, postUmr, revokeUmr, zapUmr } from './umr.js';

/**
 * Registers an ODP MR (`ib_umem_odp_get` + mlx5 `create_user_odp_mr` + `mlx5_ib_init_odp_mr`):
 * inserts the interval subscription over `[ALIGN_DOWN(addr), ALIGN_UP(addr + length))`, makes
 * the mkey visible to the page-fault handler, then maps the pages the CPU already maps, without
 * faulting anything in (the SNAPSHOT pass). Returns the MR or a negated errno.
 *
 * Context: a task of the owning process (the kernel uses `current->mm`); no `mmap_lock` held.
 */
export function* odpRegister(
  dev: RdmaDevice,
  process: Process,
  addr: number,
  length: number,
  access: number,
  writable: boolean,
): TaskGen<OdpMr | number> {
  const { kernel, core, mmn } = dev.env;
  const mm = process.mm;
  if (!validRange(addr, length))
    return dev.regFail(
      'odp',
      mm,
      addr,
      length,
      -Errno.EINVAL,
      'empty or out-of-range address range',
    );
  if (mm.users <= 0 || mm.exited)
    return dev.regFail(
      'odp',
      mm,
      addr,
      length,
      -Errno.EINVAL,
      `${mm.toString()} has no users left`,
    );
  mmgrab(mm); // umem->owning_mm
  const key = dev.env.nextKey();
  const umemMutex = new Mutex(kernel, 'umem_odp->umem_mutex');
  const holder: { mr: OdpMr | null } = { mr: null };
  const sub = new MmuIntervalNotifier({
    name: `${dev.name}/mr${key}`,
    invalidate: (s, range, curSeq) => odpInvalidate(dev, holder.mr!, s, range, curSeq),
  });
  const mr = new OdpMr(key, dev, process, addr, length, access, writable, sub, umemMutex);
  holder.mr = mr;
  const r = yield* mmn.intervalInsert(sub, mm, mr.start, mr.end - mr.start);
  if (r !== 0) {
    mmdrop(core, mm);
    return dev.regFail('odp', mm, addr, length, r, 'mmu_interval_notifier_insert failed');
  }
  dev.addMr(mr); // mlx5r_store_odp_mkey: page faults may find it from now on
  mr.state = 'live';
  const np = yield* pagefaultRealMr(dev, mr, mr.start, mr.end - mr.start, false);
  if (np < 0) {
    yield* odpDeregister(dev, mr);
    return dev.regFail(
      'odp',
      mm,
      addr,
      length,
      np,
      'the initial snapshot (mlx5_ib_init_odp_mr) failed',
    );
  }
  return mr;
}

function validRange(addr: number, length: number): boolean {
  return (
    Number.isSafeInteger(addr) &&
    Number.isSafeInteger(length) &&
    addr >= 0 &&
    length > 0 &&
    addr + length <= TASK_SIZE
  );
}

/**
 * `mmput_async`: drops the fault path's `mm_users` reference. Dropping the last one would tear
 * the address space down — whose RELEASE invalidation needs this MR's `umem_mutex`, which the
 * fault path may hold — so the final put runs in a kworker, as in the kernel.
 *
 * @see mmput_async
 */
function* mmputAsync(dev: RdmaDevice, mm: MmStruct): TaskGen<void> {
  const core = dev.env.core;
  if (mm.users > 1) {
    yield* mmput(core, mm); // not the last: a plain decrement
    return;
  }
  dev.env.kernel.scheduler.spawn('mmput_async', dev.faultCpu, function* () {
    yield* mmput(core, mm);
  });
}

/**
 * `ib_umem_odp_map_dma_and_lock` (the dma_list era, mlx5 ≈ v6.2–6.7): makes the pages of
 * `[va, va + bcnt)` DMA-mapped, following the interval-notifier protocol:
 * 1. range check against the umem (-EFAULT); `mmget_not_zero` on the owning mm (-EINVAL);
 * 2. `seq = mmu_interval_read_begin()` (sleeps while an invalidation of this MR is in flight);
 * 3. `mmap_read_lock`, `hmm_range_fault` (faulting pages in when `fault`, asking for write
 *    access when `write`), unlock; -EBUSY → back to 2 until `odpFaultTimeoutNs` passed;
 * 4. a scheduling point: the driver gets here with nothing locked, so invalidations can run;
 * 5. `umem_mutex`; if `mmu_interval_read_retry(seq)` → unlock, back to 2;
 * 6. DMA-map every valid page not mapped yet (`ib_umem_odp_map_dma_single_page`).
 *
 * Returns the number of pages from `ALIGN_DOWN(va)` on — with `umem_mutex` **still held**, for
 * the caller to program the MTT — or a negated errno with the mutex released.
 *
 * @see ib_umem_odp_map_dma_and_lock
 */
function* mapDmaAndLock(
  dev: RdmaDevice,
  mr: OdpMr,
  va: number,
  bcnt: number,
  write: boolean,
  fault: boolean,
): TaskGen<number> {
  const { kernel, core, mmn, options } = dev.env;
  const bugs = dev.bugs;
  if (va < mr.start || va + bcnt > mr.end || bcnt <= 0) return -Errno.EFAULT;
  const mm = mr.mm;
  if (!mmgetNotZero(mm)) return -Errno.EINVAL; // the owning process is gone
  const start = va - (va % PAGE_SIZE);
  const last = va + bcnt;
  const end = last % PAGE_SIZE === 0 ? last : last - (last % PAGE_SIZE) + PAGE_SIZE;
  const n = (end - start) / PAGE_SIZE;
  const first = mr.index(start);
  const defaultFlags = fault ? HmmPfn.REQ_FAULT + (write ? HmmPfn.REQ_WRITE : 0) : 0;
  const deadline = kernel.clock.now + options.odpFaultTimeoutNs;
  const sub = mr.sub;
  const bus = kernel.bus;
  const phys = core.phys;
  let ret: number;
  for (;;) {
    const seq = yield* mmn.readBegin(sub);
    const hmmPfns = new Array<number>(n).fill(0);
    yield* mm.mmapLock.downRead();
    const r = yield* hmmRangeFault(core, {
      mm,
      start,
      end,
      hmmPfns,
      defaultFlags,
      pfnFlagsMask: 0,
      notifierSeqChanged: () => mmn.checkRetry(sub, seq),
    });
    mm.mmapLock.upRead();
    // Bookkeeping: which allocation of each frame the snapshot saw (the oracles compare it with
    // the frame's state when the device uses the translation).
    const gens = r === 0 ? hmmPfns.map((e) => phys.generation[hmmPfnToPfn(e)]!) : [];
    if (bus.wants('rdma.odp.snapshot'))
      bus.emit('rdma.odp.snapshot', {
        dev: dev.name,
        mr: mr.key,
        start,
        pages: n,
        seq,
        result: r,
        fault,
      });
    if (r !== 0) {
      if (r === -Errno.EBUSY && kernel.clock.now <= deadline) {
        mr.stats.busyRetries++;
        continue;
      }
      if (r === -Errno.EBUSY) mr.stats.timeouts++;
      ret = r;
      break;
    }
    if (bugs.has('read-retry-outside-lock') && mmn.readRetry(sub, seq)) {
      mr.stats.collisions++;
      continue;
    }
    // The driver has a snapshot and holds nothing: invalidations of the range may run here.
    yield* kernel.scheduler.preempt();
    yield* mr.umemMutex.lock();
    if (!bugs.has('no-read-retry') && !bugs.has('read-retry-outside-lock')) {
      if (mmn.readRetry(sub, seq)) {
        mr.umemMutex.unlock();
        mr.stats.collisions++;
        continue;
      }
    }
    ret = 0;
    for (let i = 0; i < n; i++) {
      const e = hmmPfns[i]!;
      let accessMask: number;
      if (fault) {
        if (!hmmPfnHas(e, HmmPfn.VALID) || hmmPfnHas(e, HmmPfn.ERROR)) {
          kernel.report(
            'odp-fault-invalid-pfn',
            `WARN_ON: hmm_range_fault succeeded for ${mr.toString()} but page ${start + i * PAGE_SIZE} is not valid`,
          );
          continue;
        }
        accessMask = MttAccess.READ | (write ? MttAccess.WRITE : 0);
      } else {
        if (!hmmPfnHas(e, HmmPfn.VALID)) continue;
        accessMask = MttAccess.READ | (hmmPfnHas(e, HmmPfn.WRITE) ? MttAccess.WRITE : 0);
      }
      ret = yield* mapSinglePage(dev, mr, first + i, hmmPfnToPfn(e), gens[i]!, accessMask);
      if (ret < 0) break;
    }
    if (ret === 0) ret = n;
    else mr.umemMutex.unlock();
    break;
  }
  yield* mmputAsync(dev, mm);
  return ret;
}

/**
 * `ib_umem_odp_map_dma_single_page`: DMA-maps page `idx` (frame `pfn`, allocation `gen` as the
 * snapshot saw it) with `access` rights.
 * A page that is already mapped went through a non-invalidating transition (read-only to
 * writable): only its rights are resynchronised. Such a page must be the same frame — any other
 * change of the CPU mapping invalidates, which unmaps it first — and a different frame is
 * reported (`odp-remap-different-page`): the kernel would silently keep the old DMA address.
 * Caller holds `umem_mutex`.
 */
function* mapSinglePage(
  dev: RdmaDevice,
  mr: OdpMr,
  idx: number,
  pfn: number,
  gen: number,
  access: number,
): TaskGen<number> {
  const { kernel } = dev.env;
  if (mr.dmaAccess[idx] !== 0) {
    if (mr.pfnList[idx] !== pfn || mr.genList[idx] !== gen) {
      kernel.report(
        'odp-remap-different-page',
        `${mr.toString()} page ${idx} is DMA-mapped to frame ${mr.pfnList[idx]} (generation ${mr.genList[idx]}) but the snapshot now gives frame ${pfn} (generation ${gen}): the mapping outlived a change of the CPU page table (a missed invalidation or a stale snapshot)`,
      );
    }
    mr.dmaAccess[idx] = access;
    return 0;
  }
  const dma = yield* dmaMapPage(dev.agent, dev.name, pfn, 'bidirectional');
  if (dma === DMA_MAPPING_ERROR) return -Errno.EFAULT;
  mr.dmaList[idx] = dma;
  mr.dmaAccess[idx] = access;
  mr.pfnList[idx] = pfn;
  mr.genList[idx] = gen;
  mr.npages++;
  const bus = kernel.bus;
  if (bus.wants('rdma.odp.dma_map'))
    bus.emit('rdma.odp.dma_map', { dev: dev.name, mr: mr.key, index: idx, pfn, dma, access });
  return 0;
}

/**
 * mlx5 `pagefault_real_mr`: {@link mapDmaAndLock}, then program the MTT entries of the mapped
 * pages with a UMR (`mlx5r_umr_update_xlt`, ATOMIC) and wait for it, then release `umem_mutex`.
 * Only then may the NIC use the new translations. The access asked for is read, plus write if
 * the MR is writable (mlx5 asks for write whenever the umem is writable, whatever the access
 * that faulted). `fault` false is the SNAPSHOT pass of registration: map only what the CPU maps.
 * Returns the pages mapped or a negated errno.
 *
 * @see pagefault_real_mr
 */
export function* pagefaultRealMr(
  dev: RdmaDevice,
  mr: OdpMr,
  va: number,
  bcnt: number,
  fault: boolean,
): TaskGen<number> {
  const np = yield* mapDmaAndLock(dev, mr, va, bcnt, mr.writable, fault);
  if (np < 0) return np;
  const first = mr.index(va);
  const update = odpUpdate(mr, first, np);
  if (dev.bugs.has('mtt-after-unlock')) {
    mr.umemMutex.unlock();
    yield* dev.env.kernel.scheduler.preempt();
    yield* postUmr(dev, update);
    return np;
  }
  yield* postUmr(dev, update);
  mr.umemMutex.unlock();
  return np;
}

/**
 * The device page-fault handler for one fault the NIC raised on `mr` at `va` needing `bytes`
 * (mlx5 `pagefault_single_data_segment` → `pagefault_mr`): the mkey must be a live ODP MR
 * (-EFAULT otherwise); its usecount is held while the fault is handled; the range is clipped to
 * the umem. Returns 0 or a negated errno (the NIC then fails the work request).
 *
 * @see pagefault_single_data_segment
 */
export function* handleOdpFault(
  dev: RdmaDevice,
  mr: OdpMr,
  va: number,
  bytes: number,
): TaskGen<number> {
  if (mr.state !== 'live') return -Errno.EFAULT;
  if (va < mr.start || va >= mr.end) return -Errno.EFAULT;
  mr.faultUsers++;
  mr.stats.faults++;
  const end = Math.min(va + bytes, mr.end);
  const np = yield* pagefaultRealMr(dev, mr, va, end - va, true);
  if (np > 0) mr.stats.faultPages += np;
  if (--mr.faultUsers === 0) dev.mrIdle.wakeAll();
  return np < 0 ? np : 0;
}

/**
 * Splits the mapped pages of `[start, end)` into UMR blocks as mlx5 does: a block starts at a
 * mapped page and ends only at an unmapped page whose index is a multiple of the UMR alignment
 * (zeroing the unmapped entries in between is harmless: concurrent invalidations only write
 * zeros too). Returns `[first, count]` pairs and the number of mapped pages.
 */
function zapBlocks(mr: OdpMr, start: number, end: number): { blocks: number[][]; mapped: number } {
  const blocks: number[][] = [];
  let inBlock = false;
  let blkStart = 0;
  let mapped = 0;
  const lo = mr.index(start);
  const hi = mr.index(end - 1);
  for (let idx = lo; idx <= hi; idx++) {
    if (mr.dmaAccess[idx] !== 0) {
      mapped++;
      if (!inBlock) {
        blkStart = idx;
        inBlock = true;
      }
    } else if (inBlock && idx % UMR_MTT_ALIGNMENT === 0) {
      blocks.push([blkStart, idx - blkStart]);
      inBlock = false;
    }
  }
  if (inBlock) blocks.push([blkStart, hi - blkStart + 1]);
  return { blocks, mapped };
}

/**
 * `ib_umem_odp_unmap_dma_pages(start, end)`: for each DMA-mapped page of the range, DMA-unmap
 * it, mark it dirty if it was mapped writable (`set_page_dirty`: the device may have written
 * it; `umem_mutex` — not the page lock — keeps the mapping from disappearing meanwhile), and
 * forget it. Caller holds `umem_mutex`, and the MTT entries of the range must already be
 * zapped. Returns the pages unmapped.
 *
 * @see ib_umem_odp_unmap_dma_pages
 */
function* unmapDmaPages(dev: RdmaDevice, mr: OdpMr, start: number, end: number): TaskGen<number> {
  const { kernel, core } = dev.env;
  const phys = core.phys;
  const bus = kernel.bus;
  let unmapped = 0;
  const lo = mr.index(start);
  const hi = mr.index(end - 1);
  for (let idx = lo; idx <= hi; idx++) {
    const access = mr.dmaAccess[idx]!;
    if (access === 0) continue;
    const dma = mr.dmaList[idx]!;
    const pfn = mr.pfnList[idx]!;
    const dirty = (access & MttAccess.WRITE) !== 0;
    if (bus.wants('rdma.odp.dma_unmap'))
      bus.emit('rdma.odp.dma_unmap', { dev: dev.name, mr: mr.key, index: idx, dma, dirty });
    yield* dmaUnmapPage(dev.agent, dev.name, dma, 'bidirectional');
    if (dirty && pfn !== 0 && !phys.isFree(pfn)) phys.flags[pfn]! |= Frame.DIRTY;
    mr.dmaAccess[idx] = 0;
    mr.dmaList[idx] = 0;
    mr.npages--;
    unmapped++;
  }
  return unmapped;
}

/**
 * The interval op (`mlx5_ib_invalidate_range`):
 * 1. a non-blockable range (the OOM reaper) → return false at once: issuing a UMR and waiting
 *    for it would sleep; the core turns this into -EAGAIN;
 * 2. lock `umem_mutex`; `mmu_interval_set_seq(cur_seq)` — unconditionally: this is what makes a
 *    racing fault's `read_retry` fail;
 * 3. nothing mapped (`npages == 0`) → unlock, return true;
 * 4. clip the range to the umem; zap the mapped MTT entries in aligned blocks, each a UMR waited
 *    for (the scheduling point where the NIC may still use the old entries);
 * 5. now that the device cannot use them: DMA-unmap the pages, marking written ones dirty;
 * 6. unlock, return true.
 * Only after it returns may the mm free the pages.
 *
 * @see mlx5_ib_invalidate_range
 */
export function* odpInvalidate(
  dev: RdmaDevice,
  mr: OdpMr,
  sub: MmuIntervalNotifier,
  range: NotifierRange,
  curSeq: number,
): TaskGen<boolean> {
  const { kernel, mmn } = dev.env;
  const bugs = dev.bugs;
  const start = Math.max(range.start, mr.start);
  const end = Math.min(range.end, mr.end);
  mr.stats.invalidations++;
  let nonBlock = false;
  if (!range.blockable) {
    if (!bugs.has('umr-in-nonblockable')) {
      mr.stats.refused++;
      emitInvalidate(dev, mr, start, end, range, 0, false);
      return false;
    }
    // The bug: handle the range anyway. What follows must not sleep, as for any callback of a
    // non-blockable range (the core marks list callbacks so; the op marks itself here).
    kernel.nonBlockStart(`non-blockable invalidate of ${sub.ops.name}`);
    nonBlock = true;
    if (!mr.umemMutex.tryLock()) {
      kernel.nonBlockEnd();
      mr.stats.refused++;
      emitInvalidate(dev, mr, start, end, range, 0, false);
      return false;
    }
  } else {
    yield* mr.umemMutex.lock();
  }
  const setSeqFirst = !bugs.has('set-seq-if-mapped');
  if (setSeqFirst) mmn.setSeq(sub, curSeq);
  let unmapped = 0;
  if (mr.npages > 0 && start < end) {
    if (!setSeqFirst) mmn.setSeq(sub, curSeq);
    const { blocks, mapped } = zapBlocks(mr, start, end);
    if (bugs.has('dma-unmap-before-zap')) {
      unmapped = yield* unmapDmaPages(dev, mr, start, end);
      for (const [first, count] of blocks) yield* postUmr(dev, zapUmr(mr, first!, count!));
    } else {
      for (const [first, count] of blocks) yield* postUmr(dev, zapUmr(mr, first!, count!));
      unmapped = yield* unmapDmaPages(dev, mr, start, end);
    }
    mr.stats.zapped += mapped;
    mr.stats.unmapped += unmapped;
  }
  mr.umemMutex.unlock();
  if (nonBlock) kernel.nonBlockEnd();
  emitInvalidate(dev, mr, start, end, range, unmapped, true);
  return true;
}

function emitInvalidate(
  dev: RdmaDevice,
  mr: OdpMr,
  start: number,
  end: number,
  range: NotifierRange,
  unmapped: number,
  result: boolean,
): void {
  const bus = dev.env.kernel.bus;
  if (!bus.wants('rdma.odp.invalidate')) return;
  bus.emit('rdma.odp.invalidate', {
    dev: dev.name,
    mr: mr.key,
    start,
    end,
    event: range.event,
    blockable: range.blockable,
    unmapped,
    result,
  });
}

/**
 * Deregisters an ODP MR (mlx5 `__mlx5_ib_dereg_mr` + `ib_umem_odp_release`): the mkey leaves
 * the fault handler's table (new faults fail), running fault handlers are waited for
 * (`mlx5r_deref_wait_odp_mkey`), the mkey is revoked (a UMR; the NIC no longer uses it), then
 * under `umem_mutex` every page is DMA-unmapped, and the interval subscription is removed (after
 * which the invalidate op never runs again); the mm reference is dropped last.
 *
 * Context: process context, may sleep; not from a notifier callback.
 *
 * @see ib_umem_odp_release
 */
export function* odpDeregister(dev: RdmaDevice, mr: OdpMr): TaskGen<void> {
  const { core, mmn } = dev.env;
  mr.state = 'dying';
  yield* dev.mrIdle.waitEvent(() => mr.faultUsers === 0);
  yield* postUmr(dev, revokeUmr(mr));
  yield* mr.umemMutex.lock();
  yield* unmapDmaPages(dev, mr, mr.start, mr.end);
  mr.umemMutex.unlock();
  yield* mmn.intervalRemove(mr.sub);
  mmdrop(core, mr.mm);
  dev.removeMr(mr);
  mr.state = 'dead';
}
