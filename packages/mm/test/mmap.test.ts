import { describe, expect, it } from '@jest/globals';
import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { BRK_BASE, Map_, MMAP_BASE, PAGE_SIZE, Prot, TASK_SIZE, Vm } from '@mmnsim/mm';
import { mmSim } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

function run(body: (proc: ReturnType<typeof mmSim>['proc']) => TaskGen<number>): number {
  const { sim, proc } = mmSim();
  let r = 0;
  sim.spawn('t', 0, function* () {
    r = yield* body(proc);
  });
  sim.run();
  return r;
}

describe('mmap (mm/mmap.c do_mmap): results and errno values as Linux returns them', () => {
  it('returns a page-aligned address at or above the mmap base and creates one VMA', () => {
    const { sim, proc } = mmSim();
    let a = 0;
    sim.spawn('t', 0, function* () {
      a = yield* proc.mmap(0, 3 * PAGE_SIZE + 1, RW, ANON);
    });
    sim.run();
    expect(a % PAGE_SIZE).toBe(0);
    expect(a).toBeGreaterThanOrEqual(MMAP_BASE);
    const v = proc.mm.vmas.find(a)!;
    expect(v.end - v.start).toBe(4 * PAGE_SIZE);
    expect(v.flags & (Vm.READ | Vm.WRITE | Vm.SHARED)).toBe(Vm.READ | Vm.WRITE);
  });

  it('zero length -> -EINVAL', () => {
    expect(run((p) => p.mmap(0, 0, RW, ANON))).toBe(-Errno.EINVAL);
  });

  it('neither MAP_SHARED nor MAP_PRIVATE -> -EINVAL', () => {
    expect(run((p) => p.mmap(0, PAGE_SIZE, RW, Map_.ANONYMOUS))).toBe(-Errno.EINVAL);
  });

  it('unknown PROT bits are ignored, as calc_vm_prot_bits does (issue 23: was -EINVAL)', () => {
    expect(run((p) => p.mmap(0, PAGE_SIZE, 0x40 | Prot.READ, ANON))).toBeGreaterThanOrEqual(
      MMAP_BASE,
    );
  });

  it('MAP_FIXED with an unaligned address -> -EINVAL', () => {
    expect(run((p) => p.mmap(MMAP_BASE + 12, PAGE_SIZE, RW, ANON | Map_.FIXED))).toBe(
      -Errno.EINVAL,
    );
  });

  it('an unaligned file offset -> -EINVAL', () => {
    const { sim, svc, proc } = mmSim();
    const f = svc.newFile('f', 4);
    let r = 0;
    sim.spawn('t', 0, function* () {
      r = yield* proc.mmap(0, PAGE_SIZE, Prot.READ, Map_.PRIVATE, f, 100);
    });
    sim.run();
    expect(r).toBe(-Errno.EINVAL);
  });

  it('a length that overflows the address space -> -ENOMEM', () => {
    expect(run((p) => p.mmap(0, TASK_SIZE + PAGE_SIZE, RW, ANON))).toBe(-Errno.ENOMEM);
  });

  it('MAP_FIXED past the end of the address space -> -ENOMEM', () => {
    expect(run((p) => p.mmap(TASK_SIZE - PAGE_SIZE, 2 * PAGE_SIZE, RW, ANON | Map_.FIXED))).toBe(
      -Errno.ENOMEM,
    );
  });

  it('a file MAP_SHARED_VALIDATE with an unknown flag -> -EOPNOTSUPP (issue 23: the file case)', () => {
    const { sim, svc, proc } = mmSim();
    const f = svc.newFile('f', 4);
    let r = 0;
    sim.spawn('t', 0, function* () {
      r = yield* proc.mmap(0, PAGE_SIZE, RW, Map_.SHARED_VALIDATE | 0x40000000, f, 0);
    });
    sim.run();
    expect(r).toBe(-Errno.EOPNOTSUPP);
  });

  it('a file mapping without a file -> -EBADF', () => {
    expect(run((p) => p.mmap(0, PAGE_SIZE, RW, Map_.PRIVATE))).toBe(-Errno.EBADF);
  });

  it('MAP_FIXED_NOREPLACE over an existing mapping -> -EEXIST', () => {
    expect(
      run(function* (p) {
        const a = yield* p.mmap(0, PAGE_SIZE, RW, ANON);
        return yield* p.mmap(a, PAGE_SIZE, RW, ANON | Map_.FIXED_NOREPLACE);
      }),
    ).toBe(-Errno.EEXIST);
  });

  it('a free hint is honoured; a taken hint is not', () => {
    const { sim, proc } = mmSim();
    const got: number[] = [];
    sim.spawn('t', 0, function* () {
      got.push(yield* proc.mmap(0x70000000, PAGE_SIZE, RW, ANON));
      got.push(yield* proc.mmap(0x70000000, PAGE_SIZE, RW, ANON));
    });
    sim.run();
    expect(got[0]).toBe(0x70000000);
    expect(got[1]).not.toBe(0x70000000);
  });

  it('MAP_POPULATE faults every page in at mmap time', () => {
    const { sim, svc, proc } = mmSim();
    let a = 0;
    sim.spawn('t', 0, function* () {
      a = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON | Map_.POPULATE);
    });
    sim.run();
    for (let i = 0; i < 4; i++) expect(svc.core.pt.pte(proc.mm, a + i * PAGE_SIZE)).not.toBe(0);
  });

  it('MAP_SHARED|MAP_ANONYMOUS is shared memory: a second mapping of the same object is not involved, writes stay in the shmem page', () => {
    const { sim, svc, proc } = mmSim();
    let a = 0;
    sim.spawn('t', 0, function* () {
      a = yield* proc.mmap(0, PAGE_SIZE, RW, Map_.SHARED | Map_.ANONYMOUS);
      yield* proc.store(a, 9);
    });
    sim.run();
    const v = proc.mm.vmas.find(a)!;
    expect(v.flags & Vm.SHARED).toBe(Vm.SHARED);
    expect(v.file).not.toBeNull();
    expect(svc.core.phys.read(v.file!.pageCache.get(0)!, 0)).toBe(9);
  });
});

describe('brk (mm/mmap.c SYSCALL_DEFINE1(brk))', () => {
  it('grows the heap from the heap start and the new memory is usable', () => {
    const { sim, proc } = mmSim();
    const got: number[] = [];
    sim.spawn('t', 0, function* () {
      got.push(yield* proc.brk(0)); // query
      got.push(yield* proc.brk(BRK_BASE + 3 * PAGE_SIZE));
      got.push(yield* proc.store(BRK_BASE + 2 * PAGE_SIZE, 5));
      got.push(yield* proc.load(BRK_BASE + 2 * PAGE_SIZE));
    });
    sim.run();
    expect(got).toEqual([BRK_BASE, BRK_BASE + 3 * PAGE_SIZE, 0, 5]);
  });

  it('refuses to move below the heap start or over another mapping, returning the old break', () => {
    const { sim, proc } = mmSim();
    const got: number[] = [];
    sim.spawn('t', 0, function* () {
      yield* proc.brk(BRK_BASE + PAGE_SIZE);
      yield* proc.mmap(BRK_BASE + 4 * PAGE_SIZE, PAGE_SIZE, RW, ANON | Map_.FIXED);
      got.push(yield* proc.brk(BRK_BASE - PAGE_SIZE));
      got.push(yield* proc.brk(BRK_BASE + 8 * PAGE_SIZE));
    });
    sim.run();
    expect(got).toEqual([BRK_BASE + PAGE_SIZE, BRK_BASE + PAGE_SIZE]);
  });
});
