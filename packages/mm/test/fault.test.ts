import { describe, expect, it } from '@jest/globals';
import { Errno } from '@mmnsim/core';
import {
  describePte,
  Frame,
  Map_,
  PAGE_SIZE,
  PhysMem,
  Prot,
  Pte,
  pteFlags,
  ptePfn,
} from '@mmnsim/mm';
import { mmSim } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

describe('page faults (mm/memory.c handle_mm_fault)', () => {
  it('a read fault on anonymous memory maps the shared zero page read-only; the read returns 0', () => {
    const { sim, svc, proc } = mmSim();
    let value = -1;
    let addr = 0;
    sim.spawn('t', 0, function* () {
      addr = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      value = yield* proc.load(addr + 12);
    });
    expect(sim.run().reason).toBe('done');
    expect(value).toBe(0);
    const pte = svc.core.pt.pte(proc.mm, addr);
    expect(ptePfn(pte)).toBe(PhysMem.ZERO_PFN);
    expect(pteFlags(pte) & Pte.WRITE).toBe(0);
    expect(pteFlags(pte) & Pte.SPECIAL).toBe(Pte.SPECIAL);
  });

  it('a write fault allocates a zeroed anonymous page, mapped writable and dirty, with mapcount 1', () => {
    const { sim, svc, proc } = mmSim();
    let addr = 0;
    const seen: number[] = [];
    sim.spawn('t', 0, function* () {
      addr = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      seen.push(yield* proc.store(addr + 4, 0xcafe));
      seen.push(yield* proc.load(addr + 4), yield* proc.load(addr + 8));
    });
    sim.run();
    expect(seen).toEqual([0, 0xcafe, 0]);
    const pte = svc.core.pt.pte(proc.mm, addr);
    const pfn = ptePfn(pte);
    expect(pteFlags(pte) & (Pte.WRITE | Pte.DIRTY | Pte.ACCESSED)).toBe(
      Pte.WRITE | Pte.DIRTY | Pte.ACCESSED,
    );
    expect(svc.core.phys.mapcount[pfn]).toBe(1);
    expect(svc.core.phys.refcount[pfn]).toBe(1);
    expect(svc.core.phys.flags[pfn]! & Frame.ANON).toBe(Frame.ANON);
  });

  it('writing after a zero-page read copies-on-write inside a CLEAR notifier window (notifier-core.md §7 row 8)', () => {
    const { sim, svc, proc } = mmSim();
    let addr = 0;
    sim.spawn('t', 0, function* () {
      addr = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* proc.load(addr);
      yield* proc.store(addr, 7);
    });
    sim.run();
    const ev = sim.log!.events;
    const start = ev.findIndex((e) => e.type === 'mmn.invalidate_start');
    const end = ev.findIndex((e) => e.type === 'mmn.invalidate_end');
    expect(start).toBeGreaterThan(0);
    expect(ev[start]!.data).toMatchObject({
      event: 'CLEAR',
      start: addr,
      end: addr + PAGE_SIZE,
      blockable: true,
    });
    // Inside the window: the PTE is cleared, the CPU TLB flushed (which calls the secondary-TLB
    // hook, invariant 18), then the new PTE installed. (A TLB model's own tlb.* events, which
    // make up its flush, are left out.)
    const inside = ev
      .slice(start, end)
      .map((e) => e.type)
      .filter((t) => !t.startsWith('tlb.'));
    const clear = inside.indexOf('mm.pte.set');
    expect(inside.slice(clear, clear + 4)).toEqual([
      'mm.pte.set',
      'mm.tlb.flush',
      'mmn.secondary_tlbs',
      'mm.pte.set',
    ]);
    expect(describePte(svc.core.pt.pte(proc.mm, addr))).toMatch(/^pfn 0x[0-9a-f]+ wad/);
  });

  it('a file read fault maps the page-cache page read-only; a private write copies it and leaves the file unchanged', () => {
    const { sim, svc, proc } = mmSim();
    const file = svc.newFile('data', 2, new Map([[0, [3, 33]]]));
    const seen: number[] = [];
    let addr = 0;
    sim.spawn('t', 0, function* () {
      addr = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, Map_.PRIVATE, file, 0);
      seen.push(yield* proc.load(addr + 12));
      seen.push(yield* proc.store(addr + 12, 44));
      seen.push(yield* proc.load(addr + 12));
    });
    sim.run();
    expect(seen).toEqual([33, 0, 44]);
    const cachePfn = file.pageCache.get(0)!;
    expect(svc.core.phys.read(cachePfn, 3)).toBe(33);
    expect(ptePfn(svc.core.pt.pte(proc.mm, addr))).not.toBe(cachePfn);
    expect(svc.core.phys.mapcount[cachePfn]).toBe(0);
  });

  it('a shared file mapping writes through to the page-cache page and dirties it', () => {
    const { sim, svc, proc } = mmSim();
    const file = svc.newFile('shared', 1);
    let addr = 0;
    sim.spawn('t', 0, function* () {
      addr = yield* proc.mmap(0, PAGE_SIZE, RW, Map_.SHARED, file, 0);
      yield* proc.store(addr, 5);
    });
    sim.run();
    const pfn = file.pageCache.get(0)!;
    expect(svc.core.phys.read(pfn, 0)).toBe(5);
    expect(svc.core.phys.flags[pfn]! & Frame.DIRTY).toBe(Frame.DIRTY);
    expect(ptePfn(svc.core.pt.pte(proc.mm, addr))).toBe(pfn);
  });

  it('an access beyond the end of the file raises SIGBUS', () => {
    const { sim, svc, proc } = mmSim();
    const file = svc.newFile('short', 1);
    let r = 0;
    sim.spawn('t', 0, function* () {
      const addr = yield* proc.mmap(0, 2 * PAGE_SIZE, Prot.READ, Map_.PRIVATE, file, 0);
      r = yield* proc.load(addr + PAGE_SIZE);
    });
    sim.run();
    expect(r).toBe(-Errno.EFAULT);
    expect(proc.siginfo).toMatchObject({ signal: 'SIGBUS', code: 'BUS_ADRERR' });
  });

  it('an access outside any VMA raises SIGSEGV with SEGV_MAPERR; a write to a read-only VMA SEGV_ACCERR', () => {
    const { sim, proc } = mmSim();
    const codes: string[] = [];
    sim.spawn('t', 0, function* () {
      yield* proc.load(0x1000);
      codes.push(proc.siginfo!.code);
      const ro = yield* proc.mmap(0, PAGE_SIZE, Prot.READ, ANON);
      yield* proc.store(ro, 1);
      codes.push(proc.siginfo!.code);
    });
    sim.run();
    expect(codes).toEqual(['SEGV_MAPERR', 'SEGV_ACCERR']);
  });

  it('page-table pages are frames, allocated on the first fault of each 2 MiB region', () => {
    const { sim, svc, proc } = mmSim();
    sim.spawn('t', 0, function* () {
      const a = yield* proc.mmap(0, 4 * 1024 * 1024, RW, ANON);
      yield* proc.store(a, 1);
      yield* proc.store(a + 2 * 1024 * 1024, 1);
    });
    sim.run();
    const ptAllocs = sim.log!.events.filter((e) => e.type === 'mm.pt.alloc');
    // PUD table, PMD table, then two PTE tables.
    expect(ptAllocs.map((e) => (e.data as { level: number }).level)).toEqual([2, 1, 0, 0]);
    for (const e of ptAllocs)
      expect(svc.core.phys.flags[(e.data as { pfn: number }).pfn]! & Frame.PAGETABLE).toBe(
        Frame.PAGETABLE,
      );
  });

  it('two tasks faulting the same page concurrently end with one page and one mapping', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const { sim, svc, proc } = mmSim({ seed, cpus: 2, strategy: 'random' });
      let addr = 0;
      sim.spawn('setup', 0, function* () {
        addr = yield* proc.mmap(0x40000000, PAGE_SIZE, RW, ANON | Map_.FIXED);
        for (const cpu of [0, 1]) {
          sim.spawn(`writer${cpu}`, cpu, function* () {
            yield* proc.store(addr + cpu * 4, cpu + 1);
          });
        }
      });
      expect(sim.run().reason).toBe('done');
      const pfn = ptePfn(svc.core.pt.pte(proc.mm, addr));
      expect(svc.core.phys.read(pfn, 0)).toBe(1);
      expect(svc.core.phys.read(pfn, 1)).toBe(2);
      expect(svc.core.phys.mapcount[pfn]).toBe(1);
      const anonAllocs = sim.log!.events.filter(
        (e) => e.type === 'mm.frame.alloc' && (e.data as { kind: string }).kind === 'anon',
      );
      const freed = sim.log!.events.filter((e) => e.type === 'mm.frame.free').length;
      expect(anonAllocs.length - freed).toBe(1);
    }
  });

  it('physical memory reuses the most recently freed frame first and zeroes it for the next owner', () => {
    const { svc } = mmSim();
    const phys = svc.core.phys;
    const a = phys.alloc('kernel');
    phys.write(a, 0, 99);
    phys.put(a);
    expect(phys.read(a, 0)).toBe(99); // a stale reader still sees the old data…
    const b = phys.alloc('anon');
    expect(b).toBe(a);
    expect(phys.read(b, 0)).toBe(0); // …until the frame is reused
  });

  it('freeing a frame twice or while mapped is a kernel BUG', () => {
    const { svc } = mmSim();
    const phys = svc.core.phys;
    const a = phys.alloc('anon');
    phys.put(a);
    expect(() => phys.put(a)).toThrow(/double free/);
    const b = phys.alloc('anon');
    phys.mapcount[b] = 1;
    expect(() => phys.put(b)).toThrow(/still mapped/);
  });
});
