import { describe, expect, it } from '@jest/globals';
import { Errno, Simulation } from '@mmnsim/core';
import {
  CacheModel,
  cacheOracles,
  DIRECT_MAP_BASE,
  directMapAddress,
  LINES_PER_PAGE,
  memTypePteBits,
  mmPlugin,
  MmService,
  PAGE_PCD,
  PAGE_PWT,
  setMemoryNp,
  setMemoryUc,
  setMemoryWb,
  setMemoryWc,
  setPagesArrayUc,
  setPagesArrayWb,
} from '@mmnsim/mm';

function make(seed = 1) {
  const sim = Simulation.create({
    seed,
    cpus: 1,
    devices: ['cache'],
    plugins: [mmPlugin({ totalFrames: 64 })],
  });
  const caches = sim.get(CacheModel);
  caches.configure({ context: 'cache' });
  const phys = sim.get(MmService).core.phys;
  return { sim, caches, phys };
}

describe('memory types and set_memory_* (arch/x86/mm/pat/set_memory.c)', () => {
  it('PTE cache bits follow the default PAT layout (WB 0, WC PWT, UC- PCD)', () => {
    expect(memTypePteBits('WB')).toBe(0);
    expect(memTypePteBits('WC')).toBe(PAGE_PWT);
    expect(memTypePteBits('UC')).toBe(PAGE_PCD);
  });

  it('set_memory_uc/wc/wb/np change the direct map; a second UC reservation is -EBUSY', () => {
    const { caches, phys } = make();
    const pfn = phys.alloc('kernel');
    const a = directMapAddress(pfn);
    expect(caches.directMap.type(pfn)).toBe('WB');
    expect(setMemoryUc(caches, a, 1)).toBe(0);
    expect(caches.directMap.type(pfn)).toBe('UC');
    expect(setMemoryWc(caches, a, 1)).toBe(-Errno.EBUSY);
    expect(setMemoryWb(caches, a, 1)).toBe(0);
    expect(setMemoryWc(caches, a, 1)).toBe(0);
    expect(caches.directMap.type(pfn)).toBe('WC');
    expect(setMemoryNp(caches, a, 1)).toBe(0);
    expect(caches.directMap.type(pfn)).toBe('NP');
    expect(caches.kload(pfn, 0)).toBe(-1);
  });

  it('bad input: unaligned -EINVAL, outside the direct map -EFAULT, bad counts -EINVAL; nothing changes and the run goes on', () => {
    const { sim, caches, phys } = make();
    const pfn = phys.alloc('kernel');
    const results: number[] = [];
    sim.spawn('t', 0, function* () {
      results.push(setMemoryUc(caches, directMapAddress(pfn) + 8, 1));
      results.push(setMemoryUc(caches, DIRECT_MAP_BASE - 4096, 1));
      results.push(setMemoryUc(caches, directMapAddress(63), 2));
      results.push(setMemoryNp(caches, directMapAddress(pfn), -1));
      results.push(setMemoryWc(caches, directMapAddress(pfn), 1.5));
      results.push(setPagesArrayUc(caches, [pfn, 9999]));
      results.push(setPagesArrayWb(caches, [Number.NaN]));
      yield* sim.scheduler.preempt();
      results.push(setMemoryUc(caches, directMapAddress(pfn), 1));
    });
    const r = sim.run();
    expect(r.ok).toBe(true);
    expect(results).toEqual([
      -Errno.EINVAL,
      -Errno.EFAULT,
      -Errno.EFAULT,
      -Errno.EINVAL,
      -Errno.EINVAL,
      -Errno.EINVAL,
      -Errno.EINVAL,
      0,
    ]);
  });

  it('set_pages_array_uc is all or nothing and flushes the pages\u2019 lines; set_pages_array_wb restores WB', () => {
    const { caches, phys } = make();
    const a = phys.alloc('kernel');
    const b = phys.alloc('kernel');
    caches.clearPage(a);
    expect(caches.cpu.holds(a)).toBe(true);
    expect(setMemoryUc(caches, directMapAddress(b), 1)).toBe(0);
    expect(setPagesArrayUc(caches, [a, b])).toBe(-Errno.EINVAL);
    expect(caches.directMap.type(a)).toBe('WB');
    expect(setMemoryWb(caches, directMapAddress(b), 1)).toBe(0);
    expect(setPagesArrayUc(caches, [a, b])).toBe(0);
    expect(caches.cpu.holds(a)).toBe(false);
    expect(setPagesArrayWb(caches, [a, b])).toBe(0);
    expect(caches.directMap.type(b)).toBe('WB');
  });
});

describe('CPU write-back caches', () => {
  it('a WB store allocates a dirty line; a load hits it; clflush writes it back; UC accesses bypass', () => {
    const { caches, phys } = make();
    const pfn = phys.alloc('kernel');
    expect(caches.kstore(pfn, 3, 42)).toBe(0);
    expect(caches.cpu.isDirty(pfn, 0)).toBe(true);
    expect(caches.kload(pfn, 3)).toBe(42);
    expect(phys.read(pfn, 3)).toBe(42); // memory holds the coherent value
    expect(caches.clflushPage(pfn)).toBe(1);
    expect(caches.cpu.holds(pfn)).toBe(false);
    expect(setMemoryUc(caches, directMapAddress(pfn), 1)).toBe(0);
    caches.kstore(pfn, 4, 7);
    expect(caches.cpu.holds(pfn)).toBe(false);
    expect(phys.read(pfn, 4)).toBe(7);
  });

  it('clear_page through the WB direct map leaves every line of the frame dirty', () => {
    const { caches, phys } = make();
    const pfn = phys.alloc('kernel');
    phys.write(pfn, 9, 5);
    caches.clearPage(pfn);
    expect(phys.read(pfn, 9)).toBe(0);
    let dirty = 0;
    for (let l = 0; l < LINES_PER_PAGE; l++) if (caches.cpu.isDirty(pfn, l)) dirty++;
    expect(dirty).toBe(LINES_PER_PAGE);
  });

  it('a non-snooped alias write leaves a dirty line stale; wbinvd writes it back over the alias data (reported)', () => {
    const { sim, caches, phys } = make();
    for (const o of cacheOracles(caches)) sim.addOracle(o);
    const pfn = phys.alloc('kernel');
    sim.spawn('t', 0, function* () {
      caches.kstore(pfn, 0, 1); // dirty line: words 0..15
      yield* sim.scheduler.preempt();
      caches.aliasWrite(pfn, 2, 0xabc, 'gpu via alias');
      caches.wbinvd();
    });
    const r = sim.run();
    const kinds = r.violations.map((v) => v.kind);
    // The alias write meets the WB direct map first, then the write-back loses its bytes.
    expect(kinds[0]).toBe('mixed-memory-type');
    expect(r.violations[0]!.message).toMatch(/kernel direct map \(WB\)/);
    expect(phys.read(pfn, 2)).toBe(0);
  });

  it('corruption report names the line, the write-back and the bytes', () => {
    const { sim, caches, phys } = make();
    sim.addOracle(cacheOracles(caches)[1]!);
    const pfn = phys.alloc('kernel');
    sim.spawn('t', 0, function* () {
      caches.kstore(pfn, 0, 1);
      caches.aliasWrite(pfn, 2, 0xabc, 'gpu');
      yield* sim.scheduler.preempt();
      caches.wbinvd();
    });
    const r = sim.run();
    expect(r.violations[0]!.kind).toBe('cache-writeback-corruption');
    expect(r.violations[0]!.message).toMatch(
      /cpu cache wrote back dirty line 0 of frame \d+ \(wbinvd\).*word 2: 0xabc .*-> stale 0x0/,
    );
  });

  it('speculative fills are scheduled hardware steps, and only while a WB mapping allows them', () => {
    const fills = (np: boolean): number => {
      const { sim, caches, phys } = make();
      const pfn = phys.alloc('kernel');
      let n = 0;
      sim.bus.on('cache.fill').subscribe((e) => {
        if (e.data.speculative) n++;
      });
      sim.spawn('t', 0, function* () {
        caches.kload(pfn, 0); // the adjacent-line prefetcher may now fetch line 1
        if (np) setMemoryNp(caches, directMapAddress(pfn), 1);
        yield* sim.scheduler.preempt();
      });
      const r = sim.run();
      expect(r.ok).toBe(true);
      return n;
    };
    expect(fills(false)).toBe(1);
    expect(fills(true)).toBe(0);
  });

  it('dirty lines are evicted by a hardware step whose timing the strategy chooses', () => {
    const order = new Set<string>();
    for (let seed = 1; seed <= 12; seed++) {
      const sim = Simulation.create({
        seed,
        cpus: 1,
        devices: ['cache'],
        strategy: 'random',
        plugins: [mmPlugin({ totalFrames: 64 })],
      });
      const caches = sim.get(CacheModel);
      caches.configure({ context: 'cache' });
      const pfn = sim.get(MmService).core.phys.alloc('kernel');
      const seen: string[] = [];
      sim.bus.on('cache.writeback').subscribe(() => seen.push('wb'));
      sim.spawn('t', 0, function* () {
        caches.kstore(pfn, 0, 1);
        for (let i = 0; i < 3; i++) {
          yield* sim.scheduler.preempt();
          seen.push(`s${i}`);
        }
      });
      sim.run();
      order.add(seen.join(','));
    }
    expect(order.size).toBeGreaterThan(1);
  });

  it('configure refuses a context that is not a device', () => {
    const { caches } = make();
    expect(() => caches.configure({ context: 'nope' })).toThrow(/"context" \(nope\)/);
  });
});
