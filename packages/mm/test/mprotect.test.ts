import { describe, expect, it } from '@jest/globals';
import { Errno, Simulation } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { Map_, mmPlugin, MmService, PAGE_SIZE, Prot, Pte, pteFlags, ptePfn, Vm } from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { pteIsProtNone } from '../src/internal/pte.js';
import { eventList, runOk } from './helpers.js';

// Sources: notifier-core.md §7 row 6 (change_protection → change_pud_range, PROTECTION_VMA
// started lazily, TLB flush in tlb_finish_mmu after end); Linux mm/mprotect.c
// (do_mprotect_pkey, mprotect_fixup, change_pte_range, can_change_pte_writable).

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

function setup(cpus = 1) {
  const sim = Simulation.create({ seed: 1, cpus, plugins: [mmPlugin({ totalFrames: 2048 })] });
  const svc = sim.get(MmService);
  return { sim, svc, core: svc.core, proc: svc.createProcess('app') };
}

function* touch(proc: Process, addr: number, pages: number): TaskGen<void> {
  for (let i = 0; i < pages; i++) expect(yield* proc.store(addr + i * PAGE_SIZE, 10 + i)).toBe(0);
}

describe('mprotect (notifier-core.md §7 row 6)', () => {
  it('PROT_READ: a store gets SIGSEGV/SEGV_ACCERR and the value is unchanged; RW again lets it through', () => {
    const { sim, core, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 2);
      const pfn = ptePfn(core.pt.pte(proc.mm, a));
      expect(yield* proc.mprotect(a, 2 * PAGE_SIZE, Prot.READ)).toBe(0);
      expect(pteFlags(core.pt.pte(proc.mm, a)) & Pte.WRITE).toBe(0);
      expect(yield* proc.store(a, 99)).toBe(-Errno.EFAULT);
      expect(proc.siginfo).toEqual({ signal: 'SIGSEGV', code: 'SEGV_ACCERR', addr: a });
      expect(yield* proc.load(a)).toBe(10);
      expect(yield* proc.mprotect(a, 2 * PAGE_SIZE, RW)).toBe(0);
      // An exclusive anonymous page is made writable again at once, in place.
      expect(pteFlags(core.pt.pte(proc.mm, a)) & Pte.WRITE).toBe(Pte.WRITE);
      expect(yield* proc.store(a, 99)).toBe(0);
      expect(yield* proc.load(a)).toBe(99);
      expect(ptePfn(core.pt.pte(proc.mm, a))).toBe(pfn);
    });
    runOk(sim);
  });

  it('splits the VMA at the range edges and changes only the range', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 4);
      expect(yield* proc.mprotect(a + PAGE_SIZE, 2 * PAGE_SIZE, Prot.READ)).toBe(0);
      expect(proc.mm.vmas.all.map((v) => [v.start - a, v.end - a, v.flags & 7])).toEqual([
        [0, PAGE_SIZE, RW],
        [PAGE_SIZE, 3 * PAGE_SIZE, Prot.READ],
        [3 * PAGE_SIZE, 4 * PAGE_SIZE, RW],
      ]);
      expect(yield* proc.store(a, 1)).toBe(0);
      expect(yield* proc.store(a + 3 * PAGE_SIZE, 1)).toBe(0);
      expect(yield* proc.store(a + PAGE_SIZE, 1)).toBe(-Errno.EFAULT);
    });
    runOk(sim);
  });

  it('PROT_NONE blocks loads; the PTEs keep their page; PROT_READ restores access', () => {
    const { sim, core, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 1);
      const pfn = ptePfn(core.pt.pte(proc.mm, a));
      expect(yield* proc.mprotect(a, PAGE_SIZE, Prot.NONE)).toBe(0);
      const pte = core.pt.pte(proc.mm, a);
      expect(pteIsProtNone(pte)).toBe(true);
      expect(ptePfn(pte)).toBe(pfn);
      expect(core.phys.mapcount[pfn]).toBe(1);
      expect(yield* proc.load(a)).toBe(-Errno.EFAULT);
      expect(proc.siginfo).toEqual({ signal: 'SIGSEGV', code: 'SEGV_ACCERR', addr: a });
      expect(yield* proc.mprotect(a, PAGE_SIZE, Prot.READ)).toBe(0);
      expect(yield* proc.load(a)).toBe(10);
      expect(yield* proc.store(a, 1)).toBe(-Errno.EFAULT);
    });
    runOk(sim);
  });

  it('a fault on a PROT_NONE entry whose VMA allows access restores the PTE', () => {
    const { sim, core, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 1);
      const pfn = ptePfn(core.pt.pte(proc.mm, a));
      expect(yield* proc.mprotect(a, PAGE_SIZE, Prot.NONE)).toBe(0);
      // As after a NUMA-hinting protection change: the VMA allows access, the PTE does not.
      proc.mm.vmas.find(a)!.flags |= Vm.READ | Vm.WRITE;
      expect(yield* proc.store(a, 5)).toBe(0);
      expect(ptePfn(core.pt.pte(proc.mm, a))).toBe(pfn);
      expect(yield* proc.load(a)).toBe(5);
      expect(core.phys.mapcount[pfn]).toBe(1);
    });
    runOk(sim);
  });

  it('munmap of a PROT_NONE range releases its pages', () => {
    const { sim, core, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 2);
      const pfn = ptePfn(core.pt.pte(proc.mm, a));
      expect(yield* proc.mprotect(a, 2 * PAGE_SIZE, Prot.NONE)).toBe(0);
      expect(yield* proc.munmap(a, 2 * PAGE_SIZE)).toBe(0);
      expect(core.phys.isFree(pfn)).toBe(true);
    });
    runOk(sim);
  });

  it('a shared mapping regains write only on dirty PTEs; a private file page stays read-only (COW)', () => {
    const { sim, svc, core, proc } = setup();
    const file = svc.newFile('f', 2);
    const priv = svc.newFile('p', 1);
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, Map_.SHARED, file, 0);
      expect(yield* proc.store(a, 1)).toBe(0); // dirty, writable
      expect(yield* proc.load(a + PAGE_SIZE)).toBe(0); // clean, read-only
      expect(yield* proc.mprotect(a, 2 * PAGE_SIZE, Prot.READ)).toBe(0);
      expect(yield* proc.mprotect(a, 2 * PAGE_SIZE, RW)).toBe(0);
      expect(pteFlags(core.pt.pte(proc.mm, a)) & Pte.WRITE).toBe(Pte.WRITE);
      expect(pteFlags(core.pt.pte(proc.mm, a + PAGE_SIZE)) & Pte.WRITE).toBe(0);
      const b = yield* proc.mmap(0, PAGE_SIZE, Prot.READ, Map_.PRIVATE, priv, 0);
      expect(yield* proc.load(b)).toBe(0);
      const filePfn = ptePfn(core.pt.pte(proc.mm, b));
      expect(yield* proc.mprotect(b, PAGE_SIZE, RW)).toBe(0);
      expect(pteFlags(core.pt.pte(proc.mm, b)) & Pte.WRITE).toBe(0);
      expect(yield* proc.store(b, 3)).toBe(0);
      expect(ptePfn(core.pt.pte(proc.mm, b))).not.toBe(filePfn);
    });
    runOk(sim);
  });

  it('events: PROTECTION_VMA start → PTE changes → end → TLB flush after end', () => {
    const { sim, proc } = setup();
    let from = 0;
    let a = 0;
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(0, 8 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a + 2 * PAGE_SIZE, 3);
      from = sim.log!.length;
      expect(yield* proc.mprotect(a, 8 * PAGE_SIZE, Prot.READ)).toBe(0);
    });
    runOk(sim);
    const evs = eventList(sim, from).filter((e) =>
      ['mmn.invalidate_start', 'mmn.invalidate_end', 'mm.pte.set', 'mm.tlb.flush'].includes(e.type),
    );
    expect(evs.map((e) => e.type)).toEqual([
      'mmn.invalidate_start',
      'mm.pte.set',
      'mm.pte.set',
      'mm.pte.set',
      'mmn.invalidate_end',
      'mm.tlb.flush',
    ]);
    // The VMA's range starts inside a populated PUD entry: the window starts at the range.
    expect(evs[0]!.d).toMatchObject({
      event: 'PROTECTION_VMA',
      start: a,
      end: a + 8 * PAGE_SIZE,
      blockable: true,
    });
    expect(evs[5]!.d).toMatchObject({ start: a + 2 * PAGE_SIZE, end: a + 5 * PAGE_SIZE });
  });

  it('the window starts lazily at the first populated PUD entry of the chunk', () => {
    const { sim, proc } = setup();
    const GiB = 2 ** 30;
    let from = 0;
    const base = 16 * GiB;
    sim.spawn('app', 0, function* () {
      // 3 GiB mapping; only its last GiB is ever touched, so only that PUD entry exists.
      const a = yield* proc.mmap(base, 3 * GiB, RW, ANON | Map_.FIXED);
      expect(a).toBe(base);
      yield* touch(proc, base + 2 * GiB + PAGE_SIZE, 1);
      from = sim.log!.length;
      expect(yield* proc.mprotect(base, 3 * GiB, Prot.READ)).toBe(0);
    });
    runOk(sim);
    const start = eventList(sim, from).find((e) => e.type === 'mmn.invalidate_start')!;
    expect(start.d).toMatchObject({ start: base + 2 * GiB, end: base + 3 * GiB });
  });

  it('no window and no flush when nothing is mapped, or the flags do not change', () => {
    const { sim, proc } = setup();
    let from = 0;
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      from = sim.log!.length;
      expect(yield* proc.mprotect(a, 4 * PAGE_SIZE, Prot.READ)).toBe(0);
      expect(yield* proc.mprotect(a, 4 * PAGE_SIZE, Prot.READ)).toBe(0);
    });
    runOk(sim);
    expect(
      eventList(sim, from).filter((e) => e.type.startsWith('mmn.') || e.type === 'mm.tlb.flush'),
    ).toEqual([]);
  });

  it('-EINVAL for an unaligned address', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      expect(yield* proc.mprotect(a + 4, PAGE_SIZE, Prot.READ)).toBe(-Errno.EINVAL);
    });
    runOk(sim);
  });

  it('-EINVAL for an unknown prot bit', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      expect(yield* proc.mprotect(a, PAGE_SIZE, 0x40)).toBe(-Errno.EINVAL);
      expect(proc.mm.vmas.find(a)!.flags & 7).toBe(RW);
    });
    runOk(sim);
  });

  it('-ENOMEM for a range with a hole (the VMA before the hole is already changed, as in Linux)', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 3 * PAGE_SIZE, RW, ANON);
      expect(yield* proc.munmap(a + PAGE_SIZE, PAGE_SIZE)).toBe(0);
      expect(yield* proc.mprotect(a, 3 * PAGE_SIZE, Prot.READ)).toBe(-Errno.ENOMEM);
      expect(proc.mm.vmas.find(a)!.flags & 7).toBe(Prot.READ);
      expect(proc.mm.vmas.find(a + 2 * PAGE_SIZE)!.flags & 7).toBe(RW);
      expect(yield* proc.mprotect(a + PAGE_SIZE, PAGE_SIZE, Prot.READ)).toBe(-Errno.ENOMEM);
    });
    runOk(sim);
  });

  it('-EACCES when adding PROT_WRITE to a shared mapping without VM_MAYWRITE', () => {
    const { sim, svc, proc } = setup();
    const file = svc.newFile('ro', 1);
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, Prot.READ, Map_.SHARED, file, 0);
      proc.mm.vmas.find(a)!.flags &= ~Vm.MAYWRITE; // as for a file opened read-only
      expect(yield* proc.mprotect(a, PAGE_SIZE, RW)).toBe(-Errno.EACCES);
      expect(yield* proc.mprotect(a, PAGE_SIZE, Prot.NONE)).toBe(0);
    });
    runOk(sim);
  });
});
