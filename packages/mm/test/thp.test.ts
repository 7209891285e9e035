// Transparent huge pages (mm/huge_memory.c, mm/khugepaged.c of Linux 6.17): the PMD-leaf fault,
// the huge zero page, the fallback to 4 KiB pages, the split on partial munmap / mprotect /
// mremap / madvise, zap of whole leaves, MADV_FREE, MADV_COLLAPSE, fork, hmm_range_fault's map
// order — each with the notifier ranges and TLB flushes the kernel issues.
import { describe, expect, it } from '@jest/globals';
import { fold, Simulation } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import {
  Frame,
  HPAGE_PMD_NR,
  hugeLeafAt,
  MADV_COLLAPSE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  Map_,
  mmPlugin,
  MmService,
  PAGE_SIZE,
  PMD_SIZE,
  Pmd,
  Prot,
  Pte,
  pteFlags,
  ptePfn,
} from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { getUserPages, putPage } from '../src/internal/gup.js';
import {
  HmmPfn,
  hmmPfnHas,
  hmmPfnToMapOrder,
  hmmPfnToPfn,
  hmmRangeFault,
} from '../src/internal/hmm.js';
import { liveView, mmProjection } from '../src/internal/projection.js';
import { Madv, mmgetNotZero, mmput } from '../src/internal/unmap.js';
import { ofType } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;
const BASE = 0x40000000; // 2 MiB aligned

function thpSim(totalFrames = 4096, thp: 'madvise' | 'always' | 'never' = 'madvise') {
  const sim = Simulation.create({
    seed: 1,
    cpus: 1,
    log: true,
    plugins: [mmPlugin({ totalFrames, thp })],
  });
  const svc = sim.get(MmService);
  return { sim, svc, proc: svc.createProcess('app') };
}

/** mmap `blocks` × 2 MiB at BASE with MADV_HUGEPAGE. */
function* hugeRegion(proc: Process, blocks = 1): TaskGen<void> {
  const len = blocks * PMD_SIZE;
  const a = yield* proc.mmap(BASE, len, RW, ANON | Map_.FIXED);
  if (a !== BASE) throw new Error(`mmap: ${a}`);
  const r = yield* proc.madvise(BASE, len, MADV_HUGEPAGE);
  if (r !== 0) throw new Error(`madvise: ${r}`);
}

function run(sim: Simulation, body: () => TaskGen<void>): void {
  sim.spawn('app', 0, body);
  const r = sim.run();
  expect(r.violations).toEqual([]);
  expect(r.reason).toBe('done');
}

function expectProjectionMatches(sim: Simulation, svc: MmService): void {
  expect(fold(mmProjection(), sim.log!.events)).toEqual(liveView(svc.core));
}

describe('THP fault (mm/huge_memory.c: do_huge_pmd_anonymous_page)', () => {
  it('a write fault in a MADV_HUGEPAGE 2 MiB block maps one PMD leaf of a 512-page folio, no PTE table', () => {
    const { sim, svc, proc } = thpSim();
    let pmd = 0;
    let back = 0;
    run(sim, function* () {
      yield* hugeRegion(proc);
      yield* proc.store(BASE + 5 * PAGE_SIZE, 77);
      back = yield* proc.load(BASE + 5 * PAGE_SIZE);
      pmd = hugeLeafAt(svc.core, proc.mm, BASE);
    });
    expect(back).toBe(77);
    expect(pteFlags(pmd) & (Pmd.PSE | Pte.PRESENT | Pte.WRITE)).toBe(
      Pmd.PSE | Pte.PRESENT | Pte.WRITE,
    );
    const head = ptePfn(pmd);
    expect(head % HPAGE_PMD_NR).toBe(0);
    expect(svc.core.phys.read(head + 5, 0)).toBe(77);
    expect(ofType(sim, 'mm.thp').map((e) => e.data.op)).toEqual(['fault']);
    expect(svc.core.pt.pte(proc.mm, BASE)).toBe(0); // no PTE table under the leaf
    const view = liveView(svc.core).mms.get(proc.mm.id)!;
    expect([...view.pmds.keys()]).toEqual([BASE]);
    expectProjectionMatches(sim, svc);
  });

  it('without MADV_HUGEPAGE (mode madvise) the same fault maps a 4 KiB PTE; mode always maps a leaf', () => {
    for (const mode of ['madvise', 'always'] as const) {
      const { sim, svc, proc } = thpSim(4096, mode);
      run(sim, function* () {
        yield* proc.mmap(BASE, PMD_SIZE, RW, ANON | Map_.FIXED);
        yield* proc.store(BASE, 1);
      });
      expect(hugeLeafAt(svc.core, proc.mm, BASE) !== 0).toBe(mode === 'always');
    }
  });

  it('a read fault maps the huge zero page read-only; the first write splits it and COWs one 4 KiB page (do_huge_pmd_wp_page)', () => {
    const { sim, svc, proc } = thpSim();
    let zeroLeaf = 0;
    let v0 = -1;
    run(sim, function* () {
      yield* hugeRegion(proc);
      v0 = yield* proc.load(BASE + 3 * PAGE_SIZE);
      zeroLeaf = hugeLeafAt(svc.core, proc.mm, BASE);
      yield* proc.store(BASE + 3 * PAGE_SIZE, 9);
    });
    expect(v0).toBe(0);
    expect(pteFlags(zeroLeaf) & Pte.WRITE).toBe(0);
    const zero = ptePfn(zeroLeaf);
    expect(svc.core.phys.flags[zero]! & Frame.ZERO).toBe(Frame.ZERO);
    expect(ofType(sim, 'mm.thp').map((e) => e.data.op)).toEqual(['zero', 'split']);
    // __split_huge_pmd: one CLEAR window over the leaf's 2 MiB.
    const starts = ofType(sim, 'mmn.invalidate_start').map((e) => e.data);
    expect(
      starts.some((d) => d.event === 'CLEAR' && d.start === BASE && d.end === BASE + PMD_SIZE),
    ).toBe(true);
    expect(hugeLeafAt(svc.core, proc.mm, BASE)).toBe(0);
    const pte = svc.core.pt.pte(proc.mm, BASE + 3 * PAGE_SIZE);
    expect(svc.core.phys.read(ptePfn(pte), 0)).toBe(9);
    expect(ptePfn(svc.core.pt.pte(proc.mm, BASE))).toBe(0); // the other pages: the zero page
    expectProjectionMatches(sim, svc);
  });

  it('with no free aligned 2 MiB run the fault falls back to 4 KiB pages (THP_FAULT_FALLBACK)', () => {
    // 1024 frames: block 0 holds the zero page, block 1 is the only huge frame.
    const { sim, svc, proc } = thpSim(1024);
    run(sim, function* () {
      yield* hugeRegion(proc, 2);
      yield* proc.store(BASE, 1);
      yield* proc.store(BASE + PMD_SIZE, 2);
      expect(yield* proc.load(BASE + PMD_SIZE)).toBe(2);
    });
    expect(ofType(sim, 'mm.thp').map((e) => e.data.op)).toEqual(['fault', 'fallback']);
    expect(hugeLeafAt(svc.core, proc.mm, BASE)).not.toBe(0);
    expect(hugeLeafAt(svc.core, proc.mm, BASE + PMD_SIZE)).toBe(0);
    expect(pteFlags(svc.core.pt.pte(proc.mm, BASE + PMD_SIZE)) & Pte.PRESENT).toBe(Pte.PRESENT);
    expectProjectionMatches(sim, svc);
  });
});

describe('MADV_HUGEPAGE / MADV_NOHUGEPAGE (mm/khugepaged.c: hugepage_madvise)', () => {
  it('an address that is not page aligned is -EINVAL; a page-aligned range that is not 2 MiB aligned is accepted and only whole aligned blocks get leaves', () => {
    const { sim, svc, proc } = thpSim();
    const rs: number[] = [];
    run(sim, function* () {
      yield* proc.mmap(BASE, 2 * PMD_SIZE, RW, ANON | Map_.FIXED);
      rs.push(yield* proc.madvise(BASE + 100, PMD_SIZE, MADV_HUGEPAGE));
      rs.push(yield* proc.madvise(BASE + PAGE_SIZE, 2 * PMD_SIZE - PAGE_SIZE, MADV_HUGEPAGE));
      yield* proc.store(BASE + PAGE_SIZE, 1); // block 0: the VMA covers only part of it
      yield* proc.store(BASE + PMD_SIZE, 2); // block 1: whole
      rs.push(yield* proc.madvise(BASE, 4 * PMD_SIZE, MADV_NOHUGEPAGE)); // partly unmapped
    });
    expect(rs).toEqual([-22, 0, -12]);
    expect(hugeLeafAt(svc.core, proc.mm, BASE)).toBe(0);
    expect(hugeLeafAt(svc.core, proc.mm, BASE + PMD_SIZE)).not.toBe(0);
    const starts = proc.mm.vmas.all.map((v) => v.start - BASE);
    expect(starts).toEqual([0, PAGE_SIZE]);
  });
});

describe('zap and split of leaves (mm/huge_memory.c: zap_huge_pmd, __split_huge_pmd)', () => {
  it('munmap of the whole block zaps the leaf: the 2 MiB is flushed before the folio is freed, whole', () => {
    const { sim, svc, proc } = thpSim();
    let head = -1;
    run(sim, function* () {
      yield* hugeRegion(proc);
      yield* proc.store(BASE, 1);
      head = ptePfn(hugeLeafAt(svc.core, proc.mm, BASE));
      yield* proc.munmap(BASE, PMD_SIZE);
    });
    const events = sim.log!.events;
    const flush = events.findIndex(
      (e) =>
        e.type === 'mm.tlb.flush' &&
        (e.data as { start: number }).start <= BASE &&
        (e.data as { end: number }).end >= BASE + PMD_SIZE,
    );
    const freed = events.findIndex(
      (e) => e.type === 'mm.frame.free' && (e.data as { pfn: number }).pfn === head,
    );
    expect(flush).toBeGreaterThan(-1);
    expect(freed).toBeGreaterThan(flush);
    for (let i = 0; i < HPAGE_PMD_NR; i++) expect(svc.core.phys.isFree(head + i)).toBe(true);
    expect(ofType(sim, 'mm.thp').map((e) => e.data.op)).toEqual(['fault', 'zap']);
    expectProjectionMatches(sim, svc);
  });

  it('a partial munmap splits the leaf inside the UNMAP window (nested CLEAR over the 2 MiB), keeps the rest, frees the folio with its last page', () => {
    const { sim, svc, proc } = thpSim();
    let head = -1;
    let kept = 0;
    run(sim, function* () {
      yield* hugeRegion(proc);
      yield* proc.store(BASE + 10 * PAGE_SIZE, 10);
      yield* proc.store(BASE + 300 * PAGE_SIZE, 300);
      head = ptePfn(hugeLeafAt(svc.core, proc.mm, BASE));
      yield* proc.munmap(BASE, 256 * PAGE_SIZE);
      kept = yield* proc.load(BASE + 300 * PAGE_SIZE);
      expect(svc.core.phys.isFree(head)).toBe(false); // pages 256.. still map the folio
      yield* proc.munmap(BASE + 256 * PAGE_SIZE, 256 * PAGE_SIZE);
    });
    expect(kept).toBe(300);
    const windows = ofType(sim, 'mmn.invalidate_start').map(
      (e) => `${e.data.event} ${e.data.start - BASE} ${e.data.end - BASE}`,
    );
    expect(windows.slice(0, 2)).toEqual([`UNMAP 0 ${256 * PAGE_SIZE}`, `CLEAR 0 ${PMD_SIZE}`]);
    expect(svc.core.phys.isFree(head)).toBe(true);
    expectProjectionMatches(sim, svc);
  });

  it('mprotect of a whole leaf changes it in place (change_huge_pmd); of part of it, splits first', () => {
    const { sim, svc, proc } = thpSim();
    const sig: number[] = [];
    let signal = '';
    run(sim, function* () {
      yield* hugeRegion(proc, 2);
      yield* proc.store(BASE, 1);
      yield* proc.store(BASE + PMD_SIZE, 2);
      expect(yield* proc.mprotect(BASE, PMD_SIZE, Prot.READ)).toBe(0);
      expect(pteFlags(hugeLeafAt(svc.core, proc.mm, BASE)) & Pte.WRITE).toBe(0);
      sig.push(yield* proc.store(BASE, 5));
      signal = proc.siginfo?.signal ?? '';
      expect(yield* proc.mprotect(BASE + PMD_SIZE, PAGE_SIZE, Prot.READ)).toBe(0);
      sig.push(yield* proc.store(BASE + PMD_SIZE + PAGE_SIZE, 6));
    });
    expect(sig).toEqual([-14, 0]);
    expect(signal).toBe('SIGSEGV');
    expect(hugeLeafAt(svc.core, proc.mm, BASE)).not.toBe(0);
    expect(hugeLeafAt(svc.core, proc.mm, BASE + PMD_SIZE)).toBe(0);
    expectProjectionMatches(sim, svc);
  });

  it('mremap moves a huge block after splitting it (move_page_tables); the data follows', () => {
    const { sim, svc, proc } = thpSim();
    let moved = 0;
    let got = 0;
    run(sim, function* () {
      yield* hugeRegion(proc);
      yield* proc.mmap(BASE + PMD_SIZE, PAGE_SIZE, RW, ANON | Map_.FIXED); // no room to grow
      yield* proc.store(BASE + 7 * PAGE_SIZE, 70);
      moved = yield* proc.mremap(BASE, PMD_SIZE, 2 * PMD_SIZE, 1);
      got = yield* proc.load(moved + 7 * PAGE_SIZE);
    });
    expect(moved).not.toBe(BASE);
    expect(got).toBe(70);
    expect(ofType(sim, 'mm.thp').map((e) => e.data.op)).toContain('split');
    expectProjectionMatches(sim, svc);
  });

  it('MADV_DONTNEED of part of a leaf splits it and zaps the part; the rest keeps its data', () => {
    const { sim, svc, proc } = thpSim();
    const got: number[] = [];
    run(sim, function* () {
      yield* hugeRegion(proc);
      yield* proc.store(BASE, 1);
      yield* proc.store(BASE + 100 * PAGE_SIZE, 100);
      yield* proc.madvise(BASE, PAGE_SIZE, Madv.DONTNEED);
      got.push(yield* proc.load(BASE), yield* proc.load(BASE + 100 * PAGE_SIZE));
    });
    expect(got).toEqual([0, 100]);
    expectProjectionMatches(sim, svc);
  });

  it('MADV_FREE of a whole exclusive leaf cleans it and marks the folio lazily freeable (madvise_free_huge_pmd)', () => {
    const { sim, svc, proc } = thpSim();
    let pmd = 0;
    run(sim, function* () {
      yield* hugeRegion(proc);
      yield* proc.store(BASE, 1);
      expect(yield* proc.madvise(BASE, PMD_SIZE, Madv.FREE)).toBe(0);
      pmd = hugeLeafAt(svc.core, proc.mm, BASE);
    });
    expect(pteFlags(pmd) & (Pte.DIRTY | Pte.ACCESSED)).toBe(0);
    expect(svc.core.phys.flags[ptePfn(pmd)]! & Frame.LAZYFREE).toBe(Frame.LAZYFREE);
    const flushes = ofType(sim, 'mm.tlb.flush').map((e) => e.data);
    expect(flushes.some((f) => f.start <= BASE && f.end >= BASE + PMD_SIZE)).toBe(true);
  });

  it('fork splits the parent leaf and the child sees the data; the parent COW breaks per page', () => {
    const { sim, svc, proc } = thpSim();
    const got: number[] = [];
    run(sim, function* () {
      yield* hugeRegion(proc);
      yield* proc.store(BASE + 2 * PAGE_SIZE, 22);
      const child = yield* proc.fork('child');
      if (typeof child === 'number') throw new Error(`fork ${child}`);
      yield* proc.store(BASE + 2 * PAGE_SIZE, 33);
      got.push(yield* child.load(BASE + 2 * PAGE_SIZE));
      got.push(yield* proc.load(BASE + 2 * PAGE_SIZE));
      yield* child.exit();
    });
    expect(got).toEqual([22, 33]);
    expectProjectionMatches(sim, svc);
  });
});

describe('MADV_COLLAPSE (mm/khugepaged.c: madvise_collapse, collapse_huge_page)', () => {
  it('collapses 512 PTEs into one leaf with the data, inside a CLEAR window over the block; the old pages are freed', () => {
    const { sim, svc, proc } = thpSim();
    let r = 1;
    const got: number[] = [];
    let old = -1;
    run(sim, function* () {
      yield* proc.mmap(BASE, PMD_SIZE, RW, ANON | Map_.FIXED);
      for (let i = 0; i < 8; i++) yield* proc.store(BASE + i * 64 * PAGE_SIZE, 1000 + i);
      old = ptePfn(svc.core.pt.pte(proc.mm, BASE));
      r = yield* proc.madvise(BASE, PMD_SIZE, MADV_COLLAPSE);
      for (let i = 0; i < 8; i++) got.push(yield* proc.load(BASE + i * 64 * PAGE_SIZE));
    });
    expect(r).toBe(0);
    expect(got).toEqual([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007]);
    expect(hugeLeafAt(svc.core, proc.mm, BASE)).not.toBe(0);
    expect(svc.core.phys.isFree(old)).toBe(true);
    const starts = ofType(sim, 'mmn.invalidate_start').map((e) => e.data);
    expect(
      starts.some((d) => d.event === 'CLEAR' && d.start === BASE && d.end === BASE + PMD_SIZE),
    ).toBe(true);
    const flushes = ofType(sim, 'mm.tlb.flush').map((e) => e.data);
    expect(
      flushes.some((f) => f.start === BASE && f.end === BASE + PMD_SIZE && f.freedTables),
    ).toBe(true);
    expectProjectionMatches(sim, svc);
  });

  it('a page with a GUP reference is not collapsed (-EAGAIN, SCAN_PAGE_COUNT) and the PTEs stay', () => {
    const { sim, svc, proc } = thpSim();
    let r = 0;
    run(sim, function* () {
      yield* proc.mmap(BASE, PMD_SIZE, RW, ANON | Map_.FIXED);
      yield* proc.store(BASE, 5);
      yield* proc.mm.mmapLock.downRead();
      const pages: number[] = [];
      yield* getUserPages(svc.core, proc.mm, BASE, 1, 0, pages);
      proc.mm.mmapLock.upRead();
      r = yield* proc.madvise(BASE, PMD_SIZE, MADV_COLLAPSE);
      expect(yield* proc.load(BASE)).toBe(5);
      for (const p of pages) putPage(svc.core, p);
    });
    expect(r).toBe(-11);
    expect(hugeLeafAt(svc.core, proc.mm, BASE)).toBe(0);
    expectProjectionMatches(sim, svc);
  });
});

describe('hmm_range_fault on a leaf (mm/hmm.c: hmm_vma_handle_pmd, hmm_pfn_to_map_order)', () => {
  it('reports every page of a PMD leaf with map order 9 and its own pfn', () => {
    const { sim, svc, proc } = thpSim();
    const pfns = new Array<number>(4).fill(0);
    let r = -1;
    run(sim, function* () {
      yield* hugeRegion(proc);
      yield* proc.store(BASE, 1);
      if (!mmgetNotZero(proc.mm)) throw new Error('mm');
      yield* proc.mm.mmapLock.downRead();
      r = yield* hmmRangeFault(svc.core, {
        mm: proc.mm,
        start: BASE + 8 * PAGE_SIZE,
        end: BASE + 12 * PAGE_SIZE,
        hmmPfns: pfns,
        defaultFlags: HmmPfn.REQ_FAULT,
        pfnFlagsMask: 0,
        notifierSeqChanged: () => false,
      });
      proc.mm.mmapLock.upRead();
      yield* mmput(svc.core, proc.mm);
    });
    expect(r).toBe(0);
    const head = ptePfn(hugeLeafAt(svc.core, proc.mm, BASE));
    expect(pfns.map(hmmPfnToMapOrder)).toEqual([9, 9, 9, 9]);
    expect(pfns.map(hmmPfnToPfn)).toEqual([head + 8, head + 9, head + 10, head + 11]);
    expect(pfns.every((e) => hmmPfnHas(e, HmmPfn.VALID) && hmmPfnHas(e, HmmPfn.WRITE))).toBe(true);
  });
});
