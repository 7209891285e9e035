// The x86 TLB scenarios of users-and-hardware.md §7 (32, 33, 35, 37, 38, 40), each with the
// kernel's expected behaviour and, where the scenario names one, the bug it catches reproduced
// with a deliberately broken variant and reported by the stale-TLB oracle.
import { describe, expect, it } from '@jest/globals';
import { Errno, WaitQueue } from '@mmnsim/core';
import type { Simulation, TaskGen } from '@mmnsim/core';
import {
  folioReferenced,
  GATHER_BATCH,
  PAGE_SIZE,
  Pte,
  PTE_NONE,
  pteFlags,
  ptePfn,
} from '@mmnsim/mm';
import type { X86TlbBug } from '@mmnsim/hw-x86-tlb';
import { ALONE, ANON, ofType, RW, runOk, spin, touch, x86Sim } from './helpers.js';

/** A flag tasks wait for (sleeping on a wait queue, so their CPU goes idle). */
class Flag {
  private readonly wq: WaitQueue;
  value = false;
  constructor(sim: Simulation, name: string) {
    this.wq = new WaitQueue(sim.scheduler, name);
  }
  set(): void {
    this.value = true;
    this.wq.wakeAll();
  }
  *wait(): TaskGen<void> {
    yield* this.wq.waitEvent(() => this.value);
  }
}

/**
 * Scenarios 32 and 33: CPU1 ran a thread of mm M (which left translations in its TLB and its
 * paging-structure cache), then a kernel thread, so CPU1 keeps M loaded lazily; CPU0 munmaps part
 * of M. `freeTables` chooses whether the munmap frees the page tables (the mapping alone in its
 * 1 GiB) or not (a neighbouring mapping keeps the PTE table). The kernel thread walks the unmapped
 * address speculatively after the munmap; then the thread of M comes back and loads it.
 */
function lazyScenario(freeTables: boolean, bug: X86TlbBug) {
  const { sim, proc, tlb } = x86Sim({ cpus: 2, tlb: { bug } });
  const mapped = new Flag(sim, 'mapped');
  const touched = new Flag(sim, 'touched');
  const unmapped = new Flag(sim, 'unmapped');
  const walked = new Flag(sim, 'walked');
  const r = { load: 0, cpu1DuringMunmap: { loadedMm: -1, lazy: false }, speculative: 0 };
  let a = 0;
  sim.spawn('app', 0, function* () {
    a = yield* proc.mmap(ALONE, 2 * PAGE_SIZE, RW, ANON);
    if (!freeTables) {
      // A neighbour in the same PTE table: free_pgtables keeps the table.
      yield* proc.mmap(ALONE + 8 * PAGE_SIZE, PAGE_SIZE, RW, ANON);
      yield* touch(proc, ALONE + 8 * PAGE_SIZE, 1);
    }
    mapped.set();
    yield* touched.wait();
    expect(yield* proc.munmap(a, 2 * PAGE_SIZE)).toBe(0);
    unmapped.set();
  });
  sim.spawn('app-thread', 1, function* () {
    yield* mapped.wait();
    yield* touch(proc, a, 2); // CPU1 loads M: TLB entries and cached upper-level entries
    touched.set();
    yield* walked.wait(); // blocks: CPU1 runs the kernel thread, lazily keeping M
    r.load = yield* proc.load(a);
  });
  sim.spawn('kthread', 1, function* () {
    yield* unmapped.wait();
    const s = tlb.cpuState(1);
    r.cpu1DuringMunmap = { loadedMm: s.loadedMm, lazy: s.lazy };
    r.speculative = tlb.speculativeWalk(a); // the CPU may walk the loaded tables at any time
    walked.set();
  });
  const result = sim.run();
  return { sim, proc, tlb, r, result };
}

describe('users-and-hardware.md §7 scenarios (x86 TLB)', () => {
  it('32: x86 lazy TLB, no tables freed — no IPI to the lazy CPU; switching back to the mm compares tlb_gen and flushes', () => {
    const { sim, proc, r, result } = lazyScenario(false, 'none');
    expect(result.violations).toEqual([]);
    expect(result.reason).toBe('done');
    const mm = proc.mm.id;
    // CPU1 went lazy with M loaded, and stayed so through the munmap.
    expect(ofType(sim, 'tlb.lazy').map((e) => e.data)).toContainEqual({ cpu: 1, mm });
    expect(r.cpu1DuringMunmap).toEqual({ loadedMm: mm, lazy: true });
    // The munmap freed no page tables, and sent CPU1 no IPI.
    const flushes = ofType(sim, 'mm.tlb.flush');
    expect(flushes.length).toBeGreaterThan(0);
    expect(flushes.every((f) => !f.data.freedTables)).toBe(true);
    expect(ofType(sim, 'tlb.ipi.send').filter((e) => e.data.to === 1)).toEqual([]);
    // The kernel thread's speculative walk reads the live table: the PTE is gone.
    expect(r.speculative).toBe(-1);
    // Back to M: the generation comparison finds CPU1 behind and flushes its PCID.
    const back = ofType(sim, 'tlb.switch').filter(
      (e) => e.data.cpu === 1 && e.data.reason === 'lazy-return',
    );
    expect(back.map((e) => e.data.flush)).toEqual([true]);
    // …so the thread's load faults (the page is unmapped) instead of using the stale entry.
    expect(r.load).toBe(-Errno.EFAULT);
    expect(proc.siginfo).toMatchObject({ signal: 'SIGSEGV', code: 'SEGV_MAPERR', addr: ALONE });
  });

  it('32 (bug): resuming the mm without the generation check uses the stale entry — reported as a use after free', () => {
    const { result } = lazyScenario(false, 'no-lazy-generation-check');
    expect(result.violations).toHaveLength(1);
    const v = result.violations[0]!;
    expect(v.kind).toBe('tlb-use-after-free');
    expect(v.oracle).toBe('x86-tlb');
    expect(v.taskName).toBe('app-thread');
    expect(v.message).toMatch(/cpu1 load from 0x10000000000 .* filled at step \d+ \(#\d+\)/);
    expect(v.message).toMatch(
      /its PTE changed at step \d+ \(#\d+\) \(pfn 0x[0-9a-f]+ wad → none\)/,
    );
    expect(v.message).toMatch(
      /the flush covering it completed at step \d+ \(#\d+\) without removing it from cpu1/,
    );
    expect(v.message).toMatch(/the frame was freed at step \d+ \(#\d+\)/);
    // The evidence: the fill, the PTE change, the flush that left it, the free.
    expect(v.evidence).toHaveLength(4);
  });

  it('33: x86 lazy TLB, tables freed — the lazy CPU gets the IPI too and switches to init_mm', () => {
    const { sim, proc, r, result } = lazyScenario(true, 'none');
    expect(result.violations).toEqual([]);
    expect(result.reason).toBe('done');
    const mm = proc.mm.id;
    const final = ofType(sim, 'mm.tlb.flush').filter((f) => f.data.freedTables);
    expect(final).toHaveLength(1);
    // The IPI went to the lazy CPU as well…
    const ipis = ofType(sim, 'tlb.ipi.send').filter((e) => e.data.to === 1);
    expect(ipis.map((e) => e.data)).toEqual([
      { from: 0, to: 1, mm, gen: expect.any(Number), freedTables: true },
    ]);
    expect(ofType(sim, 'tlb.ipi.ack').filter((e) => e.data.cpu === 1)).toHaveLength(1);
    // …which dropped the user page tables: init_mm loaded, nothing left to walk speculatively.
    const toInit = ofType(sim, 'tlb.switch').filter(
      (e) => e.data.cpu === 1 && e.data.reason === 'lazy-ipi',
    );
    expect(toInit.map((e) => [e.data.from, e.data.to])).toEqual([[mm, 0]]);
    expect(toInit[0]!.seq).toBeLessThan(final[0]!.seq);
    expect(r.cpu1DuringMunmap).toEqual({ loadedMm: 0, lazy: false });
    expect(r.speculative).toBe(-1);
    // The page tables were freed after the IPI was acknowledged.
    const free = ofType(sim, 'mm.gather.free').filter((e) => e.data.tables.length > 0);
    expect(free).toHaveLength(1);
    const ack = ofType(sim, 'tlb.ipi.ack').find((e) => e.data.cpu === 1)!;
    expect(ack.seq).toBeLessThan(free[0]!.seq);
    expect(r.load).toBe(-Errno.EFAULT);
  });

  it('33 (bug): skipping lazy CPUs when tables are freed lets the lazy CPU walk a freed page-table page — reported as a use after free', () => {
    const { sim, result } = lazyScenario(true, 'skip-lazy-when-tables-freed');
    expect(ofType(sim, 'tlb.ipi.send').filter((e) => e.data.to === 1)).toEqual([]);
    expect(result.violations).toHaveLength(1);
    const v = result.violations[0]!;
    expect(v.kind).toBe('tlb-use-after-free');
    expect(v.taskName).toBe('kthread');
    expect(v.message).toMatch(
      /cpu1 \(lazy\) speculatively walked 0x10000000000 of mm#1 app through the PTE table in frame 0x[0-9a-f]+, cached at step \d+, which was freed at step \d+ \(#\d+\)/,
    );
    expect(v.evidence).toHaveLength(1);
  });

  it('35: ceiling — 33 pages are flushed page by page (INVLPG), 34 pages by a full flush; the ceiling is tunable', () => {
    const flushesFor = (pages: number[], ceiling?: number) => {
      const { sim, proc } = x86Sim({
        cpus: 2,
        ...(ceiling !== undefined ? { tlb: { flushCeiling: ceiling } } : {}),
      });
      const total = 40;
      const out: { pages: number; cpu0: string[]; cpu1: string[] }[] = [];
      let stop = false;
      const ready = new Flag(sim, 'ready');
      sim.spawn('app', 0, function* () {
        const a = yield* proc.mmap(ALONE, (total + 1) * PAGE_SIZE, RW, ANON);
        ready.set();
        for (const n of pages) {
          yield* touch(proc, a, n);
          yield* spin(sim, 5);
          const from = sim.log!.length;
          expect(yield* proc.madvise(a, n * PAGE_SIZE, 4 /* MADV_DONTNEED */)).toBe(0);
          const fl = sim
            .log!.events.slice(from)
            .filter((e) => e.type === 'tlb.flush')
            .map((e) => e.data as { cpu: number; kind: string; start: number; end: number });
          const show = (cpu: number) =>
            fl
              .filter((f) => f.cpu === cpu)
              .map((f) => (f.kind === 'pages' ? `pages ${(f.end - f.start) / PAGE_SIZE}` : 'full'));
          out.push({ pages: n, cpu0: show(0), cpu1: show(1) });
        }
        stop = true;
      });
      // A thread of the same process keeps running on CPU1: its TLB holds the mm, not lazily.
      sim.spawn('app-thread', 1, function* () {
        yield* ready.wait();
        const last = ALONE + total * PAGE_SIZE;
        while (!stop) {
          yield* proc.load(last);
          yield* sim.scheduler.preempt();
        }
      });
      runOk(sim);
      return out;
    };
    expect(flushesFor([33, 34])).toEqual([
      { pages: 33, cpu0: ['pages 33'], cpu1: ['pages 33'] },
      { pages: 34, cpu0: ['full'], cpu1: ['full'] },
    ]);
    expect(flushesFor([8, 9], 8)).toEqual([
      { pages: 8, cpu0: ['pages 8'], cpu1: ['pages 8'] },
      { pages: 9, cpu0: ['full'], cpu1: ['full'] },
    ]);
  });

  it('37: mmu_gather batch overflow — when no batch page can be allocated the gather flushes (all CPUs acknowledged) before it frees the first batch, and every page is freed after a flush covering it', () => {
    const pages = GATHER_BATCH + 90;
    const { sim, svc, proc } = x86Sim({ cpus: 2, totalFrames: pages + 64 });
    const core = svc.core;
    const ready = new Flag(sim, 'ready');
    let stop = false;
    let a = 0;
    let from = 0;
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(ALONE, pages * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, pages);
      ready.set();
      yield* spin(sim, 20);
      // No free frame left: the gather cannot get a second batch page (GFP_NOWAIT fails).
      while (core.phys.alloc('kernel') >= 0);
      from = sim.log!.length;
      expect(yield* proc.munmap(a, pages * PAGE_SIZE)).toBe(0);
      stop = true;
    });
    // A thread of the process on CPU1 reads the pages meanwhile through its TLB.
    sim.spawn('app-thread', 1, function* () {
      yield* ready.wait();
      for (let i = 0; !stop; i = (i + 1) % pages) {
        yield* proc.load(a + i * PAGE_SIZE);
        yield* sim.scheduler.preempt();
      }
    });
    runOk(sim);
    const evs = sim.log!.events.slice(from);
    const seqOf = (type: string) => evs.filter((e) => e.type === type).map((e) => e.seq);
    // Start precedes every PTE change.
    const start = seqOf('mmn.invalidate_start')[0]!;
    expect(Math.min(...seqOf('mm.pte.set'))).toBeGreaterThan(start);
    // Two frees: the first batch (forced, inside the window) and the rest at tlb_finish_mmu.
    const frees = evs.filter((e) => e.type === 'mm.gather.free');
    expect(frees.map((e) => (e.data as { pfns: number[] }).pfns.length)).toEqual([
      GATHER_BATCH,
      pages - GATHER_BATCH,
    ]);
    expect(frees[0]!.seq).toBeLessThan(seqOf('mmn.invalidate_end')[0]!);
    // Each free comes after a flush that reached CPU1 and was acknowledged.
    for (const f of frees) {
      const flush = evs.filter((e) => e.type === 'mm.tlb.flush' && e.seq < f.seq).at(-1)!;
      const send = evs
        .filter((e) => e.type === 'tlb.ipi.send' && e.seq < flush.seq)
        .filter((e) => (e.data as { to: number }).to === 1)
        .at(-1)!;
      const ack = evs.find(
        (e) =>
          e.type === 'tlb.ipi.ack' && e.seq > send.seq && (e.data as { cpu: number }).cpu === 1,
      )!;
      expect(ack.seq).toBeLessThan(flush.seq);
    }
    // No page freed before a flush that covers it: every cleared frame's free follows a flush
    // of its address that started after the clear.
    const cleared = new Map<number, { va: number; seq: number }>();
    let checked = 0;
    for (const e of evs) {
      if (e.type === 'mm.pte.set') {
        const d = e.data as { va: number; old: number; pte: number };
        if (d.pte === PTE_NONE && (pteFlags(d.old) & Pte.PRESENT) !== 0)
          cleared.set(ptePfn(d.old), { va: d.va, seq: e.seq });
      } else if (e.type === 'mm.gather.free') {
        for (const pfn of (e.data as { pfns: number[] }).pfns) {
          const c = cleared.get(pfn)!;
          const covering = evs.find(
            (x) =>
              x.type === 'mm.tlb.flush' &&
              x.seq > c.seq &&
              x.seq < e.seq &&
              (x.data as { start: number }).start <= c.va &&
              (x.data as { end: number }).end > c.va,
          );
          expect(covering).toBeDefined();
          checked++;
        }
      }
    }
    expect(checked).toBe(pages);
  });

  it('38: page-table pages are freed only after an IPI round that every CPU of the mm (lazy ones too) acknowledged — a walker with interrupts off holds the free back', () => {
    const { sim, svc, proc, tlb } = x86Sim({ cpus: 3 });
    const core = svc.core;
    const mm = proc.mm;
    const mapped = new Flag(sim, 'mapped');
    const touched = new Flag(sim, 'touched');
    const emptied = new Flag(sim, 'emptied');
    const done = new Flag(sim, 'done');
    let a = 0;
    let tablePfn = -1;
    let tablesIpiSeen = false;
    const walker = { walks: 0, sawFreed: false, restoredAt: -1 };
    sim.bus.on('tlb.ipi.send').subscribe((e) => {
      if (e.data.to === 1 && e.data.freedTables) tablesIpiSeen = true;
    });
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(ALONE, 4 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 4);
      tablePfn = core.pt.lookup(mm, a)!.tablePfn;
      mapped.set();
      yield* touched.wait();
      // Empty the PTEs first (their flush is done), so that the munmap only frees tables.
      expect(yield* proc.madvise(a, 4 * PAGE_SIZE, 4 /* MADV_DONTNEED */)).toBe(0);
      emptied.set();
      expect(yield* proc.munmap(a, 4 * PAGE_SIZE)).toBe(0);
      done.set();
    });
    // CPU1: a thread of the mm whose lockless walk (as gup_fast) runs with interrupts off: it
    // reads the PMD entry once, then keeps using the PTE table it points at.
    sim.spawn('gup-fast', 1, function* () {
      yield* mapped.wait();
      yield* proc.load(a);
      touched.set();
      yield* emptied.wait();
      sim.kernel.localIrqSave();
      const slot = core.pt.lookup(mm, a);
      expect(slot?.tablePfn).toBe(tablePfn);
      while (!tablesIpiSeen || walker.walks < 20) {
        void slot!.table[slot!.index];
        if (core.phys.isFree(slot!.tablePfn)) walker.sawFreed = true;
        walker.walks++;
        yield* sim.scheduler.preempt();
      }
      walker.restoredAt = sim.scheduler.steps;
      sim.kernel.localIrqRestore();
    });
    // CPU2: a thread of the mm ran, then a kernel thread: lazy with the mm loaded.
    sim.spawn('app-thread2', 2, function* () {
      yield* mapped.wait();
      yield* proc.load(a + PAGE_SIZE);
      yield* done.wait();
    });
    sim.spawn('kthread2', 2, function* () {
      yield* touched.wait();
      while (!done.value) yield* sim.scheduler.preempt();
    });
    runOk(sim);
    expect(tablesIpiSeen).toBe(true);
    expect(walker.walks).toBeGreaterThanOrEqual(20);
    expect(walker.sawFreed).toBe(false);
    const free = ofType(sim, 'mm.gather.free').find((e) => e.data.tables.includes(tablePfn))!;
    expect(free).toBeDefined();
    // The freed-tables flush went to both CPUs, the lazy one included, which dropped to init_mm…
    const sends = ofType(sim, 'tlb.ipi.send').filter((e) => e.data.freedTables);
    expect(sends.map((e) => e.data.to)).toEqual([1, 2]);
    const lazy = ofType(sim, 'tlb.switch').filter(
      (e) => e.data.cpu === 2 && e.data.reason === 'lazy-ipi',
    );
    expect(lazy).toHaveLength(1);
    expect(tlb.cpuState(2).loadedMm).toBe(0);
    // …and CPU1 could acknowledge only once its walker re-enabled interrupts; the free came after
    // both acknowledgements.
    const acks = ofType(sim, 'tlb.ipi.ack').filter((e) => e.seq > sends[0]!.seq);
    const ack1 = acks.find((e) => e.data.cpu === 1)!;
    const ack2 = acks.find((e) => e.data.cpu === 2)!;
    expect(ack1.step).toBeGreaterThanOrEqual(walker.restoredAt);
    expect(ack2.seq).toBeLessThan(ack1.seq);
    expect(free.seq).toBeGreaterThan(ack1.seq);
  });

  it('40: clearing the accessed bit does not flush — a cached translation keeps it clear (a tolerated false "0"), and the unmap flush still removes it', () => {
    const run = (skipFlushWhenOld: boolean) => {
      const { sim, svc, proc } = x86Sim({ cpus: 2 });
      const core = svc.core;
      const mm = proc.mm;
      const stage = [0, 1, 2, 3].map((i) => new Flag(sim, `stage${i}`));
      const unmapped = new Flag(sim, 'unmapped');
      const r: Record<string, number> = {};
      let a = 0;
      let agingEvents = -1;
      sim.spawn('app', 0, function* () {
        a = yield* proc.mmap(ALONE, PAGE_SIZE, RW, ANON);
        stage[0]!.set();
        yield* stage[1]!.wait(); // CPU1 stored: its TLB caches the page, accessed and dirty
        const pfn = ptePfn(core.pt.pte(mm, a));
        const from = sim.log!.length;
        r.first = yield* folioReferenced(core, pfn);
        agingEvents = sim.log!.events.slice(from).filter((e) => e.type.startsWith('tlb.')).length;
        r.accessedAfterAging = pteFlags(core.pt.pte(mm, a)) & Pte.ACCESSED;
        stage[2]!.set();
        yield* stage[3]!.wait(); // CPU1 loaded again: a TLB hit, the accessed bit stays clear
        r.accessedAfterHit = pteFlags(core.pt.pte(mm, a)) & Pte.ACCESSED;
        r.second = yield* folioReferenced(core, pfn);
        if (!skipFlushWhenOld) {
          expect(yield* proc.munmap(a, PAGE_SIZE)).toBe(0);
        } else {
          // The "optimisation": the PTE is old, so the unmap skips the TLB flush and frees the page.
          const slot = core.pt.lookup(mm, a)!;
          const ptl = mm.ptl(slot.tablePfn);
          yield* ptl.lock();
          core.pt.set(mm, slot, a, PTE_NONE);
          core.phys.mapcount[pfn]!--;
          ptl.unlock();
          core.phys.put(pfn);
        }
        unmapped.set();
      });
      sim.spawn('app-thread', 1, function* () {
        yield* stage[0]!.wait();
        yield* proc.store(a, 40);
        stage[1]!.set();
        yield* stage[2]!.wait();
        r.hit = yield* proc.load(a);
        stage[3]!.set();
        while (!unmapped.value) yield* sim.scheduler.preempt();
        r.after = yield* proc.load(a);
      });
      const result = sim.run();
      return { sim, r, result, agingEvents };
    };
    const ok = run(false);
    expect(ok.result.violations).toEqual([]);
    expect(ok.agingEvents).toBe(0); // no flush, no IPI for clear_flush_young
    expect(ok.r).toMatchObject({
      first: 1,
      accessedAfterAging: 0,
      hit: 40,
      accessedAfterHit: 0,
      second: 0,
      after: -Errno.EFAULT,
    });
    expect(ofType(ok.sim, 'tlb.hit').some((e) => e.data.cpu === 1 && e.data.va === ALONE)).toBe(
      true,
    );
    // The unmap's zap flush reaches CPU1 although the PTE was old (then the freed tables' one).
    const ipis = ofType(ok.sim, 'tlb.ipi.send').filter((e) => e.data.to === 1);
    expect(ipis.map((e) => e.data.freedTables)).toEqual([false, true]);

    const bug = run(true);
    expect(bug.result.violations).toHaveLength(1);
    const v = bug.result.violations[0]!;
    expect(v.kind).toBe('tlb-use-after-free');
    expect(v.message).toMatch(
      /cpu1 load from 0x10000000000 .* no flush covering it had completed; the frame was freed/,
    );
  });
});
