// hugetlb (mm/hugetlb.c of Linux 6.17: hugetlb_reserve_pages, hugetlb_fault, hugetlb_no_page,
// hugetlb_wp, copy_hugetlb_page_range, hugetlb_vm_op_split): a pool sized by the options,
// MAP_HUGETLB mappings that reserve at mmap time, faults that map PMD leaves from the pool.
import { describe, expect, it } from '@jest/globals';
import { fold, Simulation } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import {
  hugeLeafAt,
  MAP_HUGETLB,
  Map_,
  mmPlugin,
  MmService,
  PAGE_SIZE,
  PMD_SIZE,
  Prot,
  Pte,
  pteFlags,
  ptePfn,
} from '@mmnsim/mm';
import { liveView, mmProjection } from '../src/internal/projection.js';

const RW = Prot.READ | Prot.WRITE;
const HUGE = Map_.PRIVATE | Map_.ANONYMOUS | MAP_HUGETLB;
const BASE = 0x40000000;

function sim(hugetlbPages?: number) {
  const s = Simulation.create({
    seed: 1,
    cpus: 1,
    log: true,
    plugins: [
      mmPlugin({ totalFrames: 4096, ...(hugetlbPages !== undefined ? { hugetlbPages } : {}) }),
    ],
  });
  const svc = s.get(MmService);
  return { sim: s, svc, proc: svc.createProcess('app') };
}

function run(s: Simulation, body: () => TaskGen<void>): void {
  s.spawn('app', 0, body);
  const r = s.run();
  expect(r.violations).toEqual([]);
  expect(r.reason).toBe('done');
}

describe('MAP_HUGETLB (mm/hugetlb.c)', () => {
  it('with the default pool of 0, mmap(MAP_HUGETLB) fails with -ENOMEM (hugetlb_reserve_pages)', () => {
    const { sim: s, svc, proc } = sim();
    let r = 0;
    run(s, function* () {
      r = yield* proc.mmap(0, PMD_SIZE, RW, HUGE);
    });
    expect(r).toBe(-12);
    expect(svc.core.hugetlb.folios.length).toBe(0);
    expect(proc.mm.vmas.all.length).toBe(0);
  });

  it('reserves at mmap time: a pool of 2 takes one 2-page mapping, a third page is -ENOMEM; bad arguments are -EINVAL', () => {
    const { sim: s, svc, proc } = sim(2);
    const rs: number[] = [];
    run(s, function* () {
      rs.push(yield* proc.mmap(0, PMD_SIZE + 1, RW, HUGE)); // rounded up to 2 × 2 MiB
      rs.push(yield* proc.mmap(0, PMD_SIZE, RW, HUGE));
      rs.push(yield* proc.mmap(BASE + PAGE_SIZE, PMD_SIZE, RW, HUGE | Map_.FIXED));
      rs.push(yield* proc.mmap(0, PMD_SIZE, RW, Map_.SHARED | Map_.ANONYMOUS | MAP_HUGETLB));
    });
    expect(rs[0]! % PMD_SIZE).toBe(0);
    expect(rs.slice(1)).toEqual([-12, -22, -22]);
    expect(svc.core.hugetlb.reserved).toBe(2);
  });

  it('a fault maps a zeroed pool folio as a PMD leaf; munmap gives it back to the pool; unaligned munmap is -EINVAL', () => {
    const { sim: s, svc, proc } = sim(1);
    let a = 0;
    let head = -1;
    const rs: number[] = [];
    let free0 = -1;
    run(s, function* () {
      a = yield* proc.mmap(0, PMD_SIZE, RW, HUGE);
      yield* proc.store(a + 9 * PAGE_SIZE, 99);
      rs.push(yield* proc.load(a + 9 * PAGE_SIZE));
      head = ptePfn(hugeLeafAt(svc.core, proc.mm, a));
      free0 = svc.core.hugetlb.free;
      rs.push(yield* proc.munmap(a, PAGE_SIZE));
      rs.push(yield* proc.munmap(a, PMD_SIZE));
    });
    expect(rs).toEqual([99, -22, 0]);
    expect(head).toBe(svc.core.hugetlb.folios[0]);
    expect(free0).toBe(0);
    expect(svc.core.hugetlb.free).toBe(1);
    expect(svc.core.hugetlb.reserved).toBe(0);
    expect(fold(mmProjection(), s.log!.events)).toEqual(liveView(svc.core));
  });

  it('fork shares the leaf write-protected; the first write copies (hugetlb_wp)', () => {
    const { sim: s, svc, proc } = sim(2);
    const got: number[] = [];
    run(s, function* () {
      const a = yield* proc.mmap(0, PMD_SIZE, RW, HUGE);
      yield* proc.store(a, 5);
      const child = yield* proc.fork('child');
      if (typeof child === 'number') throw new Error(`fork ${child}`);
      expect(pteFlags(hugeLeafAt(svc.core, proc.mm, a)) & Pte.WRITE).toBe(0);
      yield* child.store(a, 6);
      got.push(yield* proc.load(a), yield* child.load(a));
      expect(ptePfn(hugeLeafAt(svc.core, proc.mm, a))).not.toBe(
        ptePfn(hugeLeafAt(svc.core, child.mm, a)),
      );
      yield* child.exit();
    });
    expect(got).toEqual([5, 6]);
  });
});
