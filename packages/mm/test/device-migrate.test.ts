// Device memory and migration to and from devices: mm/memremap.c memremap_pages and
// free_zone_device_folio; mm/migrate_device.c migrate_vma_setup (migrate_vma_collect_pmd,
// migrate_device_unmap, migrate_vma_check_page), migrate_vma_pages (migrate_vma_insert_page),
// migrate_vma_finalize, migrate_device_range, migrate_device_coherent_folio; mm/memory.c
// do_swap_page (device-private → migrate_to_ram), zap_nonpresent_ptes, copy_nonpresent_pte;
// mm/gup.c check_and_migrate_movable_pages; mm/hmm.c hmm_vma_handle_pte (dev_private_owner).
import { describe, expect, it } from '@jest/globals';
import { Errno, fold, Mutex } from '@mmnsim/core';
import type { Simulation, TaskGen } from '@mmnsim/core';
import {
  devmapProjection,
  Foll,
  getUserPages,
  HmmPfn,
  hmmRangeFault,
  liveDevmapView,
  liveView,
  Map_,
  memremapPages,
  MigratePfn,
  Mremap,
  migratePfnHas,
  migratePfnToPfn,
  migrateVmaFinalize,
  migrateVmaPages,
  MigrateVmaSelect,
  migrateVmaSetup,
  mmProjection,
  MmuIntervalNotifier,
  MmuNotifierSubsystem,
  PAGE_SIZE,
  pinUserPages,
  Prot,
  pteIsDevicePrivate,
  pteIsMigration,
  pteIsWritableDevicePrivate,
  ptePfn,
  ptePresent,
  putPage,
  TASK_SIZE,
  unpinUserPage,
} from '@mmnsim/mm';
import type { MigrateVma, MmCore, MmStruct, NotifierRange, Process } from '@mmnsim/mm';
import { DevmemDriver } from './fixtures/devmem-driver.js';
import { mmSim, ofType, runOk } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

function world(type: 'device-private' | 'device-coherent' = 'device-private', npages = 16) {
  const { sim, svc, proc } = mmSim({ totalFrames: 512, cpus: 1 });
  const core = svc.core;
  const drv = new DevmemDriver(sim, 'devmem0', type, npages);
  return { sim, svc, proc, core, drv };
}

/** Maps `n` anonymous RW pages and writes `v(i)` at word 0 of page i. */
function* filled(proc: Process, n: number, v = (i: number) => i + 1): TaskGen<number> {
  const a = yield* proc.mmap(0, n * PAGE_SIZE, RW, ANON);
  for (let i = 0; i < n; i++) yield* proc.store(a + i * PAGE_SIZE, v(i));
  return a;
}

/** Every entry mapping a page (present, PROT_NONE, device) counted per frame equals its mapcount. */
function expectMapcounts(core: MmCore, mms: readonly MmStruct[]): void {
  const counts = new Map<number, number>();
  for (const mm of mms) {
    if (mm.exited) continue;
    for (const v of mm.vmas.all)
      for (let va = v.start; va < v.end; va += PAGE_SIZE) {
        const pte = core.pt.pte(mm, va);
        if (pte === 0 || pteIsMigration(pte)) continue;
        if (ptePresent(pte) || pteIsDevicePrivate(pte) || ((pte % PAGE_SIZE) & 0x090) !== 0) {
          const pfn = ptePfn(pte);
          if (pfn !== 0) counts.set(pfn, (counts.get(pfn) ?? 0) + 1);
        }
      }
  }
  for (const [pfn, c] of counts) expect([pfn, core.phys.mapcount[pfn]]).toEqual([pfn, c]);
}

function expectProjections(sim: Simulation, core: MmCore): void {
  expect(fold(mmProjection(), sim.log!.events)).toEqual(liveView(core));
  expect(fold(devmapProjection(), sim.log!.events)).toEqual(liveDevmapView(core));
}

describe('memremap_pages (mm/memremap.c)', () => {
  it('reserves a contiguous run of frames as device pages, free (refcount 0) until the driver takes one', () => {
    const { sim, core, drv } = world();
    const { start, npages } = drv.pgmap;
    expect(npages).toBe(16);
    for (let p = start; p < start + npages; p++) expect(core.phys.refcount[p]).toBe(0);
    expect(ofType(sim, 'mm.devmap.add')[0]!.data).toEqual({
      pgmap: drv.pgmap.id,
      type: 'device-private',
      name: 'devmem0',
      start,
      npages,
    });
    expectProjections(sim, core);
  });

  it('refuses what the kernel WARNs on: device-private without migrate_to_ram, no owner, no page_free, a bad count or type (-EINVAL)', () => {
    const { core } = world();
    const pageFree = (): void => {};
    expect(
      memremapPages(core, { type: 'device-private', npages: 4, owner: 1, ops: { pageFree } }),
    ).toBe(-Errno.EINVAL);
    expect(
      memremapPages(core, { type: 'device-coherent', npages: 4, owner: null, ops: { pageFree } }),
    ).toBe(-Errno.EINVAL);
    expect(
      memremapPages(core, { type: 'device-coherent', npages: 4, owner: 1, ops: {} as never }),
    ).toBe(-Errno.EINVAL);
    expect(
      memremapPages(core, { type: 'device-coherent', npages: 0.5, owner: 1, ops: { pageFree } }),
    ).toBe(-Errno.EINVAL);
    expect(
      memremapPages(core, { type: 'zone-dma' as never, npages: 4, owner: 1, ops: { pageFree } }),
    ).toBe(-Errno.EINVAL);
    expect(
      memremapPages(core, {
        type: 'device-coherent',
        npages: 100_000,
        owner: 1,
        ops: { pageFree },
      }),
    ).toBe(-Errno.EINVAL);
  });
});

describe('migrate_vma_* to device-private memory and back (mm/migrate_device.c)', () => {
  it('sys → dev: each PTE becomes a writable device-private entry of a device page holding the data; the system pages are freed; the MIGRATE window carries the owner', () => {
    const { sim, proc, core, drv } = world();
    const owners: unknown[] = [];
    const mmn = sim.get(MmuNotifierSubsystem);
    const lock = new Mutex(sim.kernel, 'watcher->lock');
    const watcher = new MmuIntervalNotifier({
      name: 'watcher',
      *invalidate(s, range: NotifierRange, seq) {
        yield* lock.lock();
        if (range.event === 'MIGRATE') owners.push(range.owner);
        mmn.setSeq(s, seq);
        lock.unlock();
        return true;
      },
    });
    sim.spawn('app', 0, function* () {
      const a = yield* filled(proc, 4);
      const before = [0, 1, 2, 3].map((i) => ptePfn(core.pt.pte(proc.mm, a + i * PAGE_SIZE)));
      yield* mmn.intervalInsert(watcher, proc.mm, 0, TASK_SIZE);
      yield* drv.bind(proc.mm);
      expect(yield* drv.migrateToDev(proc.mm, a, 4)).toBe(0);
      for (let i = 0; i < 4; i++) {
        const pte = core.pt.pte(proc.mm, a + i * PAGE_SIZE);
        expect(pteIsWritableDevicePrivate(pte)).toBe(true);
        const pfn = ptePfn(pte);
        expect(drv.pgmap.contains(pfn)).toBe(true);
        expect(core.phys.read(pfn, 0)).toBe(i + 1);
        expect(core.phys.mapcount[pfn]).toBe(1);
        expect(core.phys.refcount[pfn]).toBe(1);
        expect(drv.pt.get(a + i * PAGE_SIZE)).toBe(pfn);
        expect(core.phys.isFree(before[i]!)).toBe(true);
      }
      expect(owners.length).toBeGreaterThan(0);
      expect(owners.every((o) => o === drv)).toBe(true);
      expect(drv.stats.skippedOwn).toBeGreaterThan(0);
      yield* mmn.intervalRemove(watcher);
      yield* drv.unbind();
    });
    runOk(sim);
    const setup = ofType(sim, 'mm.migrate_device').filter((e) => e.data.op === 'setup');
    expect(setup[0]!.data).toMatchObject({ npages: 4, migrating: 4 });
    expectProjections(sim, core);
  });

  it('a CPU access to a device-private page calls migrate_to_ram for that page only; page_free returns the device page', () => {
    const { sim, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      const a = yield* filled(proc, 3);
      yield* drv.bind(proc.mm);
      yield* drv.migrateToDev(proc.mm, a, 3);
      const dev1 = ptePfn(core.pt.pte(proc.mm, a + PAGE_SIZE));
      expect(yield* proc.load(a + PAGE_SIZE)).toBe(2);
      const pte = core.pt.pte(proc.mm, a + PAGE_SIZE);
      expect(ptePresent(pte)).toBe(true);
      expect(drv.pgmap.contains(ptePfn(pte))).toBe(false);
      expect(core.phys.refcount[dev1]).toBe(0); // page_free ran
      expect(drv.free).toContain(dev1);
      expect(drv.pt.has(a + PAGE_SIZE)).toBe(false);
      expect(pteIsDevicePrivate(core.pt.pte(proc.mm, a))).toBe(true); // the neighbours stay
      expect(pteIsDevicePrivate(core.pt.pte(proc.mm, a + 2 * PAGE_SIZE))).toBe(true);
      expect(yield* proc.store(a + 2 * PAGE_SIZE, 77)).toBe(0); // a write fault does the same
      expect(yield* proc.load(a + 2 * PAGE_SIZE)).toBe(77);
      expect(drv.stats.toRam).toBe(2);
      yield* drv.unbind();
    });
    runOk(sim);
    const faults = ofType(sim, 'mm.device.fault');
    expect(faults.map((f) => f.data.result)).toEqual(['ok', 'ok']);
    expect(ofType(sim, 'mm.device.free').length).toBe(2);
    expectProjections(sim, core);
  });

  it('empty anonymous PTEs and the zero page are collected without a page and populated (migrate_vma_insert_page)', () => {
    const { sim, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      expect(yield* proc.load(a)).toBe(0); // page 0: the zero page; page 1: nothing
      yield* drv.bind(proc.mm);
      expect(yield* drv.migrateToDev(proc.mm, a, 2)).toBe(0);
      for (let i = 0; i < 2; i++)
        expect(pteIsWritableDevicePrivate(core.pt.pte(proc.mm, a + i * PAGE_SIZE))).toBe(true);
      expect(yield* proc.load(a + PAGE_SIZE)).toBe(0);
      yield* drv.unbind();
    });
    runOk(sim);
    expectProjections(sim, core);
  });

  it('dev → sys (MIGRATE_TO_SYS) moves every page back; migrate_device_range (RELEASE) evicts what is left and memunmap_pages succeeds', () => {
    const { sim, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      const a = yield* filled(proc, 4, (i) => 10 * i + 3);
      yield* drv.bind(proc.mm);
      yield* drv.migrateToDev(proc.mm, a, 4);
      expect(yield* drv.migrateToSys(proc.mm, a, 2)).toBe(2);
      expect(ptePresent(core.pt.pte(proc.mm, a))).toBe(true);
      expect(pteIsDevicePrivate(core.pt.pte(proc.mm, a + 2 * PAGE_SIZE))).toBe(true);
      expect(yield* drv.release()).toBe(0);
      expect(drv.pgmap.live).toBe(false);
      for (let i = 0; i < 4; i++) {
        expect(ptePresent(core.pt.pte(proc.mm, a + i * PAGE_SIZE))).toBe(true);
        expect(yield* proc.load(a + i * PAGE_SIZE)).toBe(10 * i + 3);
      }
      expect(drv.stats.toRam).toBe(0);
      yield* drv.unbind();
    });
    runOk(sim);
    expect(ofType(sim, 'mm.devmap.remove').length).toBe(1);
    expectProjections(sim, core);
  });

  it('munmap of device-private entries drops the device pages (zap_nonpresent_ptes → page_free)', () => {
    const { sim, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      const a = yield* filled(proc, 4);
      yield* drv.bind(proc.mm);
      yield* drv.migrateToDev(proc.mm, a, 4);
      expect(drv.free.length).toBe(12);
      expect(yield* proc.munmap(a, 4 * PAGE_SIZE)).toBe(0);
      expect(drv.free.length).toBe(16);
      expect(drv.pt.size).toBe(0);
      yield* drv.unbind();
    });
    runOk(sim);
    expectProjections(sim, core);
  });

  it('fork shares device-private pages read-only; a CPU write in the child migrates the page to RAM for both, then COW gives the child its own copy (copy_nonpresent_pte, do_swap_page, do_wp_page)', () => {
    const { sim, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      const a = yield* filled(proc, 2);
      yield* drv.bind(proc.mm);
      yield* drv.migrateToDev(proc.mm, a, 2);
      const dev0 = ptePfn(core.pt.pte(proc.mm, a));
      const child = yield* proc.fork('child');
      if (typeof child === 'number') throw new Error('fork');
      for (const mm of [proc.mm, child.mm]) {
        const pte = core.pt.pte(mm, a);
        expect(pteIsDevicePrivate(pte) && !pteIsWritableDevicePrivate(pte)).toBe(true);
        expect(ptePfn(pte)).toBe(dev0);
      }
      expect(core.phys.mapcount[dev0]).toBe(2);
      expect(yield* child.store(a, 99)).toBe(0);
      expect(yield* child.load(a)).toBe(99);
      const pp = core.pt.pte(proc.mm, a);
      expect(ptePresent(pp)).toBe(true); // migrated back for the parent too (try_to_migrate)
      expect(yield* proc.load(a)).toBe(1);
      expect(core.phys.refcount[dev0]).toBe(0);
      expectMapcounts(core, [proc.mm, child.mm]);
      yield* child.exit();
      yield* drv.unbind();
    });
    runOk(sim);
    expectProjections(sim, core);
  });
});

describe('pages migrate_vma_setup does not migrate (migrate_vma_collect_pmd, migrate_vma_check_page)', () => {
  function* setupOnly(
    core: MmCore,
    proc: Process,
    a: number,
    n: number,
    drv: DevmemDriver,
    flags: number = MigrateVmaSelect.SYSTEM,
  ): TaskGen<MigrateVma | number> {
    const args: MigrateVma = {
      vma: proc.mm.vmas.find(a) ?? null,
      start: a,
      end: a + n * PAGE_SIZE,
      src: new Array<number>(n).fill(0),
      dst: new Array<number>(n).fill(0),
      cpages: 0,
      npages: 0,
      pgmapOwner: drv,
      flags,
    };
    const r = yield* migrateVmaSetup(core, args);
    return r === 0 ? args : r;
  }

  it('a pinned page is left mapped (0 in src); a page with an extra GUP reference is restored after unmap', () => {
    const { sim, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      const a = yield* filled(proc, 2);
      const pinned = [0];
      const got = [0];
      yield* proc.mm.mmapLock.downRead();
      expect(yield* pinUserPages(core, proc.mm, a, 1, Foll.WRITE, pinned)).toBe(1);
      expect(yield* getUserPages(core, proc.mm, a + PAGE_SIZE, 1, 0, got)).toBe(1);
      const ptes = [core.pt.pte(proc.mm, a), core.pt.pte(proc.mm, a + PAGE_SIZE)];
      const args = yield* setupOnly(core, proc, a, 2, drv);
      if (typeof args === 'number') throw new Error('setup');
      expect(args.src).toEqual([0, 0]);
      expect(args.cpages).toBe(0);
      // Both are mapped by present PTEs to the same frames again (the second one through
      // remove_migration_ptes, which builds an old PTE).
      for (let i = 0; i < 2; i++) {
        const pte = core.pt.pte(proc.mm, a + i * PAGE_SIZE);
        expect(ptePresent(pte)).toBe(true);
        expect(ptePfn(pte)).toBe(ptePfn(ptes[i]!));
      }
      yield* migrateVmaPages(core, args);
      yield* migrateVmaFinalize(core, args);
      proc.mm.mmapLock.upRead();
      unpinUserPage(core, pinned[0]!);
      putPage(core, got[0]!);
      expect(core.phys.refcount[ptePfn(ptes[0]!)]).toBe(1);
      expect(core.phys.refcount[ptePfn(ptes[1]!)]).toBe(1);
    });
    runOk(sim);
    expectProjections(sim, core);
  });

  it('MAP_SHARED anonymous memory (shmem) is not collected: MIGRATE_TO_DEV maps nothing', () => {
    const { sim, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, Map_.SHARED | Map_.ANONYMOUS);
      yield* proc.store(a, 5); // page 0 in the page cache, page 1 never touched
      yield* drv.bind(proc.mm);
      expect(yield* drv.migrateToDev(proc.mm, a, 2)).toBe(0);
      expect(drv.pt.size).toBe(0);
      expect(ptePresent(core.pt.pte(proc.mm, a))).toBe(true);
      expect(yield* proc.load(a)).toBe(5);
      yield* drv.unbind();
    });
    runOk(sim);
    expectProjections(sim, core);
  });

  it('bad input: no VMA (a range that is not mapped), a range outside the VMA, short arrays, unknown flags → -EINVAL with nothing changed; a PROT_NONE VMA → the driver refuses it (-EINVAL)', () => {
    const { sim, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      const a = yield* filled(proc, 2);
      yield* proc.mm.mmapLock.downRead();
      const vma = proc.mm.vmas.find(a)!;
      const mk = (over: Partial<MigrateVma>): MigrateVma => ({
        vma,
        start: a,
        end: a + 2 * PAGE_SIZE,
        src: [0, 0],
        dst: [0, 0],
        cpages: 0,
        npages: 0,
        pgmapOwner: drv,
        flags: MigrateVmaSelect.SYSTEM,
        ...over,
      });
      expect(yield* migrateVmaSetup(core, mk({ vma: null }))).toBe(-Errno.EINVAL);
      expect(
        yield* migrateVmaSetup(
          core,
          mk({ end: a + 3 * PAGE_SIZE, src: [0, 0, 0], dst: [0, 0, 0] }),
        ),
      ).toBe(-Errno.EINVAL);
      expect(yield* migrateVmaSetup(core, mk({ start: a + PAGE_SIZE, end: a + PAGE_SIZE }))).toBe(
        -Errno.EINVAL,
      );
      expect(yield* migrateVmaSetup(core, mk({ src: [0] }))).toBe(-Errno.EINVAL);
      expect(yield* migrateVmaSetup(core, mk({ flags: 64 }))).toBe(-Errno.EINVAL);
      expect(yield* migrateVmaSetup(core, mk({ start: Number.NaN }))).toBe(-Errno.EINVAL);
      expect(yield* migrateVmaSetup(core, mk({ faultPage: 5 }))).toBe(-Errno.EINVAL);
      proc.mm.mmapLock.upRead();
      expect(ptePresent(core.pt.pte(proc.mm, a))).toBe(true);
      // The driver's MIGRATE_TO_DEV over an unmapped hole and over PROT_NONE memory.
      yield* drv.bind(proc.mm);
      expect(yield* drv.migrateToDev(proc.mm, a + 16 * PAGE_SIZE, 1)).toBe(-Errno.EINVAL);
      yield* proc.mprotect(a, 2 * PAGE_SIZE, Prot.NONE);
      expect(yield* drv.migrateToDev(proc.mm, a, 2)).toBe(-Errno.EINVAL);
      yield* drv.unbind();
    });
    runOk(sim);
    expect(ofType(sim, 'mmn.invalidate_start').filter((e) => e.data.event === 'MIGRATE')).toEqual(
      [],
    );
  });

  it('pages of another owner are not selected; device-private pages are not selected by SELECT_SYSTEM', () => {
    const { sim, proc, core, drv } = world();
    const other = new DevmemDriver(sim, 'devmem1', 'device-private', 4);
    sim.spawn('app', 0, function* () {
      const a = yield* filled(proc, 1);
      yield* drv.bind(proc.mm);
      yield* other.bind(proc.mm);
      yield* drv.migrateToDev(proc.mm, a, 1);
      yield* proc.mm.mmapLock.downRead();
      const sys = yield* setupOnly(core, proc, a, 1, drv, MigrateVmaSelect.SYSTEM);
      const foreign = yield* setupOnly(core, proc, a, 1, other, MigrateVmaSelect.DEVICE_PRIVATE);
      const own = yield* setupOnly(core, proc, a, 1, drv, MigrateVmaSelect.DEVICE_PRIVATE);
      if (typeof sys === 'number' || typeof foreign === 'number' || typeof own === 'number')
        throw new Error('setup');
      expect(sys.src).toEqual([0]);
      expect(foreign.src).toEqual([0]);
      expect(migratePfnHas(own.src[0]!, MigratePfn.MIGRATE)).toBe(true);
      expect(migratePfnHas(own.src[0]!, MigratePfn.WRITE)).toBe(true);
      expect(pteIsMigration(core.pt.pte(proc.mm, a))).toBe(true);
      // No destination: migrate_vma_pages clears MIGRATE, finalize restores the entry.
      yield* migrateVmaPages(core, own);
      expect(migratePfnHas(own.src[0]!, MigratePfn.MIGRATE)).toBe(false);
      yield* migrateVmaFinalize(core, own);
      for (const x of [sys, foreign]) {
        yield* migrateVmaPages(core, x);
        yield* migrateVmaFinalize(core, x);
      }
      proc.mm.mmapLock.upRead();
      const pte = core.pt.pte(proc.mm, a);
      expect(pteIsWritableDevicePrivate(pte)).toBe(true);
      expect(ptePfn(pte)).toBe(migratePfnToPfn(own.src[0]! + 0));
      yield* drv.unbind();
      yield* other.unbind();
    });
    runOk(sim);
    expectProjections(sim, core);
  });
});

describe('hmm_range_fault and device-private pages (mm/hmm.c hmm_vma_handle_pte)', () => {
  it('reports the pages of dev_private_owner as pfn | VALID | WRITE and faults those of another owner back to RAM', () => {
    const { sim, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      const a = yield* filled(proc, 2);
      yield* drv.bind(proc.mm);
      yield* drv.migrateToDev(proc.mm, a, 2);
      const dev = ptePfn(core.pt.pte(proc.mm, a));
      yield* proc.mm.mmapLock.downRead();
      const mine = [0, 0];
      expect(
        yield* hmmRangeFault(core, {
          mm: proc.mm,
          notifierSeqChanged: () => false,
          start: a,
          end: a + 2 * PAGE_SIZE,
          hmmPfns: mine,
          defaultFlags: HmmPfn.REQ_FAULT,
          pfnFlagsMask: 0,
          devPrivateOwner: drv,
        }),
      ).toBe(0);
      expect(mine[0]).toBe(dev + HmmPfn.VALID + HmmPfn.WRITE);
      const theirs = [0, 0];
      expect(
        yield* hmmRangeFault(core, {
          mm: proc.mm,
          notifierSeqChanged: () => false,
          start: a,
          end: a + 2 * PAGE_SIZE,
          hmmPfns: theirs,
          defaultFlags: HmmPfn.REQ_FAULT,
          pfnFlagsMask: 0,
          devPrivateOwner: 'someone else',
        }),
      ).toBe(0);
      proc.mm.mmapLock.upRead();
      expect(drv.stats.toRam).toBe(2);
      expect(core.phys.read(theirs[0]! % 2 ** 45, 0)).toBe(1);
      expect(ptePresent(core.pt.pte(proc.mm, a))).toBe(true);
      yield* drv.unbind();
    });
    runOk(sim);
  });
});

describe('device-coherent memory (MEMORY_DEVICE_COHERENT) and FOLL_LONGTERM (mm/gup.c)', () => {
  it('coherent pages are mapped by present PTEs the CPU uses directly; a long-term pin migrates them to system memory first, a short-term pin does not', () => {
    const { sim, proc, core, drv } = world('device-coherent');
    sim.spawn('app', 0, function* () {
      const a = yield* filled(proc, 2);
      yield* drv.bind(proc.mm);
      yield* drv.migrateToDev(proc.mm, a, 2);
      const c0 = ptePfn(core.pt.pte(proc.mm, a));
      expect(ptePresent(core.pt.pte(proc.mm, a))).toBe(true);
      expect(drv.pgmap.contains(c0)).toBe(true);
      expect(yield* proc.load(a)).toBe(1); // no fault: CPU-addressable
      expect(drv.stats.toRam).toBe(0);
      yield* proc.mm.mmapLock.downRead();
      const short = [0];
      expect(yield* pinUserPages(core, proc.mm, a + PAGE_SIZE, 1, 0, short)).toBe(1);
      expect(drv.pgmap.contains(short[0]!)).toBe(true);
      unpinUserPage(core, short[0]!);
      const long = [0];
      expect(yield* pinUserPages(core, proc.mm, a, 1, Foll.LONGTERM, long)).toBe(1);
      proc.mm.mmapLock.upRead();
      expect(drv.pgmap.contains(long[0]!)).toBe(false);
      expect(core.phys.pincount[long[0]!]).toBe(1);
      expect(ptePfn(core.pt.pte(proc.mm, a))).toBe(long[0]);
      expect(core.phys.read(long[0]!, 0)).toBe(1);
      expect(core.phys.refcount[c0]).toBe(0);
      unpinUserPage(core, long[0]!);
      // MIGRATE_TO_SYS with SELECT_DEVICE_COHERENT moves the other one.
      expect(yield* drv.migrateToSys(proc.mm, a, 2)).toBe(1);
      expect(drv.pgmap.contains(ptePfn(core.pt.pte(proc.mm, a + PAGE_SIZE)))).toBe(false);
      yield* drv.unbind();
    });
    runOk(sim);
    expectProjections(sim, core);
  });

  it('a long-term pin of a device-private page faults it back to RAM and pins the system page', () => {
    const { sim, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      const a = yield* filled(proc, 1);
      yield* drv.bind(proc.mm);
      yield* drv.migrateToDev(proc.mm, a, 1);
      yield* proc.mm.mmapLock.downRead();
      const p = [0];
      expect(yield* pinUserPages(core, proc.mm, a, 1, Foll.LONGTERM | Foll.WRITE, p)).toBe(1);
      proc.mm.mmapLock.upRead();
      expect(drv.pgmap.contains(p[0]!)).toBe(false);
      expect(drv.stats.toRam).toBe(1);
      unpinUserPage(core, p[0]!);
      yield* drv.unbind();
    });
    runOk(sim);
  });
});

describe('mremap(MREMAP_DONTUNMAP) with device-private pages (mm/mremap.c move_vma)', () => {
  it('moves the device-private entries to the new range; the old range stays mapped and empty; the pages fault back from the new address', () => {
    const { sim, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      const a = yield* filled(proc, 2);
      yield* drv.bind(proc.mm);
      yield* drv.migrateToDev(proc.mm, a, 2);
      const dev = ptePfn(core.pt.pte(proc.mm, a));
      const b = yield* proc.mremap(
        a,
        2 * PAGE_SIZE,
        2 * PAGE_SIZE,
        Mremap.MAYMOVE | Mremap.DONTUNMAP,
      );
      expect(b).toBeGreaterThan(0);
      expect(b).not.toBe(a);
      expect(proc.mm.vmas.find(a)).toBeDefined();
      expect(core.pt.pte(proc.mm, a)).toBe(0);
      expect(ptePfn(core.pt.pte(proc.mm, b))).toBe(dev);
      expect(pteIsDevicePrivate(core.pt.pte(proc.mm, b))).toBe(true);
      expect(yield* proc.load(a)).toBe(0); // a fresh page
      expect(yield* proc.load(b + PAGE_SIZE)).toBe(2); // migrate_to_ram at the new address
      expect(yield* proc.load(b)).toBe(1);
      expectMapcounts(core, [proc.mm]);
      yield* drv.unbind();
    });
    runOk(sim);
    expectProjections(sim, core);
  });
});
