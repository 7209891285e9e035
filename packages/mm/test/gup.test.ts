import { describe, expect, it } from '@jest/globals';
import { Errno } from '@mmnsim/core';
import { Frame, Map_, PAGE_SIZE, PhysMem, Prot, Pte, pteFlags, ptePfn, Vm, Vma } from '@mmnsim/mm';
import {
  Foll,
  getUserPages,
  pinUserPages,
  pinUserPagesFast,
  pinUserPagesRemoteUnlocked,
  putPage,
  unpinUserPage,
  unpinUserPages,
  unpinUserPagesDirtyLock,
} from '../src/internal/gup.js';
import { insertVma } from '../src/internal/mmap.js';
import { ANON, gupSim, implemented, RW, runTask } from './gup-support.js';

const munmapReady = implemented(function* ({ proc, addr }) {
  yield* proc.munmap(addr, PAGE_SIZE);
});
const exitReady = implemented(function* ({ proc }) {
  yield* proc.exit();
});

describe('get_user_pages (mm/gup.c)', () => {
  it('faults missing pages in (FOLL_WRITE: fresh anonymous pages) and holds one reference on each until put_page', () => {
    const { sim, core, proc } = gupSim();
    const mm = proc.mm;
    let addr = 0;
    let n = 0;
    const pages: number[] = [];
    const r = runTask(sim, function* () {
      addr = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      yield* mm.mmapLock.downRead();
      n = yield* getUserPages(core, mm, addr, 4, Foll.WRITE, pages);
      mm.mmapLock.upRead();
    });
    expect(r.reason).toBe('done');
    expect(n).toBe(4);
    expect(new Set(pages).size).toBe(4);
    for (let i = 0; i < 4; i++) {
      const pfn = pages[i]!;
      const pte = core.pt.pte(mm, addr + i * PAGE_SIZE);
      expect(ptePfn(pte)).toBe(pfn);
      expect(pteFlags(pte) & Pte.WRITE).toBe(Pte.WRITE);
      expect(core.phys.mapcount[pfn]).toBe(1);
      expect(core.phys.refcount[pfn]).toBe(2); // the mapping's and GUP's
      expect(core.phys.pincount[pfn]).toBe(0);
      expect(core.phys.flags[pfn]! & Frame.REFERENCED).toBe(Frame.REFERENCED); // FOLL_TOUCH
    }
    // Every fault was a remote one (FAULT_FLAG_REMOTE), one per page.
    expect(sim.log!.events.filter((e) => e.type === 'mm.fault')).toHaveLength(4);
    for (const pfn of pages) putPage(core, pfn);
    for (const pfn of pages) expect(core.phys.refcount[pfn]).toBe(1);
  });

  it('a read of untouched anonymous memory returns the zero page, which is never counted', () => {
    const { sim, core, proc } = gupSim();
    const pages: number[] = [];
    let n = 0;
    const before = core.phys.refcount[PhysMem.ZERO_PFN];
    runTask(sim, function* () {
      const addr = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* proc.mm.mmapLock.downRead();
      n = yield* getUserPages(core, proc.mm, addr, 2, 0, pages);
      proc.mm.mmapLock.upRead();
    });
    expect(n).toBe(2);
    expect(pages).toEqual([PhysMem.ZERO_PFN, PhysMem.ZERO_PFN]);
    expect(core.phys.refcount[PhysMem.ZERO_PFN]).toBe(before);
  });

  it('a FOLL_WRITE GUP of a zero-page PTE breaks COW first; an unaligned start means its page', () => {
    const { sim, core, proc } = gupSim();
    const pages: number[] = [];
    let addr = 0;
    let n = 0;
    runTask(sim, function* () {
      addr = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* proc.load(addr);
      yield* proc.mm.mmapLock.downRead();
      n = yield* getUserPages(core, proc.mm, addr + 100, 1, Foll.WRITE, pages);
      proc.mm.mmapLock.upRead();
    });
    expect(n).toBe(1);
    expect(pages[0]).not.toBe(PhysMem.ZERO_PFN);
    expect(ptePfn(core.pt.pte(proc.mm, addr))).toBe(pages[0]);
  });

  it('FOLL_WRITE on a read-only VMA is -EFAULT; FOLL_FORCE writes through a read-only COW copy', () => {
    const { sim, core, proc } = gupSim();
    const mm = proc.mm;
    const res: number[] = [];
    const pages: number[] = [];
    let addr = 0;
    runTask(sim, function* () {
      addr = yield* proc.mmap(0, PAGE_SIZE, Prot.READ, ANON);
      yield* proc.load(addr); // the zero page, read-only
      yield* mm.mmapLock.downRead();
      res.push(yield* getUserPages(core, mm, addr, 1, Foll.WRITE, []));
      res.push(yield* getUserPages(core, mm, addr, 1, Foll.WRITE | Foll.FORCE, pages));
      mm.mmapLock.upRead();
      // What ptrace would do with the page: write it through the kernel's mapping.
      core.phys.write(pages[0]!, 0, 0x5a5a);
      putPage(core, pages[0]!);
      res.push(yield* proc.load(addr), yield* proc.store(addr, 1));
    });
    expect(res).toEqual([-Errno.EFAULT, 1, 0x5a5a, -Errno.EFAULT]);
    const pte = core.pt.pte(mm, addr);
    expect(ptePfn(pte)).toBe(pages[0]);
    expect(pteFlags(pte) & Pte.WRITE).toBe(0); // maybe_mkwrite: the VMA is not writable
    expect(proc.siginfo?.code).toBe('SEGV_ACCERR');
  });

  it('FOLL_FORCE cannot write a shared read-only mapping; FOLL_ANON refuses a file mapping', () => {
    const { sim, core, proc, svc } = gupSim();
    const mm = proc.mm;
    const res: number[] = [];
    runTask(sim, function* () {
      const file = svc.newFile('f', 4);
      const a = yield* proc.mmap(0, PAGE_SIZE, Prot.READ, Map_.SHARED, file, 0);
      yield* mm.mmapLock.downRead();
      res.push(yield* getUserPages(core, mm, a, 1, Foll.WRITE | Foll.FORCE, []));
      res.push(yield* getUserPages(core, mm, a, 1, Foll.ANON, []));
      mm.mmapLock.upRead();
    });
    expect(res).toEqual([-Errno.EFAULT, -Errno.EFAULT]);
  });

  it('VM_IO and VM_PFNMAP VMAs are refused with -EFAULT', () => {
    const { sim, core, proc } = gupSim();
    const mm = proc.mm;
    const res: number[] = [];
    runTask(sim, function* () {
      yield* mm.mmapLock.downWrite();
      const base = 0x200000000;
      insertVma(core, new Vma(mm, base, base + PAGE_SIZE, Vm.READ | Vm.WRITE | Vm.IO, null, 0));
      insertVma(
        core,
        new Vma(mm, base + PAGE_SIZE, base + 2 * PAGE_SIZE, Vm.READ | Vm.PFNMAP, null, 0),
      );
      mm.mmapLock.downgradeWrite();
      res.push(yield* getUserPages(core, mm, base, 1, 0, []));
      res.push(yield* getUserPages(core, mm, base + PAGE_SIZE, 1, 0, []));
      mm.mmapLock.upRead();
    });
    expect(res).toEqual([-Errno.EFAULT, -Errno.EFAULT]);
  });

  it('stops at a hole: the pages before it are returned (and referenced), -EFAULT if it is the first', () => {
    const { sim, core, proc } = gupSim();
    const mm = proc.mm;
    const res: number[] = [];
    const pages: number[] = [];
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* mm.mmapLock.downRead();
      res.push(yield* getUserPages(core, mm, a, 5, Foll.WRITE, pages));
      res.push(yield* getUserPages(core, mm, a + 2 * PAGE_SIZE, 1, Foll.WRITE, []));
      res.push(yield* getUserPages(core, mm, a, 0, Foll.WRITE, []));
      mm.mmapLock.upRead();
    });
    expect(res).toEqual([2, -Errno.EFAULT, 0]);
    expect(pages).toHaveLength(2);
    for (const p of pages) expect(core.phys.refcount[p]).toBe(2);
  });

  it('FOLL_NOFAULT does not fault: -EFAULT on a page not mapped yet', () => {
    const { sim, core, proc } = gupSim();
    const res: number[] = [];
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 1);
      yield* proc.mm.mmapLock.downRead();
      res.push(yield* getUserPages(core, proc.mm, a, 2, Foll.NOFAULT, []));
      res.push(yield* getUserPages(core, proc.mm, a + PAGE_SIZE, 1, Foll.NOFAULT, []));
      proc.mm.mmapLock.upRead();
    });
    expect(res).toEqual([1, -Errno.EFAULT]);
  });

  it('an out-of-memory fault is -ENOMEM', () => {
    // 16 frames: the zero page, the page tables of one mapping, and a few data frames.
    const { sim, core, proc } = gupSim({ totalFrames: 16 });
    core.reclaimer = null; // no reclaim: the allocation fails outright
    let r = 0;
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, 64 * PAGE_SIZE, RW, ANON);
      yield* proc.mm.mmapLock.downRead();
      r = yield* getUserPages(core, proc.mm, a + 32 * PAGE_SIZE, 32, Foll.WRITE, []);
      proc.mm.mmapLock.upRead();
    });
    // Some pages fit, then the fault runs out of memory: the partial count is returned.
    expect(r).toBeGreaterThan(0);
    expect(r).toBeLessThan(32);
    let first = 0;
    const { sim: sim2, core: core2, proc: proc2 } = gupSim({ totalFrames: 16 });
    core2.reclaimer = null;
    runTask(sim2, function* () {
      const a = yield* proc2.mmap(0, 64 * PAGE_SIZE, RW, ANON);
      for (let i = 0; i < 64; i++) if ((yield* proc2.store(a + i * PAGE_SIZE, 1)) !== 0) break;
      yield* proc2.mm.mmapLock.downRead();
      first = yield* getUserPages(core2, proc2.mm, a + 63 * PAGE_SIZE, 1, Foll.WRITE, []);
      proc2.mm.mmapLock.upRead();
    });
    expect(first).toBe(-Errno.ENOMEM);
  });

  it('rejects internal flags, FOLL_LONGTERM without FOLL_PIN and bad counts with -EINVAL (and a WARN)', () => {
    const { sim, core, proc } = gupSim({ stopOnViolation: false });
    const res: number[] = [];
    const r = runTask(sim, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* proc.mm.mmapLock.downRead();
      res.push(yield* getUserPages(core, proc.mm, a, 1, Foll.LONGTERM, []));
      res.push(yield* getUserPages(core, proc.mm, a, 1, Foll.PIN, []));
      res.push(yield* pinUserPages(core, proc.mm, a, 1, Foll.GET, []));
      res.push(yield* getUserPages(core, proc.mm, a, -1, 0, []));
      proc.mm.mmapLock.upRead();
    });
    expect(res).toEqual([-Errno.EINVAL, -Errno.EINVAL, -Errno.EINVAL, -Errno.EINVAL]);
    expect(r.violations.map((v) => v.kind)).toEqual([
      'gup-bad-args',
      'gup-bad-args',
      'gup-bad-args',
    ]);
  });

  it('reports a call without mmap_lock (mmap_assert_locked)', () => {
    const { sim, core, proc } = gupSim({ stopOnViolation: false });
    const r = runTask(sim, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* getUserPages(core, proc.mm, a, 1, 0, []);
    });
    expect(r.violations.map((v) => v.kind)).toEqual(['mmap-lock-not-held']);
  });
});

describe('pin_user_pages (FOLL_PIN)', () => {
  it('counts a pin and a reference per page; unpin_user_pages_dirty_lock dirties and releases them', () => {
    const { sim, core, proc } = gupSim();
    const pages: number[] = [];
    let n = 0;
    let addr = 0;
    runTask(sim, function* () {
      addr = yield* proc.mmap(0, 3 * PAGE_SIZE, RW, ANON);
      for (let i = 0; i < 3; i++) yield* proc.store(addr + i * PAGE_SIZE, 10 + i);
      n = yield* pinUserPagesFast(core, proc.mm, addr, 3, Foll.WRITE | Foll.LONGTERM, pages);
      for (const p of pages) core.phys.flags[p]! &= ~Frame.DIRTY;
      yield* unpinUserPagesDirtyLock(core, pages.slice(0, 2), true);
      unpinUserPages(core, pages.slice(2));
    });
    expect(n).toBe(3);
    for (let i = 0; i < 3; i++) {
      const p = pages[i]!;
      expect(core.phys.pincount[p]).toBe(0);
      expect(core.phys.refcount[p]).toBe(1);
      expect((core.phys.flags[p]! & Frame.DIRTY) !== 0).toBe(i < 2);
    }
    // The folio lock of set_page_dirty_lock was taken and released.
    for (const p of pages) expect(core.phys.isLocked(p)).toBe(false);
  });

  it('the pinned pages are the ones the process maps: a device write is seen by the CPU', () => {
    const { sim, core, proc } = gupSim();
    const pages: number[] = [];
    const seen: number[] = [];
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* proc.mm.mmapLock.downRead();
      yield* pinUserPages(core, proc.mm, a, 2, Foll.WRITE, pages);
      proc.mm.mmapLock.upRead();
      core.phys.write(pages[1]!, 3, 77); // DMA into the second page, word 3
      seen.push(yield* proc.load(a + PAGE_SIZE + 12));
      yield* unpinUserPagesDirtyLock(core, pages, true);
    });
    expect(seen).toEqual([77]);
  });

  it('unpinning a page that is not pinned is a kernel BUG', () => {
    const { sim, core, proc } = gupSim({ stopOnViolation: false });
    let thrown: unknown = null;
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 1);
      try {
        unpinUserPage(core, ptePfn(core.pt.pte(proc.mm, a)));
      } catch (e) {
        thrown = e;
      }
    });
    expect((thrown as Error | null)?.name).toBe('KernelBug');
  });

  (munmapReady ? it : it.skip)(
    'a pinned page survives munmap (content still reachable by pfn) and is freed by the last unpin',
    () => {
      const { sim, core, proc } = gupSim();
      const pages: number[] = [];
      let addr = 0;
      let afterUnmap = { free: true, refcount: -1, mapcount: -1, word: -1 };
      runTask(sim, function* () {
        addr = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
        yield* proc.store(addr + 8, 0xbeef);
        yield* proc.mm.mmapLock.downRead();
        yield* pinUserPages(core, proc.mm, addr, 1, Foll.WRITE | Foll.LONGTERM, pages);
        proc.mm.mmapLock.upRead();
        expect(yield* proc.munmap(addr, 2 * PAGE_SIZE)).toBe(0);
        const p = pages[0]!;
        afterUnmap = {
          free: core.phys.isFree(p),
          refcount: core.phys.refcount[p]!,
          mapcount: core.phys.mapcount[p]!,
          word: core.phys.read(p, 2),
        };
        core.phys.write(p, 2, 0xfeed); // the device keeps writing to the old page
        yield* unpinUserPagesDirtyLock(core, pages, true);
      });
      expect(afterUnmap).toEqual({ free: false, refcount: 1, mapcount: 0, word: 0xbeef });
      expect(core.phys.isFree(pages[0]!)).toBe(true);
      expect(core.phys.pincount[pages[0]!]).toBe(0);
    },
  );

  (exitReady ? it : it.skip)(
    'pin_user_pages_remote after mmget_not_zero: -EFAULT once the process exited; earlier pins stay valid',
    () => {
      const { sim, core, proc } = gupSim();
      const pages: number[] = [];
      const res: number[] = [];
      let addr = 0;
      runTask(sim, function* () {
        addr = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
        yield* proc.store(addr, 5);
        res.push(yield* pinUserPagesRemoteUnlocked(core, proc.mm, addr, 1, 0, pages));
        yield* proc.exit();
        res.push(yield* pinUserPagesRemoteUnlocked(core, proc.mm, addr, 1, 0, []));
        res.push(core.phys.read(pages[0]!, 0), core.phys.refcount[pages[0]!]!);
        unpinUserPage(core, pages[0]!);
      });
      expect(res).toEqual([1, -Errno.EFAULT, 5, 1]);
      expect(core.phys.isFree(pages[0]!)).toBe(true);
    },
  );
});
