// Issue 23: the errno values of mmap and madvise as Linux 6.17 returns them (mm/mmap.c: do_mmap,
// __get_unmapped_area; mm/madvise.c: madvise_walk_vmas; security_mmap_addr for mmap_min_addr),
// and CPU accesses that refuse a value that is no address before touching anything.
import { describe, expect, it } from '@jest/globals';
import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { Madv, Map_, MMAP_BASE, MMAP_MIN_ADDR, PAGE_SIZE, Prot } from '@mmnsim/mm';
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

describe('mmap errno values (do_mmap, __get_unmapped_area)', () => {
  it('length -1 is a huge size_t: -ENOMEM, not -EINVAL', () => {
    expect(run((p) => p.mmap(0, -1, RW, ANON))).toBe(-Errno.ENOMEM);
  });

  it('MAP_FIXED at a negative (huge unsigned) address: -ENOMEM', () => {
    expect(run((p) => p.mmap(-PAGE_SIZE, PAGE_SIZE, RW, ANON | Map_.FIXED))).toBe(-Errno.ENOMEM);
  });

  it('MAP_FIXED below mmap_min_addr (at 0): -EPERM, as security_mmap_addr gives', () => {
    expect(run((p) => p.mmap(0, PAGE_SIZE, RW, ANON | Map_.FIXED))).toBe(-Errno.EPERM);
    expect(run((p) => p.mmap(MMAP_MIN_ADDR, PAGE_SIZE, RW, ANON | Map_.FIXED))).toBe(MMAP_MIN_ADDR);
  });

  it('a hint below mmap_min_addr is raised to it (round_hint_to_min)', () => {
    expect(run((p) => p.mmap(PAGE_SIZE, PAGE_SIZE, RW, ANON))).toBe(MMAP_MIN_ADDR);
  });

  it('MAP_SHARED_VALIDATE | MAP_ANONYMOUS: -EINVAL (the anonymous switch knows no VALIDATE)', () => {
    expect(run((p) => p.mmap(0, PAGE_SIZE, RW, Map_.SHARED_VALIDATE | Map_.ANONYMOUS))).toBe(
      -Errno.EINVAL,
    );
  });

  it('MAP_SHARED with a file ignores unknown flags; MAP_SHARED_VALIDATE refuses them', () => {
    const { sim, svc, proc } = mmSim();
    const f = svc.newFile('f', 4);
    const r: number[] = [];
    sim.spawn('t', 0, function* () {
      r.push(yield* proc.mmap(0, PAGE_SIZE, RW, Map_.SHARED | 0x40000000, f, 0));
      r.push(yield* proc.mmap(0, PAGE_SIZE, RW, Map_.SHARED_VALIDATE | 0x40000000, f, 0));
    });
    sim.run();
    expect(r[0]).toBeGreaterThanOrEqual(MMAP_BASE);
    expect(r[1]).toBe(-Errno.EOPNOTSUPP);
  });

  it('unknown PROT bits are ignored by mmap (calc_vm_prot_bits) but refused by mprotect', () => {
    const { sim, proc } = mmSim();
    const r: number[] = [];
    sim.spawn('t', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, Prot.READ | 0x40, ANON);
      r.push(a);
      r.push(yield* proc.mprotect(a, PAGE_SIZE, Prot.READ | 0x40));
    });
    sim.run();
    expect(r[0]).toBeGreaterThanOrEqual(MMAP_BASE);
    expect(r[1]).toBe(-Errno.EINVAL);
  });
});

describe('madvise hints (madvise_walk_vmas)', () => {
  it('MADV_NORMAL and MADV_WILLNEED return 0 on a mapped range, -ENOMEM over a hole', () => {
    const { sim, proc } = mmSim();
    const r: number[] = [];
    sim.spawn('t', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 7);
      r.push(yield* proc.madvise(a, 2 * PAGE_SIZE, Madv.NORMAL));
      r.push(yield* proc.madvise(a, 2 * PAGE_SIZE, Madv.WILLNEED));
      r.push(yield* proc.madvise(a, 3 * PAGE_SIZE, Madv.WILLNEED));
      r.push(yield* proc.load(a));
      r.push(yield* proc.madvise(a, PAGE_SIZE, 99));
    });
    sim.run();
    expect(r).toEqual([0, 0, -Errno.ENOMEM, 7, -Errno.EINVAL]);
    expect([proc.mm.mmapLock.writer, proc.mm.mmapLock.readers]).toEqual([null, 0]);
  });
});

describe('CPU accesses refuse a value that is no address, leaving no lock held', () => {
  it.each([Number.NaN, 1.5, -4, Infinity, 2 ** 64])(
    'load(%p) throws a RangeError naming "va"',
    (va) => {
      const { sim, proc } = mmSim();
      sim.spawn('t', 0, function* () {
        yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
        yield* proc.load(va);
      });
      const result = sim.run();
      expect(result.violations[0]!.kind).toBe('exception');
      expect(result.violations[0]!.message).toMatch(
        /RangeError: Process\.load: "va" must be an integer address/,
      );
      expect([proc.mm.mmapLock.writer, proc.mm.mmapLock.readers]).toEqual([null, 0]);
    },
  );

  it('store with a NaN value throws naming "value"', () => {
    const { sim, proc } = mmSim();
    sim.spawn('t', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* proc.store(a, Number.NaN);
    });
    expect(sim.run().violations[0]!.message).toMatch(
      /Process\.store: "value" must be a 32-bit integer/,
    );
  });
});
