import { describe, expect, it } from '@jest/globals';
import { Errno, explore, Simulation } from '@mmnsim/core';
import type { Scenario, TaskGen } from '@mmnsim/core';
import {
  APERTURE_BASE,
  GartId,
  GartIommu,
  gptDecode,
  gptEncode,
  GPTE_COHERENT,
  GPTE_VALID,
  iommuPlugin,
} from '@mmnsim/hw-iommu';
import type { Gart, GartOptions } from '@mmnsim/hw-iommu';
import { CacheCorruptionOracle, DMA_MAPPING_ERROR, mmPlugin, MmService } from '@mmnsim/mm';

const DEVICES = ['cache', 'gfx0', 'nic0'];

function make(gart: Partial<GartOptions> = {}, seed = 1) {
  const sim = Simulation.create({
    seed,
    cpus: 2,
    devices: DEVICES,
    plugins: [mmPlugin({ totalFrames: 320 }), iommuPlugin({ gart })],
  });
  const g = sim.get(GartId);
  return { sim, g, phys: sim.get(MmService).core.phys };
}

function boot(g: Gart): void {
  const it = g.iommu.init();
  for (let r = it.next(); r.done !== true; r = it.next());
}

describe('GART hardware and the GART IOMMU (arch/x86/kernel/amd_gart_64.c)', () => {
  it('GPTE_ENCODE/DECODE round-trip addresses above 4 GiB', () => {
    const pfn = 0x123456; // 4.5 GiB
    const e = gptEncode(pfn, GPTE_VALID | GPTE_COHERENT);
    expect(e & 3).toBe(3);
    expect(gptDecode(e)).toBe(pfn);
  });

  it('init: scratch page in every unused entry, emergency pages left out, full flush policy flushes on every map', () => {
    const { sim, g, phys } = make();
    let flushes = 0;
    sim.bus.on('gart.flush').subscribe(() => flushes++);
    boot(g);
    const io = g.iommu;
    expect(g.hw.enabled).toBe(true);
    expect(g.hw.gattEntry(io.iommuStart + 32)).toBe(io.unmappedEntry);
    expect(g.hw.gattEntry(io.iommuStart + 31)).toBe(0); // emergency pages stay invalid
    const before = flushes;
    const pfn = phys.alloc('anon');
    const bus = io.mapPage(pfn);
    expect(bus).toBe(APERTURE_BASE + (io.iommuStart + 32) * 4096);
    io.unmapPage(bus);
    io.mapPage(pfn);
    expect(flushes - before).toBe(2);
  });

  it('lazy policy flushes only when the allocator wraps; running out of IOMMU space is DMA_MAPPING_ERROR', () => {
    const { sim, g, phys } = make({ flushPolicy: 'lazy', emergencyPages: 60 });
    let flushes = 0;
    let wraps = 0;
    sim.bus.on('gart.flush').subscribe(() => flushes++);
    sim.bus.on('gart.alloc.wrap').subscribe(() => wraps++);
    boot(g);
    const io = g.iommu;
    const pfn = phys.alloc('anon');
    const before = flushes;
    const buses = [io.mapPage(pfn), io.mapPage(pfn), io.mapPage(pfn)];
    expect(flushes - before).toBe(0);
    expect(io.mapPage(pfn)).not.toBe(DMA_MAPPING_ERROR); // the 4th slot: next_bit wraps
    expect(wraps).toBe(1);
    expect(flushes - before).toBe(1);
    expect(io.mapPage(pfn)).toBe(DMA_MAPPING_ERROR); // full
    for (const b of buses) io.unmapPage(b);
    expect(io.mapPage(pfn)).not.toBe(DMA_MAPPING_ERROR);
  });

  it('bad input: a GATT index outside the aperture is -EINVAL, a bus address outside it is a GART error (-EIO), and the run goes on', () => {
    const { sim, g } = make();
    const errors: string[] = [];
    sim.bus.on('gart.error').subscribe((e) => errors.push(e.data.reason));
    const out: number[] = [];
    sim.spawn('t', 0, function* () {
      out.push(g.hw.access('gfx0', APERTURE_BASE, 0, 1, false)); // before enable
      yield* g.iommu.init();
      out.push(g.hw.setEntry(g.hw.pages, 0, 0));
      out.push(g.hw.setEntry(-1, 0, 0));
      out.push(g.hw.access('gfx0', APERTURE_BASE + g.hw.pages * 4096, 0, 1, false));
      out.push(g.hw.access('gfx0', APERTURE_BASE + g.iommu.iommuStart * 4096, 0, 1, false)); // emergency page: invalid
      out.push(g.iommu.mapPage(Number.NaN));
    });
    const r = sim.run();
    expect(r.ok).toBe(true);
    expect(out).toEqual([
      -Errno.EIO,
      -Errno.EINVAL,
      -Errno.EINVAL,
      -Errno.EIO,
      -Errno.EIO,
      DMA_MAPPING_ERROR,
    ]);
    expect(errors).toEqual([
      'GART translation disabled (master abort)',
      'bus address outside the aperture (master abort)',
      `GART PTE error: entry ${g.iommu.iommuStart} not valid`,
    ]);
  });

  it('bad input: binding more pages than the aperture holds is -EINVAL, an occupied range -EBUSY, past max_memory_agp -ENOMEM', () => {
    const { sim, g } = make();
    const out: number[] = [];
    sim.spawn('t', 0, function* () {
      yield* g.iommu.init();
      const agp = g.agp;
      const big = yield* agp.allocMemory(agp.numEntries + 1);
      out.push(typeof big === 'number' ? big : 0);
      const a = yield* agp.allocMemory(agp.numEntries);
      if (typeof a === 'number') throw new Error('alloc');
      out.push(yield* agp.bindMemory(a, 1)); // 1 + numEntries > num_entries
      out.push(yield* agp.bindMemory(a, 0));
      yield* agp.freeMemory(a);
      const b = yield* agp.allocMemory(2);
      const c = yield* agp.allocMemory(2);
      if (typeof b === 'number' || typeof c === 'number') throw new Error('alloc');
      out.push(yield* agp.bindMemory(b, 0));
      out.push(yield* agp.bindMemory(c, 1));
      out.push(yield* agp.bindMemory(c, -1));
    });
    const r = sim.run();
    expect(r.ok).toBe(true);
    expect(out).toEqual([-Errno.ENOMEM, -Errno.EINVAL, 0, 0, -Errno.EBUSY, -Errno.EINVAL]);
  });
});

/** Scenario 41 on the AGP side; `leaveWb` is the bug (the direct map stays write-back). */
function scenario41(leaveWb: boolean, oracles: 'all' | 'corruption'): Scenario {
  return {
    id: `scenario-41-${leaveWb ? 'wb' : 'uc'}`,
    options: () => ({
      cpus: 2,
      devices: DEVICES,
      log: false,
      plugins: [mmPlugin({ totalFrames: 320 }), iommuPlugin({ gart: {} })],
    }),
    setup(sim) {
      const g = sim.get(GartId);
      if (oracles === 'all') for (const o of g.oracles()) sim.addOracle(o);
      else sim.addOracle(new CacheCorruptionOracle());
      sim.spawn('drm', 0, function* (): TaskGen<void> {
        yield* g.iommu.init();
        const mem = yield* g.agp.allocPages(1);
        if (typeof mem === 'number') throw new Error('alloc');
        if (!leaveWb) g.agp.makeUncached(mem);
        yield* g.agp.bindMemory(mem, 0);
        const pfn = mem.pages[0]!;
        const gpu = sim.spawn('gpu', 'gfx0', function* () {
          const gfx = g.graphicsDevice('gfx0');
          for (let w = 1; w < 4; w++) {
            gfx.write(0, w, 0x900d0000 + w);
            yield* sim.scheduler.preempt();
          }
        });
        // The driver writes a fence word through the kernel direct map.
        yield* sim.scheduler.preempt();
        g.caches.kstore(pfn, 0, 0xfe);
        yield* sim.scheduler.join(gpu);
        const gfx = g.graphicsDevice('gfx0');
        for (let w = 1; w < 4; w++)
          if (gfx.read(0, w) !== 0x900d0000 + w) throw new Error(`GPU data lost at word ${w}`);
      });
    },
  };
}

describe('scenario 41: GART alias reuse', () => {
  it('correct: direct map UC before the GATT insert; no WB alias, data intact over 300 PCT schedules', () => {
    const r = explore(scenario41(false, 'all'), {
      strategy: { kind: 'pct', depth: 3 },
      iterations: 300,
      seed: 1,
    });
    expect(r.failures).toEqual([]);
  });

  it('bug: the direct map left WB is reported when the page enters the GATT', () => {
    const r = explore(scenario41(true, 'all'), {
      strategy: { kind: 'pct', depth: 3 },
      iterations: 10,
      seed: 1,
    });
    expect(r.failures[0]!.violations[0]!.kind).toBe('mixed-memory-type');
    expect(r.failures[0]!.violations[0]!.message).toMatch(/GATT\[0\].*kernel direct map \(WB\)/);
  });

  it('bug: a fill before the GPU writes and a dirty eviction after them overwrite the GPU data', () => {
    const r = explore(scenario41(true, 'corruption'), {
      strategy: { kind: 'pct', depth: 3 },
      iterations: 2000,
      seed: 1,
    });
    const v = r.failures[0]!.violations[0]!;
    expect(v.kind).toBe('cache-writeback-corruption');
    expect(v.message).toMatch(
      /cpu cache wrote back dirty line 0 .* written through a non-snooped alias: word [123]: 0x900d000[123]/,
    );
  });
});

/** Scenario 42 in Linux's order, or with `late` coming after the enable. */
function scenario42(late: 'none' | 'wbinvd' | 'np'): Scenario {
  class Late extends GartIommu {
    override *init(): TaskGen<number> {
      this.reserveAperture();
      this.allocGatt();
      this.gattUncached();
      if (late !== 'np') this.apertureNotPresent();
      if (late !== 'wbinvd') this.hw.caches.wbinvd();
      yield* this.hw.kernel.scheduler.preempt();
      this.hw.enable();
      this.hw.flush();
      if (late === 'np') this.apertureNotPresent();
      if (late === 'wbinvd') this.hw.caches.wbinvd();
      this.fillScratch();
      this.ready = true;
      return 0;
    }
  }
  return {
    id: `scenario-42-${late}`,
    options: () => ({
      cpus: 2,
      devices: DEVICES,
      log: true,
      plugins: [mmPlugin({ totalFrames: 320 }), iommuPlugin({ gart: {} })],
    }),
    setup(sim) {
      const g = sim.get(GartId);
      for (const o of g.oracles()) sim.addOracle(o);
      const io = late === 'none' ? g.iommu : new Late(g.hw, g.iommu.options);
      sim.spawn('boot', 0, function* () {
        yield* io.init();
        const pfn = sim.get(MmService).core.phys.alloc('anon');
        const bus = io.mapPage(pfn);
        g.hw.access('nic0', bus, 0, 5, true);
      });
    },
  };
}

describe('scenario 42: GART IOMMU init order', () => {
  it('Linux order: GATT UC, aperture direct map not-present, wbinvd, enable, GART TLB flush — no violation', () => {
    const sim = Simulation.create({ seed: 1, ...scenario42('none').options() });
    scenario42('none').setup(sim);
    const r = sim.run();
    expect(r.violations).toEqual([]);
    const order = sim
      .log!.events.filter((e) =>
        ['cache.memtype', 'cache.wbinvd', 'gart.enable', 'gart.flush'].includes(e.type),
      )
      .map((e) =>
        e.type === 'cache.memtype' ? `memtype:${(e.data as { type: string }).type}` : e.type,
      );
    expect(order.slice(0, 5)).toEqual([
      'memtype:UC',
      'memtype:NP',
      'cache.wbinvd',
      'gart.enable',
      'gart.flush',
    ]);
  });

  it.each([
    ['wbinvd', /without a full wbinvd after the aperture was made not-present/],
    ['np', /direct map of aperture frame \d+ is present/],
  ] as const)('enabling before %s is reported', (late, message) => {
    const r = explore(scenario42(late), {
      strategy: { kind: 'pct', depth: 3 },
      iterations: 5,
      seed: 1,
    });
    expect(r.failures[0]!.violations[0]!.kind).toBe('gart-init-order');
    expect(r.failures[0]!.violations[0]!.message).toMatch(message);
  });
});
