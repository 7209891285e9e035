import { describe, expect, it } from '@jest/globals';
import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE, PhysMem, Prot, pteFlags, ptePfn, Pte } from '@mmnsim/mm';
import type { MmCore, Process } from '@mmnsim/mm';
import {
  HmmPfn,
  hmmPfnHas,
  hmmPfnToMapOrder,
  hmmPfnToPfn,
  hmmRangeFault,
} from '../src/internal/hmm.js';
import type { HmmRange } from '../src/internal/hmm.js';
import { ANON, gupSim, RW, runTask } from './gup-support.js';

const REQ = HmmPfn.REQ_FAULT;
const REQ_W = HmmPfn.REQ_FAULT + HmmPfn.REQ_WRITE;

/** A range over `[start, start + pages)` of `proc` with the given default flags. */
function range(
  proc: Process,
  start: number,
  pages: number,
  defaultFlags: number,
  opts: { mask?: number; input?: number[]; changed?: () => boolean } = {},
): HmmRange {
  return {
    mm: proc.mm,
    notifierSeqChanged: opts.changed ?? (() => false),
    start,
    end: start + pages * PAGE_SIZE,
    hmmPfns: opts.input ?? new Array<number>(pages).fill(0),
    defaultFlags,
    pfnFlagsMask: opts.mask ?? 0,
  };
}

/** hmm_range_fault under mmap_lock read, as the driver's fault path calls it. */
function* fault(core: MmCore, r: HmmRange): TaskGen<number> {
  yield* r.mm.mmapLock.downRead();
  const ret = yield* hmmRangeFault(core, r);
  r.mm.mmapLock.upRead();
  return ret;
}

describe('hmm_range_fault (mm/hmm.c)', () => {
  it('entry encoding: pfn in the low bits, VALID/WRITE/ERROR flags above, map order 0', () => {
    const e = 123456 + HmmPfn.VALID + HmmPfn.WRITE;
    expect(hmmPfnToPfn(e)).toBe(123456);
    expect(hmmPfnHas(e, HmmPfn.VALID)).toBe(true);
    expect(hmmPfnHas(e, HmmPfn.WRITE)).toBe(true);
    expect(hmmPfnHas(e, HmmPfn.ERROR)).toBe(false);
    expect(hmmPfnToMapOrder(e)).toBe(0);
    expect(Number.isSafeInteger(2 ** 45 - 1 + HmmPfn.VALID + HmmPfn.WRITE + HmmPfn.ERROR)).toBe(
      true,
    );
  });

  it('faults a fresh anonymous range in for writing: pfn | VALID | WRITE, and takes no page reference', () => {
    const { sim, core, proc } = gupSim();
    let addr = 0;
    let ret = 1;
    let r: HmmRange | null = null;
    let checks = 0;
    runTask(sim, function* () {
      addr = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      r = range(proc, addr, 4, REQ_W, {
        changed: () => {
          checks++;
          return false;
        },
      });
      ret = yield* fault(core, r);
    });
    expect(ret).toBe(0);
    for (let i = 0; i < 4; i++) {
      const e = r!.hmmPfns[i]!;
      const pte = core.pt.pte(proc.mm, addr + i * PAGE_SIZE);
      expect(hmmPfnToPfn(e)).toBe(ptePfn(pte));
      expect(e - hmmPfnToPfn(e)).toBe(HmmPfn.VALID + HmmPfn.WRITE);
      expect(core.phys.refcount[hmmPfnToPfn(e)]).toBe(1); // the mapping's only
    }
    // hmm_vma_fault faults every page to the end of the PMD range, then the walk restarts once.
    expect(sim.log!.events.filter((e) => e.type === 'mm.fault')).toHaveLength(4);
    expect(checks).toBe(2);
  });

  it('a read fault of anonymous memory reports the zero page VALID but not WRITE', () => {
    const { sim, core, proc } = gupSim();
    let r: HmmRange | null = null;
    let ret = 1;
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      r = range(proc, a, 2, REQ);
      ret = yield* fault(core, r);
    });
    expect(ret).toBe(0);
    expect(r!.hmmPfns).toEqual([PhysMem.ZERO_PFN + HmmPfn.VALID, PhysMem.ZERO_PFN + HmmPfn.VALID]);
  });

  it('without a fault request it only snapshots: 0 for unmapped pages, read-only pages without WRITE', () => {
    const { sim, core, proc } = gupSim();
    let r: HmmRange | null = null;
    let ret = 1;
    let pfn0 = 0;
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, 3 * PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 1);
      yield* proc.load(a + 2 * PAGE_SIZE);
      pfn0 = ptePfn(core.pt.pte(proc.mm, a));
      r = range(proc, a, 3, 0, { input: [REQ, REQ, REQ] }); // mask 0: per-page requests ignored
      ret = yield* fault(core, r);
    });
    expect(ret).toBe(0);
    expect(r!.hmmPfns).toEqual([pfn0 + HmmPfn.VALID + HmmPfn.WRITE, 0, HmmPfn.VALID]);
    expect(
      sim.log!.events.filter(
        (e) => e.type === 'mm.fault' && (e.data as { result: string }).result === 'ok',
      ),
    ).toHaveLength(2);
  });

  it('per-page requests count under pfnFlagsMask; faulting runs from the first page that needs it to the end of its PMD range', () => {
    const { sim, core, proc } = gupSim();
    let r: HmmRange | null = null;
    let ret = 1;
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      yield* proc.store(a + 3 * PAGE_SIZE, 1); // the PTE table exists: no hole above the PTEs
      r = range(proc, a, 3, 0, { mask: HmmPfn.FLAGS, input: [0, REQ_W, 0] });
      ret = yield* fault(core, r);
    });
    expect(ret).toBe(0);
    expect(r!.hmmPfns[0]).toBe(0); // not requested, not mapped: never faulted
    expect(hmmPfnHas(r!.hmmPfns[1]!, HmmPfn.VALID + HmmPfn.WRITE)).toBe(true);
    // Page 2 was not requested, but hmm_vma_fault faulted it with page 1 (same PMD range).
    expect(hmmPfnHas(r!.hmmPfns[2]!, HmmPfn.VALID + HmmPfn.WRITE)).toBe(true);
  });

  it('a hole with a fault requested is -EFAULT', () => {
    const { sim, core, proc } = gupSim();
    let ret = 0;
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      // [a, a + 2 pages) mapped, [a + 2 pages, a + 3 pages) is a hole
      ret = yield* fault(core, range(proc, a, 3, REQ));
    });
    expect(ret).toBe(-Errno.EFAULT);
  });

  it('a hole without a fault request gives ERROR entries, the VMA beside it is snapshotted', () => {
    const { sim, core, proc } = gupSim();
    let r: HmmRange | null = null;
    let ret = 1;
    let pfn = 0;
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* proc.store(a + PAGE_SIZE, 3);
      pfn = ptePfn(core.pt.pte(proc.mm, a + PAGE_SIZE));
      r = range(proc, a, 4, 0);
      ret = yield* fault(core, r);
    });
    expect(ret).toBe(0);
    expect(r!.hmmPfns).toEqual([0, pfn + HmmPfn.VALID + HmmPfn.WRITE, HmmPfn.ERROR, HmmPfn.ERROR]);
  });

  it('a PROT_NONE VMA (no VM_READ): -EFAULT with a fault request, ERROR entries without', () => {
    const { sim, core, proc } = gupSim();
    const res: number[] = [];
    let r: HmmRange | null = null;
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, Prot.NONE, ANON);
      res.push(yield* fault(core, range(proc, a, 2, REQ)));
      r = range(proc, a, 2, 0);
      res.push(yield* fault(core, r));
    });
    expect(res).toEqual([-Errno.EFAULT, 0]);
    expect(r!.hmmPfns).toEqual([HmmPfn.ERROR, HmmPfn.ERROR]);
  });

  it('a write request on a read-only VMA is -EPERM, a read request there succeeds', () => {
    const { sim, core, proc } = gupSim();
    const res: number[] = [];
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, Prot.READ, ANON);
      res.push(yield* fault(core, range(proc, a, 2, REQ_W)));
      res.push(yield* fault(core, range(proc, a, 2, REQ)));
    });
    expect(res).toEqual([-Errno.EPERM, 0]);
  });

  it('a write request on a page the CPU maps read-only (zero page) breaks COW', () => {
    const { sim, core, proc } = gupSim();
    let r: HmmRange | null = null;
    let addr = 0;
    runTask(sim, function* () {
      addr = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* proc.load(addr);
      r = range(proc, addr, 1, REQ_W);
      yield* fault(core, r);
    });
    const pte = core.pt.pte(proc.mm, addr);
    expect(ptePfn(pte)).not.toBe(PhysMem.ZERO_PFN);
    expect(pteFlags(pte) & Pte.WRITE).toBe(Pte.WRITE);
    expect(r!.hmmPfns[0]).toBe(ptePfn(pte) + HmmPfn.VALID + HmmPfn.WRITE);
  });

  it('-EBUSY when the notifier sequence changed: before the first walk, or after a fault', () => {
    const { sim, core, proc } = gupSim();
    const res: number[] = [];
    let r: HmmRange | null = null;
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      res.push(
        yield* fault(core, range(proc, a, 2, REQ_W, { input: [7, 7], changed: () => true })),
      );
      let calls = 0;
      // An invalidation collides while the first fault runs: the restart sees it.
      r = range(proc, a, 2, REQ_W, { changed: () => ++calls > 1 });
      res.push(yield* fault(core, r));
    });
    expect(res).toEqual([-Errno.EBUSY, -Errno.EBUSY]);
  });

  it('-EINVAL for an empty range', () => {
    const { sim, core, proc } = gupSim();
    let ret = 0;
    runTask(sim, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      ret = yield* fault(core, range(proc, a, 0, REQ));
    });
    expect(ret).toBe(-Errno.EINVAL);
  });

  it('file mappings: a shared mapping reports the page-cache page, writable after a write request', () => {
    const { sim, core, proc, svc } = gupSim();
    let r: HmmRange | null = null;
    let cached = -1;
    runTask(sim, function* () {
      const f = svc.newFile('data', 2, new Map([[0, [0, 41]]]));
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, 0x01, f, 0);
      r = range(proc, a, 1, REQ_W);
      yield* fault(core, r);
      cached = f.pageCache.get(0)!;
    });
    expect(r!.hmmPfns[0]).toBe(cached + HmmPfn.VALID + HmmPfn.WRITE);
    expect(core.phys.read(cached, 0)).toBe(41);
  });

  it('reports a call without mmap_lock, and one on an mm whose users are gone (no mmget_not_zero)', () => {
    const { sim, core, proc } = gupSim({ stopOnViolation: false });
    const r = runTask(sim, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* hmmRangeFault(core, range(proc, a, 1, 0));
      proc.mm.users = 0; // as if the process had exited under us
      yield* fault(core, range(proc, a, 1, 0));
      proc.mm.users = 1;
    });
    expect(r.violations.map((v) => v.kind)).toEqual(['mmap-lock-not-held', 'hmm-no-mm-users']);
  });
});
