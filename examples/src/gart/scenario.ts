/**
 * The GART composition: an AGP-style graphics device whose driver allocates, binds, uses and
 * frees AGP memory, next to a process with a speculating secondary MMU (a GRU-like accelerator
 * with its own write-back cache), under munmap, reclaim and exit. With the accelerator's driver
 * skipping `->release`, a page freed at exit and reused as AGP memory receives a dirty-line
 * write-back over what the GPU wrote through the aperture.
 */
import type { Oracle, Scenario, Simulation, TaskGen } from '@mmnsim/core';
import { GartId, GartInitOrderOracle, GartStaleTlbOracle, iommuPlugin } from '@mmnsim/hw-iommu';
import type { Gart } from '@mmnsim/hw-iommu';
import { CacheCorruptionOracle, Map_, mmPlugin, MmService, PAGE_SIZE, Prot } from '@mmnsim/mm';
import { GART_DEVICES, SpecMmuDevice, specMmuPlugin } from '@mmnsim/zoo';
import type { SpecMmuBug } from '@mmnsim/zoo';

/** Where the process maps its buffer. */
export const GART_BASE = 0x40000000;
const RW = Prot.READ | Prot.WRITE;

/** Options of {@link gartScenario}. */
export interface GartScenarioOptions {
  /** The accelerator driver's bug (`'none'`: tears down and quiesces in `->release`). */
  readonly bug?: SpecMmuBug;
  /**
   * `'all'` (default): every GART and cache oracle. `'corruption'`: all but the mixed-memory-type
   * oracle, which would stop the run at the moment the alias meets the write-back mapping, before
   * any byte is lost — so the run goes on to show the corruption itself.
   */
  readonly oracles?: 'all' | 'corruption';
}

function oraclesOf(gart: Gart, which: 'all' | 'corruption'): Oracle[] {
  if (which === 'all') return gart.oracles();
  return [
    new GartInitOrderOracle(gart.hw, gart.iommu.iommuStart),
    new GartStaleTlbOracle(),
    new CacheCorruptionOracle(),
  ];
}

/** The GPU writes `0x900d0000 + round * 16 + page` to word 1 of aperture pages `[0, pages)`. */
function* gpu(sim: Simulation, gart: Gart, round: number, pages: number): TaskGen<void> {
  const gfx = gart.graphicsDevice('gfx0');
  for (let i = 0; i < pages; i++) {
    gfx.write(i, 1, 0x900d0000 + round * 16 + i);
    yield* sim.scheduler.preempt();
  }
}

/** The composition; see the file comment. */
export function gartScenario(options: GartScenarioOptions = {}): Scenario {
  const bug = options.bug ?? 'none';
  const which = options.oracles ?? 'all';
  return {
    id: `gart-composition${bug === 'none' ? '' : '-' + bug}${which === 'all' ? '' : '-' + which}`,
    options: () => ({
      cpus: 2,
      devices: [...GART_DEVICES],
      log: false,
      plugins: [
        mmPlugin({ totalFrames: 320 }),
        iommuPlugin({ gart: { aperturePages: 64, emergencyPages: 8 } }),
        specMmuPlugin({ bug }),
      ],
    }),
    setup(sim) {
      const gart = sim.get(GartId);
      for (const o of oraclesOf(gart, which)) sim.addOracle(o);
      const svc = sim.get(MmService);
      const spec = sim.get(SpecMmuDevice);
      const proc = svc.createProcess('app');
      const agp = gart.agp;
      sim.spawn('boot', 0, function* () {
        const r = yield* gart.iommu.init();
        if (r < 0) throw new Error(`gart_iommu_init failed: ${r}`);
        const app = sim.spawn('app', 0, function* () {
          yield* proc.mmap(
            GART_BASE,
            4 * PAGE_SIZE,
            RW,
            Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED,
          );
          for (let i = 0; i < 4; i++) yield* proc.store(GART_BASE + i * PAGE_SIZE, 100 + i);
          yield* spec.attach(proc);
          const job = sim.spawn('gru0 job', 'gru0', function* () {
            for (let i = 0; i < 4; i++)
              yield* spec.write(GART_BASE + i * PAGE_SIZE, 1, 0x5eed0000 + i);
          });
          yield* proc.munmap(GART_BASE + 3 * PAGE_SIZE, PAGE_SIZE);
          yield* sim.scheduler.join(job);
          yield* proc.exit();
        });
        const drm = sim.spawn('drm', 1, function* () {
          // AGP churn while the process runs.
          for (let round = 0; round < 2; round++) {
            const mem = yield* agp.allocMemory(2);
            if (typeof mem === 'number') throw new Error(`agp_allocate_memory failed: ${mem}`);
            yield* agp.bindMemory(mem, 0);
            const g = sim.spawn('gpu', 'gfx0', () => gpu(sim, gart, round, 2));
            yield* sim.scheduler.join(g);
            yield* agp.freeMemory(mem);
          }
          yield* svc.reclaim(1);
          // After the process exited: its freed pages come back as AGP memory.
          yield* sim.scheduler.join(app);
          const mem = yield* agp.allocMemory(8);
          if (typeof mem === 'number') throw new Error(`agp_allocate_memory failed: ${mem}`);
          yield* agp.bindMemory(mem, 0);
          const g = sim.spawn('gpu', 'gfx0', () => gpu(sim, gart, 2, 8));
          yield* sim.scheduler.join(g);
        });
        yield* sim.scheduler.join(drm);
      });
    },
  };
}
