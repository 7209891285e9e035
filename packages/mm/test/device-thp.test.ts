// Device migration of THP memory: mm/migrate_device.c migrate_vma_collect_pmd meets a PMD leaf
// (6.17 locks the folio and split_folio's it, then collects its PTEs one by one; a folio that
// cannot be split is skipped) and migrate_vma_setup refuses hugetlb VMAs (is_vm_hugetlb_page).
import { describe, expect, it } from '@jest/globals';
import { fold, Simulation } from '@mmnsim/core';
import type { SimEventMap } from '@mmnsim/core';
import {
  canSplitFolio,
  Foll,
  Frame,
  hugeLeafAt,
  liveView,
  Map_,
  MADV_HUGEPAGE,
  mmPlugin,
  mmProjection,
  MmService,
  PAGE_SIZE,
  pinUserPages,
  Prot,
  pteIsDevicePrivate,
  ptePfn,
  ptePresent,
  splitFolio,
  splitHugePmd,
  unpinUserPages,
} from '@mmnsim/mm';
import { DevmemDriver } from './fixtures/devmem-driver.js';

const RW = Prot.READ | Prot.WRITE;
const BASE = 0x40000000; // 2 MiB aligned
const PMD_SIZE = 512 * PAGE_SIZE;

function world(hugetlbPages = 0) {
  const sim = Simulation.create({
    seed: 1,
    cpus: 1,
    log: true,
    plugins: [mmPlugin({ totalFrames: 4096, thp: 'madvise', hugetlbPages })],
  });
  const svc = sim.get(MmService);
  const proc = svc.createProcess('app');
  const drv = new DevmemDriver(sim, 'devmem0', 'device-private', 16);
  return { sim, svc, proc, core: svc.core, drv };
}

describe('device migration of huge pages (mm/migrate_device.c: migrate_vma_setup)', () => {
  it('a THP leaf in the range is split first: the migrated part becomes device-private entries, the rest stays system pages, the data intact', () => {
    const { sim, svc, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      expect(yield* proc.mmap(BASE, PMD_SIZE, RW, Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED)).toBe(
        BASE,
      );
      expect(yield* proc.madvise(BASE, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
      for (let i = 0; i < 8; i++) yield* proc.store(BASE + i * PAGE_SIZE, 500 + i);
      yield* drv.bind(proc.mm);
      const r = yield* drv.migrateToDev(proc.mm, BASE, 4);
      expect(r).toBe(0);
      for (let i = 0; i < 8; i++) {
        const pte = core.pt.pte(proc.mm, BASE + i * PAGE_SIZE);
        // The first 4 pages migrated (device-private entries with the data), the rest in place.
        expect(pteIsDevicePrivate(pte)).toBe(i < 4);
        expect(ptePresent(pte)).toBe(i >= 4);
        expect(core.phys.read(ptePfn(pte), 0)).toBe(500 + i);
        expect(yield* proc.load(BASE + i * PAGE_SIZE)).toBe(500 + i);
      }
      yield* drv.unbind();
      yield* proc.munmap(BASE, PMD_SIZE);
    });
    const res = sim.run();
    expect(res.violations).toEqual([]);
    expect(res.reason).toBe('done');
    expect(fold(mmProjection(), sim.log!.events)).toEqual(liveView(svc.core));
  });
});

// mm/migrate_device.c migrate_vma_collect_pmd (6.17): a THP leaf is locked and split_folio'ed
// (mm/huge_memory.c __folio_split), then its PTEs are collected page by page; when
// can_split_folio fails (an extra reference) the range is skipped (migrate_vma_collect_skip).
describe('device migration of THP memory: split_folio and its fallback (migrate_vma_collect_pmd)', () => {
  /** Runs `sim`; no violation, the `mm.thp` ops in order, and the mm projection equals live. */
  function runAndCheck(sim: Simulation, svc: MmService, ops: string[]): void {
    const res = sim.run();
    expect(res.violations).toEqual([]);
    expect(res.reason).toBe('done');
    const seen = sim
      .log!.events.filter((e) => e.type === 'mm.thp')
      .map((e) => (e.data as SimEventMap['mm.thp']).op);
    expect(seen).toEqual(ops);
    expect(fold(mmProjection(), sim.log!.events)).toEqual(liveView(svc.core));
  }

  function thpWorld() {
    const sim = Simulation.create({
      seed: 1,
      cpus: 1,
      log: true,
      plugins: [mmPlugin({ totalFrames: 4096, thp: 'madvise' })],
    });
    const svc = sim.get(MmService);
    const proc = svc.createProcess('app');
    const drv = new DevmemDriver(sim, 'devmem0', 'device-private', 512);
    return { sim, svc, proc, core: svc.core, drv };
  }

  it('a written MADV_HUGEPAGE 2 MiB region migrates to the device 4 KiB page by page and back intact', () => {
    const { sim, svc, proc, core, drv } = thpWorld();
    const phys = core.phys;
    sim.spawn('app', 0, function* () {
      yield* proc.mmap(BASE, PMD_SIZE, RW, Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED);
      expect(yield* proc.madvise(BASE, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
      for (let i = 0; i < 512; i++) yield* proc.store(BASE + i * PAGE_SIZE, 7000 + i);
      const leaf = hugeLeafAt(core, proc.mm, BASE);
      expect(leaf).not.toBe(0); // do_huge_pmd_anonymous_page mapped a PMD leaf
      const head = ptePfn(leaf);
      expect(phys.folioOrder.get(head)).toBe(9);
      yield* drv.bind(proc.mm);
      expect(yield* drv.migrateToDev(proc.mm, BASE, 512)).toBe(0);
      expect(hugeLeafAt(core, proc.mm, BASE)).toBe(0);
      expect(phys.folioOrder.has(head)).toBe(false); // split_folio: 512 order-0 folios
      expect(drv.stats.toDev).toBe(512);
      for (let i = 0; i < 512; i++) {
        const pte = core.pt.pte(proc.mm, BASE + i * PAGE_SIZE);
        expect(pteIsDevicePrivate(pte)).toBe(true);
        expect(drv.pgmap.contains(ptePfn(pte))).toBe(true);
        expect(phys.read(ptePfn(pte), 0)).toBe(7000 + i);
      }
      // The old system pages were freed one by one (no large folio left behind).
      for (let i = 0; i < 512; i++) expect(phys.isFree(head + i)).toBe(true);
      expect(yield* drv.migrateToSys(proc.mm, BASE, 512)).toBe(512);
      for (let i = 0; i < 512; i++) {
        const pte = core.pt.pte(proc.mm, BASE + i * PAGE_SIZE);
        expect(ptePresent(pte)).toBe(true);
        expect(drv.pgmap.contains(ptePfn(pte))).toBe(false);
        expect(yield* proc.load(BASE + i * PAGE_SIZE)).toBe(7000 + i);
      }
      yield* drv.unbind();
      yield* proc.munmap(BASE, PMD_SIZE);
    });
    runAndCheck(sim, svc, ['fault', 'split', 'split-folio']);
  });

  it('splitFolio leaves each page an order-0 folio with refcount = mapcount (+1 for the caller on the head), tails unlocked, on the LRU', () => {
    const { sim, proc, core } = thpWorld();
    const phys = core.phys;
    sim.spawn('app', 0, function* () {
      yield* proc.mmap(BASE, PMD_SIZE, RW, Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED);
      yield* proc.madvise(BASE, PMD_SIZE, MADV_HUGEPAGE);
      yield* proc.store(BASE, 1);
      const head = ptePfn(hugeLeafAt(core, proc.mm, BASE));
      const vma = proc.mm.vmas.find(BASE)!;
      yield* splitHugePmd(core, vma, BASE);
      phys.get(head);
      expect(phys.tryLockFolio(head)).toBe(true);
      expect(canSplitFolio(core, head)).toBe(true);
      expect(splitFolio(core, proc.mm, BASE, head)).toBe(true);
      expect(phys.refcount[head]).toBe(2);
      expect(phys.isLocked(head)).toBe(true);
      for (const i of [1, 255, 511]) {
        expect(phys.refcount[head + i]).toBe(1);
        expect(phys.mapcount[head + i]).toBe(1);
        expect(phys.isLocked(head + i)).toBe(false);
        expect(phys.folioOf(head + i)).toBe(head + i);
        expect(phys.flags[head + i]! & Frame.LRU).toBe(Frame.LRU);
      }
      // A second split of what is now order 0 is refused.
      expect(splitFolio(core, proc.mm, BASE, head)).toBe(false);
      phys.unlockFolio(head);
      phys.put(head);
      yield* proc.munmap(BASE, PMD_SIZE);
    });
    const res = sim.run();
    expect(res.violations).toEqual([]);
    expect(res.reason).toBe('done');
  });

  it('a GUP-pinned THP cannot be split (can_split_folio): nothing is migrated and the leaf stays intact', () => {
    const { sim, svc, proc, core, drv } = thpWorld();
    const phys = core.phys;
    sim.spawn('app', 0, function* () {
      yield* proc.mmap(BASE, PMD_SIZE, RW, Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED);
      yield* proc.madvise(BASE, PMD_SIZE, MADV_HUGEPAGE);
      for (let i = 0; i < 8; i++) yield* proc.store(BASE + i * PAGE_SIZE, 900 + i);
      const leaf = hugeLeafAt(core, proc.mm, BASE);
      const head = ptePfn(leaf);
      const pinned = [0];
      yield* proc.mm.mmapLock.downRead();
      expect(yield* pinUserPages(core, proc.mm, BASE + 3 * PAGE_SIZE, 1, Foll.WRITE, pinned)).toBe(
        1,
      );
      proc.mm.mmapLock.upRead();
      const ref = phys.refcount[head];
      phys.get(head); // can_split_folio counts the caller's reference
      expect(canSplitFolio(core, head)).toBe(false);
      phys.put(head);
      yield* drv.bind(proc.mm);
      expect(yield* drv.migrateToDev(proc.mm, BASE, 64)).toBe(0);
      expect(drv.stats.toDev).toBe(0);
      expect(hugeLeafAt(core, proc.mm, BASE)).toBe(leaf); // not even the PMD was split
      expect(phys.folioOrder.get(head)).toBe(9);
      expect(phys.refcount[head]).toBe(ref);
      expect(phys.isLocked(head)).toBe(false);
      for (let i = 0; i < 8; i++) expect(yield* proc.load(BASE + i * PAGE_SIZE)).toBe(900 + i);
      unpinUserPages(core, pinned);
      yield* drv.unbind();
      yield* proc.munmap(BASE, PMD_SIZE);
    });
    runAndCheck(sim, svc, ['fault', 'zap']);
  });
});
