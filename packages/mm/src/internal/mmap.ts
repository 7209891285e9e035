import { Errno, GFP_KERNEL } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { MMAP_BASE, PAGE_SIZE, pageAlignUp, TASK_SIZE } from './constants.js';
import type { MmCore } from './core.js';
import type { SimFile } from './file.js';
import type { MmStruct } from './mm.js';
import { handleMmFault } from './fault.js';
import { hugetlbMmapCheck, hugetlbMmapPrepare, MAP_HUGETLB } from './huge/hugetlb.js';
import { unmapRegionLocked } from './unmap.js';
import { Vm, Vma } from './vma.js';

/** `PROT_*` bits. */
export const Prot = {
  /** `PROT_NONE`. */
  NONE: 0,
  /** `PROT_READ`. */
  READ: 0x1,
  /** `PROT_WRITE`. */
  WRITE: 0x2,
  /** `PROT_EXEC`. */
  EXEC: 0x4,
} as const;
/**
 * Every `PROT_*` bit mprotect accepts (READ, WRITE, EXEC, SEM, GROWSDOWN, GROWSUP); mmap ignores
 * bits outside it, as `calc_vm_prot_bits` does (Linux 6.17 mm/mmap.c: do_mmap validates none).
 */
export const PROT_VALID = 0x1 | 0x2 | 0x4 | 0x8 | 0x01000000 | 0x02000000;

/** `MAP_*` flags. */
export const Map_ = {
  /** `MAP_SHARED`. */
  SHARED: 0x01,
  /** `MAP_PRIVATE`. */
  PRIVATE: 0x02,
  /** `MAP_SHARED_VALIDATE`: MAP_SHARED that rejects unknown flags with -EOPNOTSUPP. */
  SHARED_VALIDATE: 0x03,
  /** `MAP_FIXED`: exactly at `addr`, replacing what is there. */
  FIXED: 0x10,
  /** `MAP_ANONYMOUS`. */
  ANONYMOUS: 0x20,
  /** `MAP_NORESERVE` (accepted, no effect). */
  NORESERVE: 0x4000,
  /** `MAP_POPULATE`: fault every page in now. */
  POPULATE: 0x8000,
  /** `MAP_FIXED_NOREPLACE`: exactly at `addr`, -EEXIST if something is there. */
  FIXED_NOREPLACE: 0x100000,
} as const;
const MAP_KNOWN = 0x03 | 0x10 | 0x20 | 0x4000 | 0x8000 | 0x100000;

/**
 * `mmap_min_addr`: the lowest address a MAP_FIXED mapping may have without CAP_SYS_RAWIO (the
 * model's processes are unprivileged; 64 KiB, the usual `vm.mmap_min_addr`). Lower hints are
 * raised to it (`round_hint_to_min`).
 * @see security_mmap_addr
 */
export const MMAP_MIN_ADDR = 65536;

/** The heap start the model gives every process (`mm->start_brk`). */
export const BRK_BASE = 0x10000000;

/** VMA flags for `prot` (`calc_vm_prot_bits`) plus the MAY bits of a mapping. */
export function vmFlagsFor(prot: number, shared: boolean): number {
  let f = Vm.MAYREAD | Vm.MAYWRITE | Vm.MAYEXEC;
  if ((prot & Prot.READ) !== 0) f |= Vm.READ;
  if ((prot & Prot.WRITE) !== 0) f |= Vm.WRITE;
  if ((prot & Prot.EXEC) !== 0) f |= Vm.EXEC;
  if (shared) f |= Vm.SHARED;
  return f;
}

function emitVmaAdd(core: MmCore, v: Vma): void {
  const bus = core.kernel.bus;
  if (bus.wants('mm.vma.add')) {
    bus.emit('mm.vma.add', {
      mm: v.mm.id,
      start: v.start,
      end: v.end,
      flags: v.flags,
      file: v.file?.id ?? 0,
      pgoff: v.pgoff,
    });
  }
}

function emitVmaRemove(core: MmCore, v: Vma): void {
  const bus = core.kernel.bus;
  if (bus.wants('mm.vma.remove'))
    bus.emit('mm.vma.remove', { mm: v.mm.id, start: v.start, end: v.end });
}

/** Adds a new VMA to `mm` and its file's i_mmap (caller holds mmap_lock for write). */
export function insertVma(core: MmCore, vma: Vma): void {
  vma.mm.vmas.insert(vma);
  vma.file?.mappings.add(vma);
  vma.anonVma?.vmas.add(vma);
  emitVmaAdd(core, vma);
}

/** Removes a VMA from `mm`, its file's i_mmap and its anon_vma (caller holds mmap_lock for write). */
export function removeVma(core: MmCore, vma: Vma): void {
  vma.mm.vmas.remove(vma);
  vma.file?.mappings.delete(vma);
  vma.anonVma?.vmas.delete(vma);
  emitVmaRemove(core, vma);
}

/** Changes a VMA's bounds, flags or offset in place, recorded as remove + add (caller holds mmap_lock for write). */
export function updateVma(
  core: MmCore,
  vma: Vma,
  start: number,
  end: number,
  flags: number,
  pgoff: number,
): void {
  emitVmaRemove(core, vma);
  vma.mm.vmas.remove(vma);
  vma.start = start;
  vma.end = end;
  vma.flags = flags;
  vma.pgoff = pgoff;
  vma.mm.vmas.insert(vma);
  emitVmaAdd(core, vma);
}

/**
 * Splits `vma` at `addr` (`split_vma`): `vma` keeps `[start, addr)`, a new VMA with the same
 * flags, file, offset and anon_vma covers `[addr, end)`. Returns the new upper VMA. Caller holds
 * mmap_lock for write.
 */
export function splitVma(core: MmCore, vma: Vma, addr: number): Vma {
  const upper = new Vma(
    vma.mm,
    addr,
    vma.end,
    vma.flags,
    vma.file,
    vma.pgoff + (addr - vma.start) / PAGE_SIZE,
  );
  upper.anonVma = vma.anonVma;
  updateVma(core, vma, vma.start, addr, vma.flags, vma.pgoff);
  insertVma(core, upper);
  return upper;
}

/**
 * The VMAs covering `[start, end)`, split so that none extends outside the range. Caller holds
 * mmap_lock for write.
 */
export function vmasExactly(core: MmCore, mm: MmStruct, start: number, end: number): Vma[] {
  const out: Vma[] = [];
  for (let v of mm.vmas.intersecting(start, end)) {
    if (v.start < start) v = splitVma(core, v, start);
    if (v.end > end) splitVma(core, v, end);
    out.push(v);
  }
  return out;
}

/**
 * `mmap`: map `len` bytes at `addr` (a hint unless MAP_FIXED). Returns the address or a negated
 * errno, as the syscall does (Linux 6.17 mm/mmap.c: do_mmap, __get_unmapped_area), checked in
 * this order:
 * - -EINVAL: `len`, `addr` or `offset` not an integer (no syscall argument is); `offset` negative
 *   or not page aligned;
 * - -EBADF: a file mapping without a file;
 * - -EINVAL: `len` is 0;
 * - -ENOMEM: a negative `len` (a size_t that `PAGE_ALIGN` wraps or that exceeds TASK_SIZE), or
 *   `len` rounding up past the address space; with MAP_FIXED, `addr` negative (a huge unsigned
 *   address) or `addr + len` past TASK_SIZE;
 * - -EINVAL: MAP_FIXED with `addr` not page aligned;
 * - -EPERM: MAP_FIXED below {@link MMAP_MIN_ADDR} (`security_mmap_addr`);
 * - -EINVAL: neither MAP_SHARED nor MAP_PRIVATE; an anonymous MAP_SHARED_VALIDATE (do_mmap's
 *   anonymous switch knows only MAP_SHARED and MAP_PRIVATE);
 * - -EOPNOTSUPP: a file MAP_SHARED_VALIDATE with an unknown flag (MAP_SHARED ignores them);
 * - -ENOMEM: no room;
 * - -EEXIST: MAP_FIXED_NOREPLACE over an existing mapping.
 *
 * Unknown PROT bits are ignored (`calc_vm_prot_bits`). The kernel checks the type after the
 * address; the model checks it before taking the lock, so MAP_FIXED_NOREPLACE over a mapping
 * with a bad type gives -EINVAL here where Linux gives -EEXIST.
 *
 * Takes mmap_lock for write.
 *
 * @see do_mmap
 */
export function* doMmap(
  core: MmCore,
  mm: MmStruct,
  addr: number,
  len: number,
  prot: number,
  flags: number,
  file: SimFile | null,
  offset: number,
): TaskGen<number> {
  const E = Errno;
  if (!Number.isInteger(len) || !Number.isInteger(addr) || !Number.isInteger(offset))
    return -E.EINVAL;
  if (!Number.isInteger(prot) || !Number.isInteger(flags)) return -E.EINVAL;
  // arch sys_mmap: `off & ~PAGE_MASK` (a negative offset is refused too: see the README).
  if (offset < 0 || offset % PAGE_SIZE !== 0) return -E.EINVAL;
  const anonymous = (flags & Map_.ANONYMOUS) !== 0;
  // ksys_mmap_pgoff: fget(fd) before do_mmap.
  if (!anonymous && file === null) return -E.EBADF;
  if (len === 0) return -E.EINVAL;
  // A negative length is a huge size_t: PAGE_ALIGN wraps it to 0 or it exceeds TASK_SIZE.
  if (len < 0) return -E.ENOMEM;
  const fixed = (flags & (Map_.FIXED | Map_.FIXED_NOREPLACE)) !== 0;
  // ksys_mmap_pgoff with MAP_HUGETLB: the length is aligned to the huge page size.
  const hugetlb = (flags & MAP_HUGETLB) !== 0;
  const hlen = hugetlb ? hugetlbMmapCheck(addr, len, flags, fixed, anonymous) : len;
  if (hlen < 0) return hlen;
  const size = pageAlignUp(hlen);
  if (size > TASK_SIZE) return -E.ENOMEM;
  if (fixed) {
    // __get_unmapped_area: addr > TASK_SIZE - len (a negative addr is a huge unsigned one),
    // then offset_in_page(addr), then security_mmap_addr.
    if (addr < 0 || addr > TASK_SIZE - size) return -E.ENOMEM;
    if (addr % PAGE_SIZE !== 0) return -E.EINVAL;
    if (addr < MMAP_MIN_ADDR) return -E.EPERM;
  }
  const type = flags & 0x03;
  if (anonymous) {
    if (type !== Map_.SHARED && type !== Map_.PRIVATE) return -E.EINVAL;
  } else {
    if (type === 0) return -E.EINVAL;
    if (type === Map_.SHARED_VALIDATE && (flags & ~MAP_KNOWN) !== 0) return -E.EOPNOTSUPP;
  }
  const shared = type !== Map_.PRIVATE;
  if (mm.exited) return -E.ENOMEM;

  yield* mm.mmapLock.downWrite();
  let start: number;
  if (fixed) {
    start = addr;
    if (start + size > TASK_SIZE) {
      mm.mmapLock.upWrite();
      return -E.ENOMEM;
    }
    if (!mm.vmas.isFree(start, start + size)) {
      if ((flags & Map_.FIXED_NOREPLACE) !== 0) {
        mm.mmapLock.upWrite();
        return -E.EEXIST;
      }
      yield* unmapRegionLocked(core, mm, start, start + size);
    }
  } else {
    // round_hint_to_min; a negative hint is a huge address no range fits at.
    const aligned = addr < 0 ? 0 : addr - (addr % PAGE_SIZE);
    const hint = aligned !== 0 && aligned < MMAP_MIN_ADDR ? MMAP_MIN_ADDR : aligned;
    start =
      hint !== 0 && hint + size <= TASK_SIZE && mm.vmas.isFree(hint, hint + size)
        ? hint
        : mm.vmas.findFree(size, MMAP_BASE, TASK_SIZE);
    if (start < 0) {
      mm.mmapLock.upWrite();
      return -E.ENOMEM;
    }
  }
  let backing: SimFile | null = anonymous ? null : file;
  let pgoff = offset / PAGE_SIZE;
  if (anonymous && shared) {
    // MAP_SHARED|MAP_ANONYMOUS is shmem: a file nobody else can open.
    backing = core.newFile(`shmem(${mm.name})`, size / PAGE_SIZE);
    pgoff = 0;
  }
  const vma = new Vma(
    mm,
    start,
    start + size,
    vmFlagsFor(prot, shared),
    backing,
    anonymous && !shared ? start / PAGE_SIZE : pgoff,
  );
  core.kernel.mightAlloc(GFP_KERNEL, 'vm_area_alloc');
  if (hugetlb) {
    const e = hugetlbMmapPrepare(core, vma, fixed, (flags & Map_.NORESERVE) !== 0);
    if (e !== 0) {
      mm.mmapLock.upWrite();
      return e;
    }
    start = vma.start;
  }
  insertVma(core, vma);
  if ((flags & Map_.POPULATE) !== 0) {
    const write = (prot & Prot.WRITE) !== 0 && !shared;
    for (let va = start; va < start + size; va += PAGE_SIZE) {
      const r = yield* handleMmFault(core, mm, vma, va, { write });
      if (r === 'oom' || r === 'sigbus') break;
    }
  }
  mm.mmapLock.upWrite();
  return start;
}

/**
 * `brk`: move the program break. Returns the new break, or the unchanged old one when the request
 * is refused (below the heap start, over another mapping, out of the address space), exactly as
 * the syscall does. Shrinking unmaps the released pages.
 *
 * @see SYSCALL_DEFINE1(brk)
 */
export function* doBrk(core: MmCore, mm: MmStruct, newBrk: number): TaskGen<number> {
  yield* mm.mmapLock.downWrite();
  if (mm.brkStart === 0) {
    mm.brkStart = BRK_BASE;
    mm.brk = BRK_BASE;
  }
  const old = mm.brk;
  if (!Number.isInteger(newBrk) || newBrk < mm.brkStart || newBrk > TASK_SIZE) {
    mm.mmapLock.upWrite();
    return old;
  }
  const oldTop = pageAlignUp(old);
  const newTop = pageAlignUp(newBrk);
  if (newTop < oldTop) {
    yield* unmapRegionLocked(core, mm, newTop, oldTop);
  } else if (newTop > oldTop) {
    if (!mm.vmas.isFree(oldTop, newTop)) {
      mm.mmapLock.upWrite();
      return old;
    }
    const heap = oldTop > mm.brkStart ? mm.vmas.find(oldTop - 1) : undefined;
    if (heap !== undefined && heap.anonymous && heap.end === oldTop) {
      updateVma(core, heap, heap.start, newTop, heap.flags, heap.pgoff);
    } else {
      insertVma(
        core,
        new Vma(
          mm,
          oldTop,
          newTop,
          vmFlagsFor(Prot.READ | Prot.WRITE, false),
          null,
          oldTop / PAGE_SIZE,
        ),
      );
    }
  }
  mm.brk = newBrk;
  mm.mmapLock.upWrite();
  return newBrk;
}
