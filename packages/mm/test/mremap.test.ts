import { describe, expect, it } from '@jest/globals';
import { Errno, Simulation } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import {
  Map_,
  mmPlugin,
  MmService,
  PAGE_SIZE,
  PMD_SIZE,
  Prot,
  Pte,
  pteFlags,
  ptePfn,
} from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { Mremap } from '../src/internal/mremap.js';
import { eventList, runOk } from './helpers.js';

// Sources: notifier-core.md §7 row 14 (move_page_tables: UNMAP on the old range, PTEs moved,
// old range flushed inside the window, nothing freed); Linux mm/mremap.c (check_mremap_params,
// mremap_to, move_vma, move_ptes, vma_expandable).

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;
const { MAYMOVE, FIXED } = Mremap;

function setup() {
  const sim = Simulation.create({ seed: 1, plugins: [mmPlugin({ totalFrames: 2048 })] });
  const svc = sim.get(MmService);
  return { sim, svc, core: svc.core, proc: svc.createProcess('app') };
}

function* touch(proc: Process, addr: number, pages: number): TaskGen<void> {
  for (let i = 0; i < pages; i++) expect(yield* proc.store(addr + i * PAGE_SIZE, 10 + i)).toBe(0);
}

describe('mremap (notifier-core.md §7 row 14)', () => {
  it('a move keeps the data (same frames) and the old range faults afterwards', () => {
    const { sim, core, proc } = setup();
    let from = 0;
    let a = 0;
    let n = 0;
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      // A neighbour right after it: no growing in place.
      const blocker = yield* proc.mmap(a + 4 * PAGE_SIZE, PAGE_SIZE, RW, ANON | Map_.FIXED);
      expect(blocker).toBe(a + 4 * PAGE_SIZE);
      yield* touch(proc, a, 4);
      const pfns = [0, 1, 2, 3].map((i) => ptePfn(core.pt.pte(proc.mm, a + i * PAGE_SIZE)));
      from = sim.log!.length;
      n = yield* proc.mremap(a, 4 * PAGE_SIZE, 8 * PAGE_SIZE, MAYMOVE);
      expect(n).toBeGreaterThan(0);
      expect(n).not.toBe(a);
      for (let i = 0; i < 4; i++) {
        expect(yield* proc.load(n + i * PAGE_SIZE)).toBe(10 + i);
        expect(ptePfn(core.pt.pte(proc.mm, n + i * PAGE_SIZE))).toBe(pfns[i]);
        expect(core.phys.mapcount[pfns[i]!]).toBe(1);
      }
      // The grown part is ordinary anonymous memory.
      expect(yield* proc.load(n + 6 * PAGE_SIZE)).toBe(0);
      expect(yield* proc.load(a)).toBe(-Errno.EFAULT);
      expect(proc.siginfo).toEqual({ signal: 'SIGSEGV', code: 'SEGV_MAPERR', addr: a });
      // The moved anonymous page is still writable in place (exclusive, same rmap index).
      expect(pteFlags(core.pt.pte(proc.mm, n)) & Pte.WRITE).toBe(Pte.WRITE);
      const v = proc.mm.vmas.find(n)!;
      expect(core.phys.index[pfns[1]!]).toBe(v.pageIndex(n + PAGE_SIZE));
    });
    runOk(sim);
    const evs = eventList(sim, from).filter((e) =>
      ['mmn.invalidate_start', 'mmn.invalidate_end', 'mm.pte.set', 'mm.tlb.flush'].includes(e.type),
    );
    // The first window covers the old range; every move and the old range's flush are inside.
    expect(evs[0]!.d).toMatchObject({ event: 'UNMAP', start: a, end: a + 4 * PAGE_SIZE });
    const end = evs.findIndex((e) => e.type === 'mmn.invalidate_end');
    expect(evs[end]!.d.range).toBe(evs[0]!.d.range);
    const inside = evs.slice(1, end);
    expect(inside.filter((e) => e.type === 'mm.pte.set').length).toBe(8);
    expect(inside.at(-1)!.type).toBe('mm.tlb.flush');
    expect(inside.at(-1)!.d).toMatchObject({ start: a, end: a + 4 * PAGE_SIZE });
    // Then the old range is unmapped like munmap (an empty window) — nothing else to move.
    expect(evs[end + 1]!.d).toMatchObject({ event: 'UNMAP', start: a, end: a + 4 * PAGE_SIZE });
  });

  it('MREMAP_FIXED moves across a page-table boundary, replacing what was at the target', () => {
    const { sim, svc, proc } = setup();
    const file = svc.newFile('f', 8, new Map([[5, [0, 55]]]));
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, Map_.SHARED, file, 4 * PAGE_SIZE);
      yield* touch(proc, a, 1);
      expect(yield* proc.load(a + PAGE_SIZE)).toBe(55);
      const target = 64 * PMD_SIZE - 2 * PAGE_SIZE; // straddles two PTE tables
      const t = yield* proc.mmap(target, 4 * PAGE_SIZE, RW, ANON | Map_.FIXED);
      expect(t).toBe(target);
      expect(yield* proc.mremap(a, 4 * PAGE_SIZE, 4 * PAGE_SIZE, MAYMOVE | FIXED, target)).toBe(
        target,
      );
      expect(yield* proc.load(target)).toBe(10);
      expect(yield* proc.load(target + PAGE_SIZE)).toBe(55);
      expect(yield* proc.load(target + 3 * PAGE_SIZE)).toBe(0); // file page 7, read on demand
      expect(proc.mm.vmas.find(target)!.file).toBe(file);
      expect(proc.mm.vmas.find(target + 2 * PAGE_SIZE)!.pgoff).toBe(4);
    });
    runOk(sim);
  });

  it('shrinking unmaps the tail and frees its pages', () => {
    const { sim, core, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 4);
      const tail = ptePfn(core.pt.pte(proc.mm, a + 3 * PAGE_SIZE));
      expect(yield* proc.mremap(a, 4 * PAGE_SIZE, 2 * PAGE_SIZE, 0)).toBe(a);
      expect(core.phys.isFree(tail)).toBe(true);
      expect(yield* proc.load(a + PAGE_SIZE)).toBe(11);
      expect(yield* proc.load(a + 2 * PAGE_SIZE)).toBe(-Errno.EFAULT);
    });
    runOk(sim);
  });

  it('grows in place when the space after is free', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 2);
      expect(yield* proc.mremap(a, 2 * PAGE_SIZE, 5 * PAGE_SIZE, 0)).toBe(a);
      expect(proc.mm.vmas.find(a)!.end).toBe(a + 5 * PAGE_SIZE);
      expect(yield* proc.load(a + PAGE_SIZE)).toBe(11);
      expect(yield* proc.store(a + 4 * PAGE_SIZE, 3)).toBe(0);
    });
    runOk(sim);
  });

  it('no memory for a destination page table: the entries move back and the call fails', () => {
    const { sim, core, proc } = setup();
    core.reclaimer = null;
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 2);
      const pfn = ptePfn(core.pt.pte(proc.mm, a));
      // Leave two free frames: the far target needs three new tables (PUD, PMD, PTE).
      const hog: number[] = [];
      while (core.phys.freeFrames > 2) hog.push(core.phys.alloc('kernel'));
      const far = 2 ** 46;
      expect(yield* proc.mremap(a, 2 * PAGE_SIZE, 2 * PAGE_SIZE, MAYMOVE | FIXED, far)).toBe(
        -Errno.ENOMEM,
      );
      expect(ptePfn(core.pt.pte(proc.mm, a))).toBe(pfn);
      expect(proc.mm.vmas.find(far)).toBeUndefined();
      expect(core.phys.freeFrames).toBe(2);
      for (const h of hog) core.phys.put(h);
      expect(yield* proc.load(a + PAGE_SIZE)).toBe(11);
    });
    runOk(sim);
  });

  it('-EINVAL for an unaligned old address', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      expect(yield* proc.mremap(a + 8, PAGE_SIZE, PAGE_SIZE, MAYMOVE)).toBe(-Errno.EINVAL);
    });
    runOk(sim);
  });

  it('-EINVAL for a zero new length', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      expect(yield* proc.mremap(a, PAGE_SIZE, 0, MAYMOVE)).toBe(-Errno.EINVAL);
    });
    runOk(sim);
  });

  it('-EINVAL for unknown flags, and for MREMAP_DONTUNMAP without MAYMOVE or with different lengths (check_mremap_params)', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      expect(yield* proc.mremap(a, PAGE_SIZE, PAGE_SIZE, 0x10)).toBe(-Errno.EINVAL);
      expect(yield* proc.mremap(a, PAGE_SIZE, PAGE_SIZE, Mremap.DONTUNMAP)).toBe(-Errno.EINVAL);
      expect(yield* proc.mremap(a, PAGE_SIZE, 2 * PAGE_SIZE, MAYMOVE | Mremap.DONTUNMAP)).toBe(
        -Errno.EINVAL,
      );
    });
    runOk(sim);
  });

  it('-EINVAL for MREMAP_FIXED without MREMAP_MAYMOVE', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      expect(yield* proc.mremap(a, PAGE_SIZE, PAGE_SIZE, FIXED, a + 16 * PAGE_SIZE)).toBe(
        -Errno.EINVAL,
      );
    });
    runOk(sim);
  });

  it('-EFAULT when the old range is not inside one VMA', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      expect(yield* proc.mremap(a, 3 * PAGE_SIZE, 3 * PAGE_SIZE, MAYMOVE)).toBe(-Errno.EFAULT);
      expect(yield* proc.mremap(a + 8 * PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, MAYMOVE)).toBe(
        -Errno.EFAULT,
      );
    });
    runOk(sim);
  });

  it('-ENOMEM when it cannot grow in place and may not move', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* proc.mmap(a + 2 * PAGE_SIZE, PAGE_SIZE, RW, ANON | Map_.FIXED);
      expect(yield* proc.mremap(a, 2 * PAGE_SIZE, 3 * PAGE_SIZE, 0)).toBe(-Errno.ENOMEM);
      expect(proc.mm.vmas.find(a)!.end).toBe(a + 2 * PAGE_SIZE);
    });
    runOk(sim);
  });
});
