// Reclaim: notifier-core.md §2.2 (clear_flush_young), §7 rows 9 (try_to_unmap) and 21 (aging);
// users-and-hardware.md §5.3 (unhook, flush, then free); mm/vmscan.c shrink_folio_list,
// mm/rmap.c folio_referenced_one / try_to_unmap_one.
import { describe, expect, it } from '@jest/globals';
import { Simulation } from '@mmnsim/core';
import type { LoggedEvent, SimEventMap } from '@mmnsim/core';
import {
  Frame,
  Map_,
  mmPlugin,
  MmService,
  MmuNotifier,
  MmuNotifiers,
  MmuNotifierSubsystem,
  PAGE_SIZE,
  Prot,
  Pte,
  PTE_NONE,
  pteFlags,
  pteIsSwap,
  ptePfn,
  ptePresent,
} from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { pteWithFlags } from '../src/internal/pte.js';
import {
  folioReferenced,
  reclaimFolio,
  setUnmapFlushMode,
  shrinkLru,
} from '../src/internal/reclaim.js';
import type { UnmapFlushMode } from '../src/internal/reclaim.js';
import { IpiTlb, ofType, runOk } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

function setup(totalFrames = 256, cpus = 2) {
  const sim = Simulation.create({ seed: 1, cpus, plugins: [mmPlugin({ totalFrames })] });
  const svc = sim.get(MmService);
  return { sim, svc, core: svc.core };
}

/** A distinct value for word `w` of page `p`. */
const val = (p: number, w: number) => (p + 1) * 1000 + w;

/**
 * users-and-hardware.md §5.3: a page is never freed while a translation to it may live. For
 * every freed frame, each PTE that mapped it must have been cleared and then covered by a TLB
 * flush of its mm before the free. Returns the violations found (empty when the rule holds).
 */
function freedBeforeFlush(events: readonly LoggedEvent[]): string[] {
  type Pending = { mm: number; va: number; seq: number; flushed: boolean };
  const pending = new Map<number, Pending[]>();
  const bad: string[] = [];
  for (const e of events) {
    if (e.type === 'mm.pte.set') {
      const d = e.data as unknown as SimEventMap['mm.pte.set'];
      const oldPfn = ptePresent(d.old) ? ptePfn(d.old) : -1;
      const newPfn = ptePresent(d.pte) ? ptePfn(d.pte) : -1;
      if (newPfn > 0) {
        const l = pending.get(newPfn);
        if (l !== undefined)
          pending.set(
            newPfn,
            l.filter((p) => p.mm !== d.mm || p.va !== d.va),
          );
      }
      if (oldPfn > 0 && oldPfn !== newPfn) {
        const l = pending.get(oldPfn) ?? [];
        l.push({ mm: d.mm, va: d.va, seq: e.seq, flushed: false });
        pending.set(oldPfn, l);
      }
    } else if (e.type === 'mm.tlb.flush') {
      const d = e.data as unknown as SimEventMap['mm.tlb.flush'];
      for (const l of pending.values())
        for (const p of l) if (p.mm === d.mm && p.va >= d.start && p.va < d.end) p.flushed = true;
    } else if (e.type === 'mm.frame.free') {
      const d = e.data as unknown as SimEventMap['mm.frame.free'];
      for (const p of pending.get(d.pfn) ?? []) {
        if (!p.flushed)
          bad.push(`frame ${d.pfn} freed at #${e.seq}, PTE ${p.mm}:${p.va} cleared at #${p.seq}`);
      }
      pending.delete(d.pfn);
    }
  }
  return bad;
}

describe('reclaim (notifier-core.md §7 row 9: try_to_unmap; row 21: aging)', () => {
  it('swaps pages out under explicit reclaim and reads every value back after swap-in', () => {
    const { sim, svc, core } = setup(128);
    const proc = svc.createProcess('app');
    const N = 40;
    const got: number[] = [];
    let freed = 0;
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, N * PAGE_SIZE, RW, ANON);
      for (let p = 0; p < N; p++)
        for (let w = 0; w < 3; w++) yield* proc.store(a + p * PAGE_SIZE + w * 4 * 97, val(p, w));
      freed = yield* svc.reclaim(N); // ages once (all were just used), then reclaims
      for (let p = 0; p < N; p++)
        for (let w = 0; w < 3; w++) got.push(yield* proc.load(a + p * PAGE_SIZE + w * 4 * 97));
    });
    runOk(sim);
    expect(freed).toBe(N);
    const want: number[] = [];
    for (let p = 0; p < N; p++) for (let w = 0; w < 3; w++) want.push(val(p, w));
    expect(got).toEqual(want);
    expect(ofType(sim, 'mm.swap.out')).toHaveLength(N);
    expect(ofType(sim, 'mm.swap.in')).toHaveLength(N);
    expect(core.swap.used).toBe(0);
  });

  it('aging calls clear_flush_young under the PTE lock, and a page referenced again survives the pass (second chance)', () => {
    const { sim, svc, core } = setup();
    const proc = svc.createProcess('app');
    const r: Record<string, number> = {};
    const atomicYoung: boolean[] = [];
    sim.bus.on('mmn.young').subscribe(() => {
      atomicYoung.push(sim.scheduler.current.preemptDepth > 0);
    });
    let a = 0;
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 1);
      yield* proc.store(a + PAGE_SIZE, 2);
      const pa = ptePfn(core.pt.pte(proc.mm, a));
      const pb = ptePfn(core.pt.pte(proc.mm, a + PAGE_SIZE));
      r.firstA = yield* folioReferenced(core, pa); // both were just used
      r.firstB = yield* folioReferenced(core, pb);
      r.accessedCleared = pteFlags(core.pt.pte(proc.mm, a)) & Pte.ACCESSED;
      // x86 does not flush after clearing the accessed bit: a CPU TLB that still caches A would
      // use it without setting the bit again. Drop that translation (as a context switch or an
      // eviction would) so that the access walks the page table. Harmless with the ideal TLB.
      yield* core.tlb.flushRange(proc.mm, a, a + PAGE_SIZE, false);
      r.againA = yield* proc.load(a); // A is used again, B is not
      r.freed = yield* shrinkLru(core, 1);
      const pteA = core.pt.pte(proc.mm, a);
      r.aMapped = ptePresent(pteA) && ptePfn(pteA) === pa ? 1 : 0;
      r.aReferenced = core.phys.flags[pa]! & Frame.REFERENCED ? 1 : 0;
      r.bSwapped = pteIsSwap(core.pt.pte(proc.mm, a + PAGE_SIZE)) ? 1 : 0;
      r.b = yield* proc.load(a + PAGE_SIZE);
    });
    runOk(sim);
    expect(r).toEqual({
      firstA: 1,
      firstB: 1,
      accessedCleared: 0,
      againA: 1,
      freed: 1,
      aMapped: 1,
      aReferenced: 1,
      bSwapped: 1,
      b: 2,
    });
    const young = ofType(sim, 'mmn.young');
    expect(young.every((y) => y.data.op === 'clear_flush_young')).toBe(true);
    expect(young.map((y) => [y.data.start, y.data.end])).toContainEqual([a, a + PAGE_SIZE]);
    expect(atomicYoung.length).toBeGreaterThan(0);
    expect(atomicYoung.every((x) => x)).toBe(true);
  });

  it('writes a dirty shared file page back, drops it from the page cache, and re-reads the right data', () => {
    const { sim, svc, core } = setup();
    const proc = svc.createProcess('app');
    const file = svc.newFile('data', 2, new Map([[0, [0, 5, 1, 6]]]));
    const r: Record<string, unknown> = {};
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, Map_.SHARED, file, 0);
      r.before = yield* proc.load(a);
      yield* proc.store(a + 4, 66);
      const pfn = file.pageCache.get(0)!;
      r.freed = yield* reclaimFolio(core, pfn);
      r.inCache = file.pageCache.has(0);
      r.pte = core.pt.pte(proc.mm, a);
      r.backing = file.backing.get(0);
      r.w0 = yield* proc.load(a);
      r.w1 = yield* proc.load(a + 4);
    });
    runOk(sim);
    expect(r).toEqual({
      before: 5,
      freed: true,
      inCache: false,
      pte: PTE_NONE,
      backing: [0, 5, 1, 66],
      w0: 5,
      w1: 66,
    });
  });

  it('discards a clean lazyfree (MADV_FREE) page, which then reads as zero; a redirtied one is swapped instead', () => {
    const { sim, svc, core } = setup();
    const proc = svc.createProcess('app');
    const phys = core.phys;
    const r: Record<string, number> = {};
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 31);
      yield* proc.store(a + PAGE_SIZE, 32);
      // MADV_FREE as madvise_free_pte_range leaves it: PTE clean and old, folio clean and lazyfree.
      for (const va of [a, a + PAGE_SIZE]) {
        const slot = core.pt.lookup(proc.mm, va)!;
        const pte = slot.table[slot.index]!;
        core.pt.set(
          proc.mm,
          slot,
          va,
          pteWithFlags(pte, pteFlags(pte) & ~(Pte.DIRTY | Pte.ACCESSED)),
        );
        const pfn = ptePfn(pte);
        phys.flags[pfn] = (phys.flags[pfn]! & ~Frame.DIRTY) | Frame.LAZYFREE;
      }
      // …and flushes the TLB (tlb_finish_mmu), so that a later store dirties the PTE again.
      yield* core.tlb.flushRange(proc.mm, a, a + 2 * PAGE_SIZE, false);
      yield* proc.store(a + PAGE_SIZE, 33); // redirties the second page
      const swapBefore = core.swap.used;
      r.freed1 = (yield* reclaimFolio(core, ptePfn(core.pt.pte(proc.mm, a)))) ? 1 : 0;
      r.pte1 = core.pt.pte(proc.mm, a);
      r.swapAfterFirst = core.swap.used - swapBefore;
      const second = ptePfn(core.pt.pte(proc.mm, a + PAGE_SIZE));
      r.freed2 = (yield* reclaimFolio(core, second)) ? 1 : 0;
      r.second = phys.flags[second]! & Frame.LAZYFREE ? 1 : 0;
      r.secondKept = ptePresent(core.pt.pte(proc.mm, a + PAGE_SIZE)) ? 1 : 0;
      r.freed3 = (yield* reclaimFolio(core, second)) ? 1 : 0; // now normal anon: swapped
      r.secondSwapped = pteIsSwap(core.pt.pte(proc.mm, a + PAGE_SIZE)) ? 1 : 0;
      r.v1 = yield* proc.load(a);
      r.v2 = yield* proc.load(a + PAGE_SIZE);
    });
    runOk(sim);
    expect(r).toEqual({
      freed1: 1,
      pte1: PTE_NONE,
      swapAfterFirst: 0,
      freed2: 0,
      second: 0,
      secondKept: 1,
      freed3: 1,
      secondSwapped: 1,
      v1: 0,
      v2: 33,
    });
  });

  for (const mode of ['deferred', 'immediate'] as UnmapFlushMode[]) {
    it(`never frees a frame before a TLB flush that covers its cleared PTEs (${mode} flush; users-and-hardware.md §5.3)`, () => {
      const { sim, svc, core } = setup(48);
      setUnmapFlushMode(core, mode);
      const parent = svc.createProcess('parent');
      let ok = true;
      sim.spawn('parent', 0, function* () {
        const a = yield* parent.mmap(0, 24 * PAGE_SIZE, RW, ANON);
        for (let p = 0; p < 24; p++) yield* parent.store(a + p * PAGE_SIZE, val(p, 0));
        const c = yield* parent.fork('child');
        if (typeof c === 'number') throw new Error(`fork failed: ${c}`);
        for (let p = 0; p < 24; p += 2) yield* c.store(a + p * PAGE_SIZE, val(p, 1));
        yield* svc.reclaim(64);
        for (let p = 0; p < 24; p++) {
          const vp = yield* parent.load(a + p * PAGE_SIZE);
          const vc = yield* c.load(a + p * PAGE_SIZE);
          if (vp !== val(p, 0) || vc !== (p % 2 === 0 ? val(p, 1) : val(p, 0))) ok = false;
        }
      });
      runOk(sim);
      expect(ok).toBe(true);
      const events = sim.log!.events;
      expect(ofType(sim, 'mm.swap.out').length).toBeGreaterThan(10);
      expect(freedBeforeFlush(events)).toEqual([]);
      // Every reclaim unmapping happened inside a CLEAR window of its own page.
      const clears = ofType(sim, 'mmn.invalidate_start').filter((e) => e.data.event === 'CLEAR');
      expect(clears.every((e) => e.data.end - e.data.start === PAGE_SIZE && e.data.blockable)).toBe(
        true,
      );
    });
  }

  it('the free-after-flush check catches a frame freed before its flush', () => {
    // Guards the checker above: a hand-made log where the free comes first.
    const mk = (seq: number, type: string, data: unknown): LoggedEvent =>
      ({ seq, step: seq, time: 0, ctx: 'cpu0', task: 0, type, data }) as LoggedEvent;
    const pte = 7 * PAGE_SIZE + Pte.PRESENT;
    const log = [
      mk(0, 'mm.pte.set', { mm: 1, va: 0x1000, pte: 0, old: pte }),
      mk(1, 'mm.frame.free', { pfn: 7 }),
      mk(2, 'mm.tlb.flush', { mm: 1, start: 0x1000, end: 0x2000, freedTables: false }),
    ];
    expect(freedBeforeFlush(log)).toHaveLength(1);
  });

  it('a swap-in racing with swap-out waits for the writeback (folio lock), then reads the stored data', () => {
    // The swap PTE is published under the PTE lock before the deferred flush; the content is
    // written after it (pageout after try_to_unmap_flush_dirty), so do_swap_page must wait.
    const sim = Simulation.create({ seed: 1, cpus: 2 });
    const svc = new MmService(
      sim.kernel,
      { totalFrames: 64, gatherMaxPages: 10_000, reclaimBatch: 32 },
      new IpiTlb(sim),
      new MmuNotifiers(sim.kernel),
    );
    const core = svc.core;
    const proc = svc.createProcess('app');
    let seen = -1;
    let sawSwap = false;
    let faulterId = -1;
    sim.spawn('reclaimer', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 4321);
      const pfn = ptePfn(core.pt.pte(proc.mm, a));
      let started = false;
      faulterId = sim.spawn('faulter', 1, function* () {
        started = true;
        for (let i = 0; i < 10_000 && !pteIsSwap(core.pt.pte(proc.mm, a)); i++)
          yield* sim.scheduler.preempt();
        sawSwap = pteIsSwap(core.pt.pte(proc.mm, a));
        seen = yield* proc.load(a);
      }).id;
      while (!started) yield* sim.scheduler.preempt();
      yield* reclaimFolio(core, pfn);
    });
    runOk(sim);
    expect(sawSwap).toBe(true);
    expect(seen).toBe(4321);
    const mine = sim.log!.events.filter((e) => e.task === faulterId && e.type === 'mm.fault');
    expect(mine.map((e) => (e.data as { result: string }).result)).toEqual(['retry', 'ok']);
    expect(ofType(sim, 'mm.swap.in')).toHaveLength(1);
  });

  it('direct reclaim lets a workload larger than memory complete by swapping instead of OOM', () => {
    const { sim, svc, core } = setup(48);
    const proc = svc.createProcess('big');
    const N = 100; // far more than the ~40 frames left for data
    const bad: number[] = [];
    sim.spawn('big', 0, function* () {
      const a = yield* proc.mmap(0, N * PAGE_SIZE, RW, ANON);
      for (let p = 0; p < N; p++) {
        const e = yield* proc.store(a + p * PAGE_SIZE, val(p, 0));
        if (e !== 0) bad.push(p);
      }
      for (let round = 0; round < 2; round++) {
        for (let p = 0; p < N; p++) {
          if ((yield* proc.load(a + p * PAGE_SIZE)) !== val(p, 0)) bad.push(p);
        }
      }
    });
    runOk(sim);
    expect(bad).toEqual([]);
    expect(proc.siginfo).toBeNull();
    expect(ofType(sim, 'mm.swap.out').length).toBeGreaterThan(N);
    expect(core.phys.freeFrames).toBeLessThan(48);
  });
});

describe('the swap-cache reference of a slot under reclaim (SWAP_HAS_CACHE)', () => {
  it('a slot outlives the zap of every swap PTE while reclaim still holds the folio', () => {
    const { core } = setup();
    const swap = core.swap;
    const slot = swap.beginWriteback(5);
    swap.dup(slot); // the first mapping's swap PTE
    swap.free(slot); // that PTE is zapped by a concurrent munmap
    expect(swap.users(slot)).toBe(0);
    swap.dup(slot); // reclaim goes on with the next mapping: still valid
    swap.endWriteback(slot, 5, [0, 7]);
    expect(swap.load(slot)).toEqual([0, 7]);
    swap.free(slot);
    expect(swap.used).toBe(0);
  });

  it('reclaiming a forked page while the parent munmaps its swap entry keeps the child correct', () => {
    // The reclaimer unmaps the parent's PTE first; the child's CLEAR window then stalls in a
    // sleeping subscriber, the parent munmaps (zapping its swap entry), and reclaim goes on with
    // the child's mapping (found by the invariant-5 exploration in mmn-classic.test.ts).
    const { sim, svc, core } = setup(256, 3);
    const mmn = sim.get(MmuNotifierSubsystem);
    const parent = svc.createProcess('parent');
    let child: Process | null = null;
    let addr = 0;
    let childValue = -1;
    sim.spawn('parent', 0, function* () {
      addr = yield* parent.mmap(0, PAGE_SIZE, RW, ANON);
      yield* parent.store(addr, 77);
      const c = yield* parent.fork('child');
      if (typeof c === 'number') throw new Error('fork failed');
      child = c;
      const sleepy = new MmuNotifier({
        name: 'sleepy',
        *invalidateRangeStart() {
          yield* sim.scheduler.sleepFor(1_000_000);
          return 0;
        },
      });
      expect(yield* mmn.register(sleepy, c.mm)).toBe(0);
      const pfn = ptePfn(core.pt.pte(parent.mm, addr));
      sim.spawn('kswapd', 1, function* () {
        yield* reclaimFolio(core, pfn);
      });
      yield* sim.scheduler.sleepFor(500_000); // reclaim is now inside the child's window
      yield* parent.munmap(addr, PAGE_SIZE);
      sim.spawn('child', 2, function* () {
        yield* sim.scheduler.sleepFor(5_000_000);
        childValue = yield* c.load(addr);
      });
    });
    runOk(sim);
    expect(child).not.toBeNull();
    expect(childValue).toBe(77);
  });
});
