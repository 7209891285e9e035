import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import {
  DMA_MAPPING_ERROR,
  dmaMapPage,
  dmaUnmapPage,
  Foll,
  mmdrop,
  mmgrab,
  PAGE_SIZE,
  pinUserPagesFast,
  TASK_SIZE,
  unpinUserPages,
  unpinUserPagesDirtyLock,
} from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { MttAccess } from './constants.js';
import type { RdmaDevice } from './device.js';
import { PinnedMr } from './mr.js';
import { postUmr, revokeUmr } from './umr.js';
import type { Umr } from './umr.js';

/** Pages pinned per `pin_user_pages_fast` call (`PAGE_SIZE / sizeof(struct page *)`). */
const PIN_CHUNK = 512;

/**
 * Registers a pinned MR (`ib_umem_get` + the mkey's creation):
 * 1. reject ON_DEMAND (-EOPNOTSUPP), an empty or overflowing range (-EINVAL), and — when
 *    RLIMIT_MEMLOCK is 0 and there is no CAP_IPC_LOCK — any pinning (`can_do_mlock`, -EPERM);
 * 2. account the pages into the mm's `pinned_vm`; above RLIMIT_MEMLOCK without CAP_IPC_LOCK,
 *    undo and fail with -ENOMEM (the `rdma.mr.reg_fail` event says by how much);
 * 3. pin the pages in chunks with `pin_user_pages_fast(FOLL_LONGTERM [| FOLL_WRITE if
 *    writable])`, faulting them in (a write pin breaks COW); on failure unpin and undo;
 * 4. DMA-map every page, then program the whole MTT once.
 *
 * Context: a task of the owning process; may sleep; no `mmap_lock` held.
 *
 * @see ib_umem_get
 */
export function* pinnedRegister(
  dev: RdmaDevice,
  process: Process,
  addr: number,
  length: number,
  access: number,
  writable: boolean,
): TaskGen<PinnedMr | number> {
  const { core, options, kernel } = dev.env;
  const mm = process.mm;
  if (
    !Number.isSafeInteger(addr) ||
    !Number.isSafeInteger(length) ||
    addr < 0 ||
    length <= 0 ||
    addr + length > TASK_SIZE
  )
    return dev.regFail(
      'pinned',
      mm,
      addr,
      length,
      -Errno.EINVAL,
      'empty or out-of-range address range',
    );
  const limit = options.memlockLimitPages;
  const cap = options.capIpcLock;
  if (limit === 0 && !cap)
    return dev.regFail(
      'pinned',
      mm,
      addr,
      length,
      -Errno.EPERM,
      'can_do_mlock: RLIMIT_MEMLOCK is 0 and the process lacks CAP_IPC_LOCK',
    );
  const key = dev.env.nextKey();
  const mr = new PinnedMr(key, dev, process, addr, length, access, writable);
  mmgrab(mm);
  const npages = mr.pages;
  const pinned = dev.env.pinnedVm(mm) + npages;
  dev.env.setPinnedVm(mm, pinned);
  if (pinned > limit && !cap) {
    dev.env.setPinnedVm(mm, pinned - npages);
    mmdrop(core, mm);
    return dev.regFail(
      'pinned',
      mm,
      addr,
      length,
      -Errno.ENOMEM,
      `RLIMIT_MEMLOCK: pinning ${npages} more page(s) would make pinned_vm ${pinned} pages, above the limit of ${limit} (memlockLimitPages) and the process lacks CAP_IPC_LOCK`,
    );
  }
  const gupFlags = Foll.LONGTERM | (writable ? Foll.WRITE : 0);
  const frames = mr.frames;
  let err = 0;
  let cur = mr.start;
  while (frames.length < npages) {
    const chunk = new Array<number>(Math.min(npages - frames.length, PIN_CHUNK)).fill(0);
    const r = yield* pinUserPagesFast(core, mm, cur, chunk.length, gupFlags, chunk);
    if (r <= 0) {
      err = r < 0 ? r : -Errno.EFAULT;
      break;
    }
    for (let i = 0; i < r; i++) frames.push(chunk[i]!);
    cur += r * PAGE_SIZE;
    yield* kernel.scheduler.preempt(); // cond_resched between chunks
  }
  if (err === 0) {
    for (const pfn of frames) {
      const dma = yield* dmaMapPage(dev.agent, dev.name, pfn, 'bidirectional');
      if (dma === DMA_MAPPING_ERROR) {
        err = -Errno.ENOMEM;
        break;
      }
      mr.dmaAddrs.push(dma);
    }
  }
  if (err !== 0) {
    for (const dma of mr.dmaAddrs) yield* dmaUnmapPage(dev.agent, dev.name, dma, 'bidirectional');
    unpinUserPages(core, frames);
    dev.env.setPinnedVm(mm, dev.env.pinnedVm(mm) - npages);
    mmdrop(core, mm);
    return dev.regFail(
      'pinned',
      mm,
      addr,
      length,
      err,
      'pin_user_pages_fast or the DMA mapping failed',
    );
  }
  dev.addMr(mr);
  const rights = MttAccess.READ | (writable ? MttAccess.WRITE : 0);
  const gen = core.phys.generation;
  const umr: Umr = {
    mr,
    op: 'update',
    first: 0,
    count: npages,
    dma: mr.dmaAddrs,
    access: frames.map(() => rights),
    pfn: frames,
    gen: frames.map((pfn) => gen[pfn]!),
    done: false,
  };
  yield* postUmr(dev, umr);
  mr.state = 'live';
  return mr;
}

/**
 * Deregisters a pinned MR (`__mlx5_ib_dereg_mr` + `ib_umem_release`): revoke the mkey (the NIC
 * stops using the pages), DMA-unmap them, unpin them — marking them dirty if the MR was writable
 * (`unpin_user_page_range_dirty_lock`); a page the process unmapped meanwhile is freed here —
 * subtract them from `pinned_vm` and drop the mm reference.
 *
 * Context: process context, may sleep.
 *
 * @see ib_umem_release
 */
export function* pinnedDeregister(dev: RdmaDevice, mr: PinnedMr): TaskGen<void> {
  const { core } = dev.env;
  mr.state = 'dying';
  yield* postUmr(dev, revokeUmr(mr));
  for (const dma of mr.dmaAddrs) yield* dmaUnmapPage(dev.agent, dev.name, dma, 'bidirectional');
  yield* unpinUserPagesDirtyLock(core, mr.frames, mr.writable);
  dev.env.setPinnedVm(mr.mm, dev.env.pinnedVm(mr.mm) - mr.pages);
  mmdrop(core, mr.mm);
  dev.removeMr(mr);
  mr.state = 'dead';
}
