// Fork (dup_mmap / copy_page_range): notifier-core.md §7 row 7, kernel/fork.c dup_mmap,
// mm/memory.c copy_present_pte / copy_present_page / copy_nonpresent_pte.
import { describe, expect, it } from '@jest/globals';
import { Simulation } from '@mmnsim/core';
import {
  Map_,
  mmPlugin,
  MmService,
  MmuNotifiers,
  PAGE_SIZE,
  Prot,
  Pte,
  pteIsMigration,
  pteIsSwap,
  ptePfn,
} from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { reclaimFolio } from '../src/internal/reclaim.js';
import { IpiTlb, ofType, runOk } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

function setup(totalFrames = 256) {
  const sim = Simulation.create({ seed: 1, cpus: 2, plugins: [mmPlugin({ totalFrames })] });
  const svc = sim.get(MmService);
  return { sim, svc, core: svc.core };
}

function writable(pte: number): boolean {
  return ((pte % PAGE_SIZE) & Pte.PRESENT) !== 0 && ((pte % PAGE_SIZE) & Pte.WRITE) !== 0;
}

describe('fork (notifier-core.md §7 row 7: dup_mmap / copy_page_range)', () => {
  it('isolates parent and child writes after fork (COW); both see the pre-fork data', () => {
    const { sim, svc } = setup();
    const parent = svc.createProcess('parent');
    const seen: Record<string, number[]> = {};
    sim.spawn('parent', 0, function* () {
      const a = yield* parent.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      for (let p = 0; p < 4; p++) yield* parent.store(a + p * PAGE_SIZE, 100 + p);
      const c = yield* parent.fork('child');
      if (typeof c === 'number') throw new Error(`fork failed: ${c}`);
      const child: Process = svc.adopt(c);
      yield* parent.store(a, 111);
      yield* child.store(a + PAGE_SIZE, 222);
      const read = function* (proc: Process) {
        const out: number[] = [];
        for (let p = 0; p < 4; p++) out.push(yield* proc.load(a + p * PAGE_SIZE));
        return out;
      };
      seen.parent = yield* read(parent);
      seen.child = yield* read(child);
    });
    runOk(sim);
    expect(seen.parent).toEqual([111, 101, 102, 103]);
    expect(seen.child).toEqual([100, 222, 102, 103]);
    expect(svc.processes.map((p) => p.name)).toEqual(['parent', 'child']);
  });

  it("write-protects the parent's PTEs inside one PROTECTION_PAGE window on the parent, then flushes its TLB", () => {
    const { sim, svc } = setup();
    const parent = svc.createProcess('parent');
    let base = 0;
    let childMm = -1;
    sim.spawn('parent', 0, function* () {
      base = yield* parent.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      for (let p = 0; p < 4; p++) yield* parent.store(base + p * PAGE_SIZE, p + 1);
      const c = yield* parent.fork('child');
      if (typeof c === 'number') throw new Error(`fork failed: ${c}`);
      childMm = c.mm.id;
    });
    runOk(sim);
    const mmId = parent.mm.id;
    const starts = ofType(sim, 'mmn.invalidate_start').filter(
      (e) => e.data.event === 'PROTECTION_PAGE',
    );
    expect(starts).toHaveLength(1);
    const start = starts[0]!;
    expect(start.data).toMatchObject({
      mm: mmId,
      start: base,
      end: base + 4 * PAGE_SIZE,
      blockable: true,
    });
    const end = ofType(sim, 'mmn.invalidate_end').find((e) => e.data.range === start.data.range)!;
    expect(end.seq).toBeGreaterThan(start.seq);
    // Every parent PTE set that drops write lies inside the window; one per page.
    const wrprotects = ofType(sim, 'mm.pte.set').filter(
      (e) => e.data.mm === mmId && writable(e.data.old) && !writable(e.data.pte),
    );
    expect(wrprotects).toHaveLength(4);
    for (const w of wrprotects) {
      expect(w.seq).toBeGreaterThan(start.seq);
      expect(w.seq).toBeLessThan(end.seq);
      expect(ptePfn(w.data.pte)).toBe(ptePfn(w.data.old));
    }
    // The child's PTEs are read-only copies of the same pages.
    const childSets = ofType(sim, 'mm.pte.set').filter((e) => e.data.mm === childMm);
    expect(childSets).toHaveLength(4);
    for (const c of childSets) expect(writable(c.data.pte)).toBe(false);
    // dup_mmap flushes the parent's TLB after the copy loop.
    const flush = ofType(sim, 'mm.tlb.flush').find(
      (e) => e.data.mm === mmId && e.seq > end.seq && e.data.start <= base,
    );
    expect(flush?.data.end).toBeGreaterThanOrEqual(base + 4 * PAGE_SIZE);
  });

  it('copies a pinned page eagerly: the parent keeps the pinned writable page, DMA stays visible to it only', () => {
    const { sim, svc, core } = setup();
    const parent = svc.createProcess('parent');
    const phys = core.phys;
    const r: Record<string, number> = {};
    sim.spawn('parent', 0, function* () {
      const a = yield* parent.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* parent.store(a, 5);
      yield* parent.store(a + PAGE_SIZE, 6);
      const pinned = ptePfn(core.pt.pte(parent.mm, a));
      // FOLL_PIN as pin_user_pages does it: a reference and a pin.
      phys.get(pinned);
      phys.pincount[pinned]!++;
      const c = yield* parent.fork('child');
      if (typeof c === 'number') throw new Error(`fork failed: ${c}`);
      const parentPte = core.pt.pte(parent.mm, a);
      const childPte = core.pt.pte(c.mm, a);
      r.parentPfn = ptePfn(parentPte);
      r.pinned = pinned;
      r.parentWritable = writable(parentPte) ? 1 : 0;
      r.childPfn = ptePfn(childPte);
      r.childContent = yield* c.load(a);
      // The device writes to the pinned page (DMA): the parent sees it, the child does not.
      phys.write(pinned, 0, 77);
      r.parentAfterDma = yield* parent.load(a);
      r.childAfterDma = yield* c.load(a);
      yield* parent.store(a, 88);
      r.parentPfnAfterStore = ptePfn(core.pt.pte(parent.mm, a));
      r.childAfterParentStore = yield* c.load(a);
      // The unpinned page is shared COW as usual.
      r.sharedSame =
        ptePfn(core.pt.pte(c.mm, a + PAGE_SIZE)) === ptePfn(core.pt.pte(parent.mm, a + PAGE_SIZE))
          ? 1
          : 0;
    });
    runOk(sim);
    expect(r.parentPfn).toBe(r.pinned);
    expect(r.parentWritable).toBe(1);
    expect(r.childPfn).not.toBe(r.pinned);
    expect(r.childContent).toBe(5);
    expect(r.parentAfterDma).toBe(77);
    expect(r.childAfterDma).toBe(5);
    expect(r.parentPfnAfterStore).toBe(r.pinned);
    expect(r.childAfterParentStore).toBe(5);
    expect(r.sharedSame).toBe(1);
  });

  it('shares swap entries (swap_duplicate) and both processes read the right data after swap-in', () => {
    const { sim, svc, core } = setup();
    const parent = svc.createProcess('parent');
    const r: Record<string, number> = {};
    sim.spawn('parent', 0, function* () {
      const a = yield* parent.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* parent.store(a, 41);
      yield* parent.store(a + PAGE_SIZE, 42);
      const pfn = ptePfn(core.pt.pte(parent.mm, a));
      r.freed = (yield* reclaimFolio(core, pfn)) ? 1 : 0;
      const swapPte = core.pt.pte(parent.mm, a);
      r.isSwap = pteIsSwap(swapPte) ? 1 : 0;
      const slot = ptePfn(swapPte);
      const c = yield* parent.fork('child');
      if (typeof c === 'number') throw new Error(`fork failed: ${c}`);
      r.childIsSwap = core.pt.pte(c.mm, a) === swapPte ? 1 : 0;
      r.usersAfterFork = core.swap.users(slot);
      r.child = yield* c.load(a);
      r.usersAfterChildIn = core.swap.users(slot);
      r.parent = yield* parent.load(a);
      r.usersAfterParentIn = core.swap.users(slot);
      yield* c.store(a, 50);
      r.parentAfterChildStore = yield* parent.load(a);
      r.childOther = yield* c.load(a + PAGE_SIZE);
    });
    runOk(sim);
    expect(r).toEqual({
      freed: 1,
      isSwap: 1,
      childIsSwap: 1,
      usersAfterFork: 2,
      child: 41,
      usersAfterChildIn: 1,
      parent: 41,
      usersAfterParentIn: 0,
      parentAfterChildStore: 41,
      childOther: 42,
    });
  });

  it('a page shared after fork is swapped out of both mms with one slot of two users', () => {
    const { sim, svc, core } = setup();
    const parent = svc.createProcess('parent');
    const r: Record<string, number> = {};
    sim.spawn('parent', 0, function* () {
      const a = yield* parent.mmap(0, PAGE_SIZE, RW, ANON);
      yield* parent.store(a, 9);
      const c = yield* parent.fork('child');
      if (typeof c === 'number') throw new Error(`fork failed: ${c}`);
      const pfn = ptePfn(core.pt.pte(parent.mm, a));
      r.mapcount = core.phys.mapcount[pfn]!;
      r.freed = (yield* reclaimFolio(core, pfn)) ? 1 : 0;
      const p = core.pt.pte(parent.mm, a);
      r.same = p === core.pt.pte(c.mm, a) && pteIsSwap(p) ? 1 : 0;
      r.users = core.swap.users(ptePfn(p));
      r.parent = yield* parent.load(a);
      r.child = yield* c.load(a);
    });
    runOk(sim);
    expect(r).toEqual({ mapcount: 2, freed: 1, same: 1, users: 2, parent: 9, child: 9 });
  });

  it('does not copy shared file mappings (vma_needs_copy): the child faults them in and shares the page cache', () => {
    const { sim, svc, core } = setup();
    const parent = svc.createProcess('parent');
    const file = svc.newFile('data', 2, new Map([[0, [0, 7]]]));
    const r: Record<string, number> = {};
    sim.spawn('parent', 0, function* () {
      const a = yield* parent.mmap(0, 2 * PAGE_SIZE, RW, Map_.SHARED, file, 0);
      r.before = yield* parent.load(a);
      yield* parent.store(a, 8);
      const c = yield* parent.fork('child');
      if (typeof c === 'number') throw new Error(`fork failed: ${c}`);
      r.childPte = core.pt.pte(c.mm, a);
      r.child = yield* c.load(a);
      yield* c.store(a, 10);
      r.parent = yield* parent.load(a);
    });
    runOk(sim);
    expect(r).toEqual({ before: 7, childPte: 0, child: 8, parent: 10 });
    expect(
      ofType(sim, 'mmn.invalidate_start').filter((e) => e.data.event === 'PROTECTION_PAGE'),
    ).toEqual([]);
  });

  it('copies a migration entry into the child, read-only in both (make_readable_migration_entry); migration then maps both to the new page', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2 });
    const svc = new MmService(
      sim.kernel,
      { totalFrames: 128, gatherMaxPages: 10_000, reclaimBatch: 32 },
      new IpiTlb(sim),
      new MmuNotifiers(sim.kernel),
    );
    const core = svc.core;
    const parent = svc.createProcess('parent');
    const r: Record<string, number> = {};
    let a = 0;
    let child: Process | null = null;
    sim.spawn('migrate', 0, function* () {
      a = yield* parent.mmap(0, PAGE_SIZE, RW, ANON);
      yield* parent.store(a, 600);
      const old = ptePfn(core.pt.pte(parent.mm, a));
      let started = false;
      sim.spawn('fork', 1, function* () {
        started = true;
        for (let i = 0; i < 10_000 && !pteIsMigration(core.pt.pte(parent.mm, a)); i++)
          yield* sim.scheduler.preempt();
        r.forkSawEntry = pteIsMigration(core.pt.pte(parent.mm, a)) ? 1 : 0;
        const c = yield* parent.fork('child');
        if (typeof c === 'number') throw new Error(`fork failed: ${c}`);
        child = c;
      });
      while (!started) yield* sim.scheduler.preempt();
      r.dst = yield* svc.migrate(old);
      while (child === null) yield* sim.scheduler.preempt();
      const c: Process = child;
      const pp = core.pt.pte(parent.mm, a);
      const cp = core.pt.pte(c.mm, a);
      r.bothNew = ptePfn(pp) === r.dst && ptePfn(cp) === r.dst ? 1 : 0;
      r.writable = (writable(pp) ? 1 : 0) + (writable(cp) ? 1 : 0);
      r.mapcount = core.phys.mapcount[r.dst]!;
      yield* c.store(a, 601);
      r.parent = yield* parent.load(a);
      r.child = yield* c.load(a);
    });
    runOk(sim);
    expect(r.forkSawEntry).toBe(1);
    expect(r).toMatchObject({ bothNew: 1, writable: 0, mapcount: 2, parent: 600, child: 601 });
    const childMm = (child as Process | null)!.mm.id;
    const entries = ofType(sim, 'mm.pte.set').filter((e) => pteIsMigration(e.data.pte));
    // The parent's writable entry was made readable, and the child got the readable one.
    expect(
      entries.some(
        (e) => e.data.mm === parent.mm.id && pteIsMigration(e.data.old) && !writable(e.data.pte),
      ),
    ).toBe(true);
    const childEntry = entries.find((e) => e.data.mm === childMm);
    expect(childEntry).toBeDefined();
    expect((childEntry!.data.pte % PAGE_SIZE) & Pte.WRITE).toBe(0);
  });

  it('copies PROT_NONE entries as mapped pages (pte_present): the child gets the data back after mprotect', () => {
    const { sim, svc, core } = setup();
    const parent = svc.createProcess('parent');
    const r: Record<string, number> = {};
    sim.spawn('parent', 0, function* () {
      const a = yield* parent.mmap(0, PAGE_SIZE, RW, ANON);
      yield* parent.store(a, 70);
      const pfn = ptePfn(core.pt.pte(parent.mm, a));
      r.mprotect = yield* parent.mprotect(a, PAGE_SIZE, Prot.NONE);
      const c = yield* parent.fork('child');
      if (typeof c === 'number') throw new Error(`fork failed: ${c}`);
      r.shared = ptePfn(core.pt.pte(c.mm, a)) === pfn ? 1 : 0;
      r.mapcount = core.phys.mapcount[pfn]!;
      r.refcount = core.phys.refcount[pfn]!;
      r.mprotectChild = yield* c.mprotect(a, PAGE_SIZE, RW);
      r.child = yield* c.load(a);
      yield* c.store(a, 71);
      r.mprotectParent = yield* parent.mprotect(a, PAGE_SIZE, Prot.READ);
      r.parent = yield* parent.load(a);
    });
    runOk(sim);
    expect(r).toEqual({
      mprotect: 0,
      shared: 1,
      mapcount: 2,
      refcount: 2,
      mprotectChild: 0,
      child: 70,
      mprotectParent: 0,
      parent: 70,
    });
  });
});
