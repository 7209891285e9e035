// mremap(MREMAP_MAYMOVE | MREMAP_DONTUNMAP) (mm/mremap.c, 5.7+, any private or shared mapping
// since 5.13): the pages move to a new mapping, the old range stays mapped with no pages (the
// next access faults afresh). hmm-tests uses it to move device-private pages between
// addresses. Its own file so the mremap code only gains the call.
import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { MMAP_BASE, TASK_SIZE } from './constants.js';
import type { MmCore } from './core.js';
import type { MmStruct } from './mm.js';
import { copyVmaMoveTables } from './mremap.js';
import { unmapRegionLocked } from './unmap.js';
import { Vm } from './vma.js';

/**
 * `mremap(oldAddr, olen, nlen, MREMAP_MAYMOVE | MREMAP_DONTUNMAP [| MREMAP_FIXED], newAddr)`
 * with page-aligned lengths: -EINVAL without MAYMOVE or when the lengths differ, or for a
 * VM_PFNMAP mapping; -EFAULT when the old range is not inside one VMA; -ENOMEM without room.
 * Otherwise a new VMA with the same flags, file, offset and anon_vma receives the page tables
 * (`move_page_tables`: one UNMAP window over the old range, entries moved with their mapcounts
 * and references — present, swap, migration and device entries alike) and the old VMA stays;
 * when it is exactly the old range it leaves its anon_vma (`unlink_anon_vmas`), so what is
 * faulted there later is unrelated to the moved pages. Returns the new address.
 *
 * Context: takes `mmap_lock` for write.
 *
 * @see SYSCALL_DEFINE5(mremap)
 * @see move_vma
 */
export function* mremapDontUnmap(
  core: MmCore,
  mm: MmStruct,
  oldAddr: number,
  olen: number,
  nlen: number,
  mayMove: boolean,
  newAddr: number,
): TaskGen<number> {
  if (!mayMove || olen !== nlen) return -Errno.EINVAL;
  yield* mm.mmapLock.downWrite();
  const r = yield* locked(core, mm, oldAddr, olen, newAddr);
  mm.mmapLock.upWrite();
  return r;
}

function* locked(
  core: MmCore,
  mm: MmStruct,
  oldAddr: number,
  len: number,
  fixedAddr: number,
): TaskGen<number> {
  let vma = mm.vmas.find(oldAddr);
  if (vma === undefined || len === 0 || len > vma.end - oldAddr) return -Errno.EFAULT;
  if ((vma.flags & Vm.PFNMAP) !== 0) return -Errno.EINVAL;
  let dest = fixedAddr;
  if (dest >= 0) {
    yield* unmapRegionLocked(core, mm, dest, dest + len);
    vma = mm.vmas.find(oldAddr);
    if (vma === undefined) return -Errno.EFAULT;
  } else {
    dest = mm.vmas.findFree(len, MMAP_BASE, TASK_SIZE);
    if (dest < 0) return -Errno.ENOMEM;
  }
  const nv = yield* copyVmaMoveTables(core, mm, vma, oldAddr, len, len, dest);
  if (typeof nv === 'number') return nv;
  const av = vma.anonVma;
  if (av !== null && vma.start === oldAddr && vma.end === oldAddr + len) {
    yield* av.lock.downWrite();
    av.vmas.delete(vma);
    vma.anonVma = null;
    av.lock.upWrite();
  }
  return dest;
}
