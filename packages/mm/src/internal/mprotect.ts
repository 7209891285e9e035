import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE, pageAlignUp, PGDIR_SIZE, PTRS_PER_TABLE, PUD_SIZE } from './constants.js';
import type { MmCore } from './core.js';
import { MmuGather } from './gather.js';
import type { MmStruct } from './mm.js';
import { Prot, splitVma, updateVma } from './mmap.js';
import { NotifierRange } from './notifier.js';
import { Frame, PhysMem } from './physmem.js';
import { Pte, PTE_NONE, ptePfn } from './pte.js';
import { hugetlbSplitCheck } from './huge/hugetlb.js';
import { changeHugeRange } from './huge/thp.js';
import { findVma, pteSpans } from './unmap.js';
import type { PteSpan } from './unmap.js';
import { Vm, VM_ACCESS_FLAGS } from './vma.js';
import type { Vma } from './vma.js';

/** `PROT_GROWSDOWN`: apply to the whole stack VMA below `addr`. */
const PROT_GROWSDOWN = 0x01000000;
/** `PROT_GROWSUP`: x86 has no grows-up VMAs, so it is always -EINVAL here. */
const PROT_GROWSUP = 0x02000000;
/** `PROT_SEM`: accepted, no effect. */
const PROT_SEM = 0x8;

/** `calc_vm_prot_bits`: the access bits of a VMA for `prot`. */
function calcVmProtBits(prot: number): number {
  return (
    ((prot & Prot.READ) !== 0 ? Vm.READ : 0) |
    ((prot & Prot.WRITE) !== 0 ? Vm.WRITE : 0) |
    ((prot & Prot.EXEC) !== 0 ? Vm.EXEC : 0)
  );
}

/**
 * `mprotect(addr, len, prot)`. Returns 0, or:
 * - -EINVAL: `addr` not page aligned; a `prot` bit other than READ/WRITE/EXEC/SEM/GROWSDOWN/
 *   GROWSUP (checked after `len` 0, which returns 0 at once, as in Linux); both GROWS bits;
 *   GROWSDOWN on a VMA that does not grow down; GROWSUP (no such VMAs on x86);
 * - -ENOMEM: the range is not fully mapped (a hole, or it runs past the last VMA). As in Linux
 *   the VMAs before the hole have already been changed;
 * - -EACCES: the new protection needs a permission the VMA may not get (adding PROT_WRITE to a
 *   shared mapping without VM_MAYWRITE). Earlier VMAs stay changed.
 *
 * Takes `mmap_lock` for write. Per VMA (`mprotect_fixup`): nothing if the flags do not change;
 * else split at the range's edges, set the flags, and `change_protection` (notifier-core.md §7
 * row 6): per 512 GiB chunk a PROTECTION_VMA window starts lazily at the first populated PUD
 * entry, `[that address, min(chunk end, VMA range end))`, and ends after the chunk's PTE changes
 * (made under each PTL); the TLB flush comes after end (`tlb_end_vma`, then `tlb_finish_mmu`
 * of the call's one gather).
 *
 * PTEs: write permission is always removed, and added back only where the kernel would
 * (`can_change_pte_writable`): a shared mapping's dirty PTEs, a private mapping's exclusive
 * anonymous pages (mapped once, refcount 1). Others stay read-only so a write faults (COW, or
 * the shared-write dirtying). PROT_NONE makes present entries {@link Pte.PROTNONE}: not usable
 * by the CPU, still holding their page.
 *
 * @see do_mprotect_pkey
 * @see change_protection
 */
export function* doMprotect(
  core: MmCore,
  mm: MmStruct,
  addr: number,
  len: number,
  prot: number,
): TaskGen<number> {
  const E = Errno;
  if (!Number.isInteger(prot)) return -E.EINVAL;
  const grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
  const p = prot & ~(PROT_GROWSDOWN | PROT_GROWSUP);
  if (grows === (PROT_GROWSDOWN | PROT_GROWSUP)) return -E.EINVAL;
  if (!Number.isInteger(addr) || addr < 0 || addr % PAGE_SIZE !== 0) return -E.EINVAL;
  if (len === 0) return 0;
  if (!Number.isInteger(len)) return -E.EINVAL;
  // size_t arithmetic: a negative length wraps, and so does an end past 2^64.
  if (len < 0) return -E.ENOMEM;
  const end = addr + pageAlignUp(len);
  if (end > 2 ** 64) return -E.ENOMEM;
  if ((p & ~(Prot.READ | Prot.WRITE | Prot.EXEC | PROT_SEM)) !== 0) return -E.EINVAL;
  yield* mm.mmapLock.downWrite();
  const split = hugetlbSplitCheck(mm, addr, end);
  const r = split !== 0 ? split : yield* mprotectLocked(core, mm, addr, end, p, grows);
  mm.mmapLock.upWrite();
  return r;
}

/** The VMA loop of `do_mprotect_pkey`, `mmap_lock` held for write. */
function* mprotectLocked(
  core: MmCore,
  mm: MmStruct,
  start: number,
  end: number,
  prot: number,
  grows: number,
): TaskGen<number> {
  const E = Errno;
  const first = findVma(mm, start);
  if (first === undefined || first.start >= end) return -E.ENOMEM;
  let nstart = start;
  if ((grows & PROT_GROWSDOWN) !== 0) {
    nstart = first.start;
    if ((first.flags & Vm.GROWSDOWN) === 0) return -E.EINVAL;
  } else {
    if (first.start > start) return -E.ENOMEM;
    if ((grows & PROT_GROWSUP) !== 0) return -E.EINVAL;
  }
  const tlb = new MmuGather(core, mm);
  let tmp = first.start;
  let error = 0;
  let vma: Vma | undefined = first;
  while (vma !== undefined && vma.start < end) {
    if (vma.start !== tmp) {
      error = -E.ENOMEM;
      break;
    }
    const newflags = calcVmProtBits(prot) | (vma.flags & ~VM_ACCESS_FLAGS);
    // The VM_MAY* bits sit 4 above the access bits: every access asked for must be allowed.
    if ((newflags & ~(newflags >> 4) & VM_ACCESS_FLAGS) !== 0) {
      error = -E.EACCES;
      break;
    }
    tmp = Math.min(vma.end, end);
    yield* mprotectFixup(core, tlb, vma, nstart, tmp, newflags);
    nstart = tmp;
    vma = findVma(mm, tmp);
  }
  yield* tlb.finish();
  if (error === 0 && tmp < end) error = -E.ENOMEM;
  return error;
}

/** `mprotect_fixup`: split, set the flags, change the PTEs. */
function* mprotectFixup(
  core: MmCore,
  tlb: MmuGather,
  vma: Vma,
  start: number,
  end: number,
  newflags: number,
): TaskGen<void> {
  if (newflags === vma.flags) return;
  let v = vma;
  if (start > v.start) v = splitVma(core, v, start);
  if (end < v.end) splitVma(core, v, end);
  updateVma(core, v, v.start, v.end, newflags, v.pgoff);
  yield* changeProtection(core, tlb, v, start, end);
}

/**
 * `change_protection_range`: the PTEs of `vma` in `[start, end)` get the VMA's (new)
 * protection. One lazily started PROTECTION_VMA window per populated 512 GiB chunk; then
 * `tlb_end_vma` flushes the recorded range (after the windows have ended).
 *
 * Context: `mmap_lock` held for write; may sleep.
 *
 * @see change_protection_range
 */
export function* changeProtection(
  core: MmCore,
  tlb: MmuGather,
  vma: Vma,
  start: number,
  end: number,
): TaskGen<void> {
  const pgd = core.phys.tables[vma.mm.pgd];
  let addr = start;
  while (pgd !== undefined && addr < end) {
    const next = Math.min(addr - (addr % PGDIR_SIZE) + PGDIR_SIZE, end);
    const e = pgd[Math.floor(addr / PGDIR_SIZE) % PTRS_PER_TABLE]!;
    if (e !== PTE_NONE) yield* changePudRange(core, tlb, vma, ptePfn(e), addr, next);
    addr = next;
  }
  if (!tlb.fullmm) yield* tlb.flushTlbOnly();
}

/** `change_pud_range`: the window starts at the first populated PUD entry of the chunk. */
function* changePudRange(
  core: MmCore,
  tlb: MmuGather,
  vma: Vma,
  pudPfn: number,
  start: number,
  end: number,
): TaskGen<void> {
  const pud = core.phys.tables[pudPfn];
  if (pud === undefined) return;
  const mm = vma.mm;
  const sched = core.kernel.scheduler;
  let range: NotifierRange | null = null;
  let addr = start;
  while (addr < end) {
    const next = Math.min(addr - (addr % PUD_SIZE) + PUD_SIZE, end);
    if (pud[Math.floor(addr / PUD_SIZE) % PTRS_PER_TABLE] !== PTE_NONE) {
      if (range === null) {
        range = new NotifierRange('PROTECTION_VMA', mm, addr, end);
        yield* core.notifiers.invalidateRangeStart(range);
      }
      // change_pmd_range: huge leaves first (changed whole or split), then each PTE table
      // under its lock, cond_resched between tables.
      yield* changeHugeRange(core, tlb, vma, addr, next);
      for (const span of pteSpans(core, mm, addr, next)) {
        const ptl = mm.ptl(span.tablePfn);
        yield* ptl.lock();
        changePteEntries(core, tlb, vma, span);
        ptl.unlock();
        yield* sched.preempt();
      }
    }
    addr = next;
  }
  if (range !== null) yield* core.notifiers.invalidateRangeEnd(range);
}

/** x86 `pte_needs_flush`: removing present/dirty, or changing write/user, needs a flush. */
function pteNeedsFlush(oldFlags: number, newFlags: number): boolean {
  if ((oldFlags & Pte.PRESENT) === 0) return false;
  const diff = (oldFlags ^ newFlags) & ~Pte.ACCESSED;
  if ((diff & oldFlags & (Pte.DIRTY | Pte.PRESENT)) !== 0) return true;
  return (diff & (Pte.WRITE | Pte.USER)) !== 0;
}

/** `change_pte_range`'s leaf loop with the PTL held. */
function changePteEntries(core: MmCore, tlb: MmuGather, vma: Vma, span: PteSpan): void {
  const phys = core.phys;
  const bus = core.kernel.bus;
  const log = bus.wants('mm.pte.set');
  const mmId = vma.mm.id;
  const vf = vma.flags;
  const accessible = (vf & VM_ACCESS_FLAGS) !== 0;
  const wantWrite = (vf & Vm.WRITE) !== 0;
  const shared = (vf & Vm.SHARED) !== 0;
  const { table, base } = span;
  for (let i = span.from; i < span.to; i++) {
    const pte = table[i]!;
    if (pte === PTE_NONE) continue;
    const f = pte % PAGE_SIZE;
    const n = (pte - f) / PAGE_SIZE;
    let nf: number;
    if ((f & (Pte.PRESENT | Pte.PROTNONE)) !== 0) {
      if (!accessible) nf = (f & ~(Pte.PRESENT | Pte.WRITE)) | Pte.PROTNONE;
      else {
        nf = (f & ~(Pte.PROTNONE | Pte.WRITE)) | Pte.PRESENT;
        if (wantWrite && canChangeWritable(phys, shared, nf, n)) nf |= Pte.WRITE;
      }
    } else if ((f & Pte.MIGRATION) !== 0) {
      // A writable migration entry is made readable: too hard to check, so be safe.
      nf = f & ~Pte.WRITE;
    } else continue;
    if (nf === f) continue;
    const next = pte - f + nf;
    table[i] = next;
    const va = base + i * PAGE_SIZE;
    if (log) bus.emit('mm.pte.set', { mm: mmId, va, pte: next, old: pte });
    if (pteNeedsFlush(f, nf)) tlb.removeTlbEntry(va);
  }
}

/**
 * `can_change_pte_writable`: a shared mapping's PTE only if already dirty (write-notify keeps
 * clean shared pages read-only so the first write dirties the page); a private one only for an
 * exclusive anonymous page (the model's test: mapped once, refcount 1 — as the fault path's
 * reuse), never for the zero page or a page-cache page.
 */
function canChangeWritable(phys: PhysMem, shared: boolean, flags: number, pfn: number): boolean {
  if ((flags & Pte.SPECIAL) !== 0 || pfn === PhysMem.ZERO_PFN) return false;
  if (shared) return (flags & Pte.DIRTY) !== 0;
  return (
    (phys.flags[pfn]! & Frame.ANON) !== 0 && phys.mapcount[pfn] === 1 && phys.refcount[pfn] === 1
  );
}
