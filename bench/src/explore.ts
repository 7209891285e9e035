/**
 * Campaign throughput (issue 9): `explore.schedules_per_s` on an ODP fault-vs-munmap scenario —
 * a 16-page ODP memory region, one task that makes the NIC fault every page in (RDMA WRITE per
 * page, so each access takes the ODP page-fault path), and one task that munmaps the range — a
 * fresh simulation per schedule, PCT depth 3, with the notifier and RDMA oracles attached and
 * the log off, as campaigns run. `explore.zoo_total_s` is one whole `pnpm zoo` (14 variants and
 * their counterparts, seeds 1–5, 2,000 schedules each).
 */
import { explore } from '@mmnsim/core';
import type { Scenario } from '@mmnsim/core';
import { IbAccess, rdmaPlugin, RdmaService } from '@mmnsim/drivers-rdma';
import type { OdpMr } from '@mmnsim/drivers-rdma';
import { Map_, mmPlugin, MmService, notifierOracles, PAGE_SIZE, Prot } from '@mmnsim/mm';
import { runZoo } from '@mmnsim/zoo';
import type { Metric } from './metric.js';

const PAGES = 16;
const SCHEDULES = 2000;

/** The fault-vs-munmap scenario of the bench. */
export function odpFaultVsMunmap(): Scenario {
  return {
    id: 'bench-odp-fault-vs-munmap',
    options: () => ({
      cpus: 2,
      devices: ['nic0'],
      log: false,
      plugins: [mmPlugin({ totalFrames: 64 }), rdmaPlugin()],
    }),
    setup(sim) {
      const rdma = sim.get(RdmaService);
      const nic = rdma.createDevice('mlx5_0', { engine: 'nic0', faultCpu: 1 });
      for (const o of notifierOracles(sim, rdma.oracleOptions())) sim.addOracle(o);
      const proc = sim.get(MmService).createProcess('app');
      const qp = nic.createQp();
      const len = PAGES * PAGE_SIZE;
      let base = 0;
      let mr: OdpMr | null = null;
      sim.spawn('app', 0, function* () {
        base = yield* proc.mmap(0, len, Prot.READ | Prot.WRITE, Map_.PRIVATE | Map_.ANONYMOUS);
        const r = yield* nic.registerOdpMr(
          proc,
          base,
          len,
          IbAccess.LOCAL_WRITE | IbAccess.REMOTE_WRITE,
        );
        if (typeof r === 'number') throw new Error(`registerOdpMr: ${r}`);
        mr = r;
        const fault = sim.spawn('fault', 1, function* () {
          for (let p = 0; p < PAGES; p++) {
            const wc = yield* qp.execute({
              opcode: 'RDMA_WRITE',
              remote: { mr: mr!, addr: base + p * PAGE_SIZE },
              data: [p],
            });
            if (wc.status !== 'SUCCESS') qp.reset(); // the range went away under the NIC
          }
        });
        const munmap = sim.spawn('munmap', 0, function* () {
          yield* proc.munmap(base, len);
        });
        yield* sim.scheduler.join(fault);
        yield* sim.scheduler.join(munmap);
        yield* nic.deregisterMr(r);
        yield* proc.exit();
      });
    },
  };
}

/** `explore.schedules_per_s` (best of 3 campaigns of 2,000 schedules) and steps per schedule. */
export function benchExplore(): Metric[] {
  const scenario = odpFaultVsMunmap();
  explore(scenario, { strategy: { kind: 'pct', depth: 3 }, iterations: 200, seed: 7 }); // warm-up
  let best = 0;
  let steps = 0;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    const report = explore(scenario, {
      strategy: { kind: 'pct', depth: 3 },
      iterations: SCHEDULES,
      seed: round + 1,
    });
    const secs = (performance.now() - t0) / 1000;
    if (report.failures.length > 0) {
      const v = report.failures[0]!.violations[0]!;
      throw new Error(`bench scenario failed: ${v.kind}: ${v.message}`);
    }
    if (report.iterations / secs > best) {
      best = report.iterations / secs;
      steps = report.totalSteps / report.iterations;
    }
  }
  return [
    { name: 'explore.schedules_per_s', value: Math.round(best), unit: 'schedules/s' },
    { name: 'explore.steps_per_schedule', value: Math.round(steps), unit: 'steps' },
  ];
}

/** `explore.zoo_total_s`: wall time of the whole zoo campaign (about 100 s on this machine). */
export function benchZoo(): Metric[] {
  const t0 = performance.now();
  const lines = runZoo();
  const secs = (performance.now() - t0) / 1000;
  const bad = lines.filter((l) => (l.variant.endsWith('/correct') ? l.found : !l.found));
  if (bad.length > 0) throw new Error(`zoo: unexpected ${bad.map((l) => l.variant).join(', ')}`);
  return [{ name: 'explore.zoo_total_s', value: Math.round(secs * 10) / 10, unit: 's' }];
}
