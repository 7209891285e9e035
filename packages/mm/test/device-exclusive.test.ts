// Device-exclusive entries (mm/rmap.c make_device_exclusive; mm/memory.c do_swap_page →
// remove_device_exclusive_entry, copy_nonpresent_pte → try_restore_exclusive_pte,
// zap_nonpresent_ptes), /proc/self/pagemap (fs/proc/task_mmu.c pte_to_pagemap_entry) and
// pread/pwrite on a tmpfile mapped shared (what hmm-tests file_read / file_write do).
import { describe, expect, it } from '@jest/globals';
import { Errno, fold, Mutex } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import {
  decodePagemap,
  filePread,
  filePwrite,
  liveView,
  makeDeviceExclusive,
  Map_,
  mmProjection,
  MmuIntervalNotifier,
  MmuNotifierSubsystem,
  PAGE_SIZE,
  PagemapBits,
  pagemapRead,
  Prot,
  pteIsDeviceExclusive,
  ptePfn,
  ptePresent,
  SwpType,
  TASK_SIZE,
} from '@mmnsim/mm';
import type { MmStruct, NotifierRange, Process } from '@mmnsim/mm';
import { DevmemDriver } from './fixtures/devmem-driver.js';
import { pteWritable } from '../src/internal/fault.js';
import { mmSim, ofType, runOk } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

/** An interval subscriber that records (event, owner) of every invalidation of `mm`. */
function recorder(sim: ReturnType<typeof mmSim>['sim']) {
  const mmn = sim.get(MmuNotifierSubsystem);
  const lock = new Mutex(sim.kernel, 'recorder->lock');
  const seen: { event: string; owner: unknown; start: number }[] = [];
  const sub = new MmuIntervalNotifier({
    name: 'recorder',
    *invalidate(s, range: NotifierRange, seq) {
      yield* lock.lock();
      seen.push({ event: range.event, owner: range.owner, start: range.start });
      mmn.setSeq(s, seq);
      lock.unlock();
      return true;
    },
  });
  return {
    seen,
    *bind(mm: MmStruct): TaskGen<void> {
      yield* mmn.intervalInsert(sub, mm, 0, TASK_SIZE);
    },
    *unbind(): TaskGen<void> {
      yield* mmn.intervalRemove(sub);
    },
  };
}

function* exclusive(
  proc: Process,
  va: number,
  owner: unknown,
  core: ReturnType<typeof mmSim>['svc']['core'],
): TaskGen<number> {
  yield* proc.mm.mmapLock.downRead();
  const r = yield* makeDeviceExclusive(core, proc.mm, va, owner);
  proc.mm.mmapLock.upRead();
  if (r > 0) {
    core.phys.unlockFolio(r);
    core.phys.put(r);
  }
  return r;
}

describe('make_device_exclusive (mm/rmap.c)', () => {
  it('replaces the writable PTE by a device-exclusive entry under an EXCLUSIVE window with the owner; the page keeps its mapcount and the mapping reference; the page comes back locked and referenced', () => {
    const { sim, svc, proc } = mmSim({ totalFrames: 256 });
    const core = svc.core;
    const rec = recorder(sim);
    const owner = { device: 'gpu0' };
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 41);
      const pfn = ptePfn(core.pt.pte(proc.mm, a));
      yield* rec.bind(proc.mm);
      yield* proc.mm.mmapLock.downRead();
      const r = yield* makeDeviceExclusive(core, proc.mm, a + 8, owner);
      proc.mm.mmapLock.upRead();
      expect(r).toBe(pfn);
      expect(core.phys.isLocked(pfn)).toBe(true);
      expect(core.phys.refcount[pfn]).toBe(2); // the mapping's + the caller's
      expect(core.phys.mapcount[pfn]).toBe(1);
      core.phys.unlockFolio(pfn);
      core.phys.put(pfn);
      expect(pteIsDeviceExclusive(core.pt.pte(proc.mm, a))).toBe(true);
      expect(rec.seen).toEqual([{ event: 'EXCLUSIVE', owner, start: a }]);
      // Any CPU access revokes it: EXCLUSIVE with no owner, then a present writable PTE.
      expect(yield* proc.load(a)).toBe(41);
      expect(rec.seen[1]).toEqual({ event: 'EXCLUSIVE', owner: null, start: a });
      const pte = core.pt.pte(proc.mm, a);
      expect(ptePresent(pte) && pteWritable(pte) && ptePfn(pte) === pfn).toBe(true);
      yield* rec.unbind();
    });
    runOk(sim);
    expect(ofType(sim, 'mm.device_exclusive.restore').map((e) => e.data.why)).toEqual(['fault']);
    expect(fold(mmProjection(), sim.log!.events)).toEqual(liveView(core));
  });

  it('bad input: a read-only mapping gives -EFAULT (the FOLL_WRITE GUP fails), a file page -EOPNOTSUPP, a hole -EFAULT; nothing changes', () => {
    const { sim, svc, proc } = mmSim({ totalFrames: 256 });
    const core = svc.core;
    sim.spawn('app', 0, function* () {
      const ro = yield* proc.mmap(0, PAGE_SIZE, Prot.READ, ANON);
      expect(yield* proc.load(ro)).toBe(0);
      const before = core.pt.pte(proc.mm, ro);
      expect(yield* exclusive(proc, ro, 1, core)).toBe(-Errno.EFAULT);
      expect(core.pt.pte(proc.mm, ro)).toBe(before);
      const f = svc.newFile('f', 1);
      const shared = yield* proc.mmap(0, PAGE_SIZE, RW, Map_.SHARED, f, 0);
      expect(yield* exclusive(proc, shared, 1, core)).toBe(-Errno.EOPNOTSUPP);
      expect(yield* exclusive(proc, 0x7000_0000, 1, core)).toBe(-Errno.EFAULT);
      expect(yield* exclusive(proc, -4096, 1, core)).toBe(-Errno.EINVAL);
    });
    runOk(sim);
  });

  it('fork restores the entry in the parent (inside its PROTECTION_PAGE window) and then shares the page COW', () => {
    const { sim, svc, proc } = mmSim({ totalFrames: 256 });
    const core = svc.core;
    const rec = recorder(sim);
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 7);
      const pfn = ptePfn(core.pt.pte(proc.mm, a));
      expect(yield* exclusive(proc, a, 'dev', core)).toBe(pfn);
      yield* rec.bind(proc.mm);
      const child = yield* proc.fork('child');
      if (typeof child === 'number') throw new Error('fork');
      expect(rec.seen.map((s) => s.event)).toEqual(['PROTECTION_PAGE']);
      for (const mm of [proc.mm, child.mm]) {
        const pte = core.pt.pte(mm, a);
        expect(ptePresent(pte) && !pteWritable(pte) && ptePfn(pte) === pfn).toBe(true);
      }
      expect(core.phys.mapcount[pfn]).toBe(2);
      expect(yield* child.store(a, 8)).toBe(0);
      expect(yield* proc.load(a)).toBe(7);
      yield* child.exit();
      yield* rec.unbind();
    });
    runOk(sim);
    expect(ofType(sim, 'mm.device_exclusive.restore').map((e) => e.data.why)).toEqual(['fork']);
  });

  it('munmap of a device-exclusive entry drops the mapping and frees the page; EXCLUSIVE through the dmirror-like driver', () => {
    const { sim, svc, proc } = mmSim({ totalFrames: 256 });
    const core = svc.core;
    const drv = new DevmemDriver(sim, 'devmem0', 'device-private', 4);
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 1);
      yield* drv.bind(proc.mm);
      expect(yield* drv.exclusive(proc.mm, a, 2)).toBe(0); // page 1 is faulted in writable
      const pfns = [0, 1].map((i) => ptePfn(core.pt.pte(proc.mm, a + i * PAGE_SIZE)));
      expect(
        pfns.every(
          (p, i) => pteIsDeviceExclusive(core.pt.pte(proc.mm, a + i * PAGE_SIZE)) && p > 0,
        ),
      ).toBe(true);
      expect(drv.pt.size).toBe(2);
      expect(yield* proc.munmap(a, 2 * PAGE_SIZE)).toBe(0);
      expect(drv.pt.size).toBe(0);
      for (const p of pfns) expect(core.phys.isFree(p)).toBe(true);
      yield* drv.unbind();
    });
    runOk(sim);
    expect(fold(mmProjection(), sim.log!.events)).toEqual(liveView(core));
  });
});

describe('/proc/self/pagemap (fs/proc/task_mmu.c pagemap_read)', () => {
  it('present (pfn, exclusive, file), swap-type entries for migration-free device-private and device-exclusive pages, 0 for holes; pfns hidden without CAP_SYS_ADMIN', () => {
    const { sim, svc, proc } = mmSim({ totalFrames: 256 });
    const core = svc.core;
    const drv = new DevmemDriver(sim, 'devmem0', 'device-private', 4);
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 5 * PAGE_SIZE, RW, ANON);
      for (let i = 0; i < 3; i++) yield* proc.store(a + i * PAGE_SIZE, i + 1);
      yield* proc.load(a + 3 * PAGE_SIZE); // the zero page
      yield* drv.bind(proc.mm);
      yield* drv.migrateToDev(proc.mm, a + PAGE_SIZE, 1);
      expect(yield* drv.exclusive(proc.mm, a + 2 * PAGE_SIZE, 1)).toBe(0);
      const f = svc.newFile('f', 1);
      const fm = yield* proc.mmap(0, PAGE_SIZE, Prot.READ, Map_.SHARED, f, 0);
      yield* proc.load(fm);
      const pm = yield* pagemapRead(core, proc.mm, a, 5);
      if (typeof pm === 'number') throw new Error('pagemap');
      const e = pm.map(decodePagemap);
      expect(e[0]).toMatchObject({
        present: true,
        swap: false,
        exclusive: true,
        file: false,
        pfn: ptePfn(core.pt.pte(proc.mm, a)),
      });
      const dev = ptePfn(core.pt.pte(proc.mm, a + PAGE_SIZE));
      expect(e[1]).toMatchObject({
        present: false,
        swap: true,
        swapType: SwpType.DEVICE_WRITE,
        swapOffset: dev,
      });
      expect(e[2]).toMatchObject({
        swap: true,
        swapType: SwpType.DEVICE_EXCLUSIVE,
        swapOffset: ptePfn(core.pt.pte(proc.mm, a + 2 * PAGE_SIZE)),
      });
      expect(e[3]).toMatchObject({ present: true, pfn: 0, exclusive: false, file: false });
      expect(pm[4]).toBe(0n);
      const fe = yield* pagemapRead(core, proc.mm, fm, 1);
      if (typeof fe === 'number') throw new Error('pagemap');
      expect(decodePagemap(fe[0]!)).toMatchObject({ present: true, file: true, exclusive: true });
      const hidden = yield* pagemapRead(core, proc.mm, a, 2, { showPfn: false });
      if (typeof hidden === 'number') throw new Error('pagemap');
      expect(hidden[0]! & PagemapBits.PFRAME_MASK).toBe(0n);
      expect(hidden[1]).toBe(PagemapBits.SWAP);
      expect(yield* pagemapRead(core, proc.mm, a + 1, 1)).toBe(-Errno.EINVAL);
      expect(yield* pagemapRead(core, proc.mm, a, -1)).toBe(-Errno.EINVAL);
      yield* drv.unbind();
    });
    runOk(sim);
  });
});

describe('pread/pwrite of a tmpfile mapped MAP_SHARED (hmm-tests file_read, file_write)', () => {
  it('pwrite goes to the page cache that a shared mapping sees; stores through the mapping are what pread returns', () => {
    const { sim, svc, proc } = mmSim({ totalFrames: 256 });
    const core = svc.core;
    sim.spawn('app', 0, function* () {
      const f = svc.newFile('O_TMPFILE', 0);
      const words = Array.from({ length: 2 * 1024 }, (_, i) => i);
      expect(yield* filePwrite(core, f, 0, words)).toBe(2 * PAGE_SIZE);
      expect(f.sizePages).toBe(2);
      const m = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, Map_.SHARED, f, 0);
      expect(yield* proc.load(m + PAGE_SIZE + 12)).toBe(1024 + 3);
      yield* proc.store(m + 8, -5);
      const back = yield* filePread(core, f, 0, 4);
      expect(back).toEqual([0, 1, -5 >>> 0, 3]);
      expect(yield* filePread(core, f, 2 * PAGE_SIZE, 4)).toEqual([]); // at EOF
      expect(yield* filePwrite(core, f, 2, [1])).toBe(-Errno.EINVAL);
      expect(yield* filePwrite(core, f, 0, [Number.NaN])).toBe(-Errno.EINVAL);
      expect(yield* filePread(core, f, -4, 1)).toBe(-Errno.EINVAL);
    });
    runOk(sim);
    expect(fold(mmProjection(), sim.log!.events)).toEqual(liveView(core));
  });
});
