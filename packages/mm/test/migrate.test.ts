// Migration: notifier-core.md §7 row 10 (try_to_migrate_one: CLEAR window, migration entries,
// flush, copy, remove_migration_ptes); mm/migrate.c migrate_pages, mm/memory.c
// migration_entry_wait.
import { describe, expect, it } from '@jest/globals';
import { Errno, Simulation } from '@mmnsim/core';
import {
  Frame,
  Map_,
  MmService,
  MmuNotifiers,
  PAGE_SIZE,
  Prot,
  pteIsMigration,
  ptePfn,
  ptePresent,
} from '@mmnsim/mm';
import { migrateFolio } from '../src/internal/migrate.js';
import { IpiTlb, ofType, runOk } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

function setup(totalFrames = 256, cpus = 2) {
  const sim = Simulation.create({ seed: 1, cpus });
  const svc = new MmService(
    sim.kernel,
    { totalFrames, gatherMaxPages: 10_000, reclaimBatch: 32 },
    new IpiTlb(sim),
    new MmuNotifiers(sim.kernel),
  );
  return { sim, svc, core: svc.core };
}

describe('migration (notifier-core.md §7 row 10: try_to_migrate / remove_migration_ptes)', () => {
  it('keeps the data of an anonymous page; the old frame is freed and the PTE maps the new one', () => {
    const { sim, svc, core } = setup();
    const proc = svc.createProcess('app');
    const r: Record<string, number> = {};
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      for (let w = 0; w < 20; w++) yield* proc.store(a + w * 4, 500 + w);
      const old = ptePfn(core.pt.pte(proc.mm, a));
      const dst = yield* svc.migrate(old);
      r.moved = dst > 0 && dst !== old ? 1 : 0;
      r.oldFree = core.phys.isFree(old) ? 1 : 0;
      r.pteNew = ptePfn(core.pt.pte(proc.mm, a)) === dst ? 1 : 0;
      r.newMap = core.phys.mapcount[dst]!;
      r.newRef = core.phys.refcount[dst]!;
      r.onLru = core.phys.flags[dst]! & Frame.LRU ? 1 : 0;
      let sum = 0;
      for (let w = 0; w < 20; w++) sum += (yield* proc.load(a + w * 4)) === 500 + w ? 1 : 0;
      r.sameData = sum;
      yield* proc.store(a, 1); // still writable: no COW needed
      r.stillDst = ptePfn(core.pt.pte(proc.mm, a)) === dst ? 1 : 0;
    });
    runOk(sim);
    expect(r).toEqual({
      moved: 1,
      oldFree: 1,
      pteNew: 1,
      newMap: 1,
      newRef: 1,
      onLru: 1,
      sameData: 20,
      stillDst: 1,
    });
    const clears = ofType(sim, 'mmn.invalidate_start').filter((e) => e.data.event === 'CLEAR');
    expect(clears).toHaveLength(1);
    expect(ofType(sim, 'mm.migrate').map((e) => e.data.result)).toEqual(['ok']);
  });

  it('keeps the data of a page-cache page mapped by two processes and replaces the cache entry', () => {
    const { sim, svc, core } = setup();
    const a1 = svc.createProcess('one');
    const a2 = svc.createProcess('two');
    const file = svc.newFile('f', 1, new Map([[0, [3, 33]]]));
    const r: Record<string, number> = {};
    sim.spawn('one', 0, function* () {
      const x = yield* a1.mmap(0, PAGE_SIZE, RW, Map_.SHARED, file, 0);
      const y = yield* a2.mmap(0, PAGE_SIZE, Prot.READ, Map_.PRIVATE, file, 0);
      yield* a1.store(x + 8, 44);
      r.y0 = yield* a2.load(y + 12);
      const old = file.pageCache.get(0)!;
      r.mapBefore = core.phys.mapcount[old]!;
      const dst = yield* migrateFolio(core, old);
      r.cacheNew = file.pageCache.get(0) === dst ? 1 : 0;
      r.oldFree = core.phys.isFree(old) ? 1 : 0;
      r.ref = core.phys.refcount[dst]!; // page cache + two mappings
      r.x = yield* a1.load(x + 8);
      r.y = yield* a2.load(y + 8);
      r.y3 = yield* a2.load(y + 12);
      r.dirty = core.phys.flags[dst]! & Frame.DIRTY ? 1 : 0;
    });
    runOk(sim);
    expect(r).toEqual({
      y0: 33,
      mapBefore: 2,
      cacheNew: 1,
      oldFree: 1,
      ref: 3,
      x: 44,
      y: 44,
      y3: 33,
      dirty: 1,
    });
  });

  it('a fault during migration waits for the folio lock, retries, and reads the new page with the same data', () => {
    const { sim, svc, core } = setup(256, 2);
    const proc = svc.createProcess('app');
    let a = 0;
    let old = -1;
    let dst = -1;
    let seen = -1;
    let sawEntry = false;
    let faulterId = -1;
    sim.spawn('setup+migrate', 0, function* () {
      a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 1234);
      old = ptePfn(core.pt.pte(proc.mm, a));
      let started = false;
      const faulter = sim.spawn('faulter', 1, function* () {
        started = true;
        // Wait until the migration entry is installed, then touch the page.
        for (let i = 0; i < 10_000 && !pteIsMigration(core.pt.pte(proc.mm, a)); i++)
          yield* sim.scheduler.preempt();
        sawEntry = pteIsMigration(core.pt.pte(proc.mm, a));
        seen = yield* proc.load(a);
      });
      faulterId = faulter.id;
      while (!started) yield* sim.scheduler.preempt();
      // The migration's TLB flush takes a scheduling point (IpiTlb) with the migration entry
      // installed and the folio locked: the faulter runs there.
      dst = yield* svc.migrate(old);
    });
    runOk(sim);
    expect(sawEntry).toBe(true);
    expect(dst).toBeGreaterThan(0);
    expect(seen).toBe(1234);
    expect(ptePfn(core.pt.pte(proc.mm, a))).toBe(dst);
    // The faulter's fault hit the migration entry and came back with 'retry' before the
    // migration finished, then its retried access succeeded.
    const faults = ofType(sim, 'mm.fault').filter((e) => e.task === faulterId);
    expect(faults[0]?.data.result).toBe('retry');
    const migrated = ofType(sim, 'mm.migrate')[0]!;
    const blocked = sim.log!.events.find((e) => e.task === faulterId && e.type === 'sched.block');
    expect(blocked).toBeDefined();
    expect(blocked!.seq).toBeLessThan(migrated.seq);
    expect(faults[0]!.seq).toBeGreaterThan(blocked!.seq);
  });

  it('does not migrate a pinned page (-EBUSY), nor a free or kernel frame', () => {
    const { sim, svc, core } = setup();
    const proc = svc.createProcess('app');
    const r: Record<string, number> = {};
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 9);
      const pfn = ptePfn(core.pt.pte(proc.mm, a));
      core.phys.get(pfn);
      core.phys.pincount[pfn]!++;
      r.pinned = yield* svc.migrate(pfn);
      r.still =
        ptePresent(core.pt.pte(proc.mm, a)) && ptePfn(core.pt.pte(proc.mm, a)) === pfn ? 1 : 0;
      r.v = yield* proc.load(a);
      r.free = yield* svc.migrate(core.phys.total - 1);
      r.table = yield* svc.migrate(proc.mm.pgd);
      r.zero = yield* svc.migrate(0);
    });
    runOk(sim);
    expect(r).toEqual({
      pinned: -Errno.EBUSY,
      still: 1,
      v: 9,
      free: -Errno.EBUSY,
      table: -Errno.EBUSY,
      zero: -Errno.EBUSY,
    });
    expect(ofType(sim, 'mm.migrate')[0]!.data.result).toBe('pinned');
  });

  it('gives -EBUSY and restores the PTEs when an unexpected reference appears (folio_ref_freeze fails)', () => {
    const { sim, svc, core } = setup();
    const proc = svc.createProcess('app');
    const r: Record<string, number> = {};
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 17);
      const pfn = ptePfn(core.pt.pte(proc.mm, a));
      core.phys.get(pfn); // a FOLL_GET reference (no pin)
      r.res = yield* svc.migrate(pfn);
      const pte = core.pt.pte(proc.mm, a);
      r.back = ptePresent(pte) && ptePfn(pte) === pfn ? 1 : 0;
      r.v = yield* proc.load(a);
      core.phys.put(pfn);
      r.again = (yield* svc.migrate(pfn)) > 0 ? 1 : 0;
      r.v2 = yield* proc.load(a);
    });
    runOk(sim);
    expect(r).toEqual({ res: -Errno.EBUSY, back: 1, v: 17, again: 1, v2: 17 });
  });
});
