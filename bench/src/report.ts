/// <reference lib="dom" />
/**
 * The report in Chromium (issue 18): `report.open_ms` — a 10,000-step run's report (an ODP
 * workload: rounds of mmap, ODP MR registration, NIC RDMA writes that fault every page in, and
 * munmap, with the notifier oracles and the log on) opened in Debian's Chromium until the viewer
 * has rendered; `report.scrub_ms` — the mean time of one scrubber move to a random point of the
 * run (state folded and panes re-rendered, layout included); `report.file_mb` — its size.
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScenario } from '@mmnsim/core';
import type { Scenario } from '@mmnsim/core';
import { IbAccess, rdmaPlugin, RdmaService } from '@mmnsim/drivers-rdma';
import { Map_, mmPlugin, MmService, notifierOracles, PAGE_SIZE, Prot } from '@mmnsim/mm';
import { chromiumLaunchOptions, loadLog, runReportHtml } from '@mmnsim/report';
import { chromium } from 'playwright-core';
import type { Metric } from './metric.js';

/** What the report's viewer exposes on `window` once it has rendered. */
type ViewerWindow = { __report?: { ready: boolean; events: number; scrubTo(i: number): void } };

const PAGES = 8;

/** Rounds of map / register / fault-in / unmap, long enough for about 10,000 steps. */
function longOdpRun(rounds: number): Scenario {
  return {
    id: 'bench-report-odp-rounds',
    options: () => ({
      cpus: 2,
      devices: ['nic0'],
      log: true,
      plugins: [mmPlugin({ totalFrames: 256 }), rdmaPlugin()],
    }),
    setup(sim) {
      const rdma = sim.get(RdmaService);
      const nic = rdma.createDevice('mlx5_0', { engine: 'nic0', faultCpu: 1 });
      for (const o of notifierOracles(sim, rdma.oracleOptions())) sim.addOracle(o);
      const proc = sim.get(MmService).createProcess('app');
      const qp = nic.createQp();
      const len = PAGES * PAGE_SIZE;
      sim.spawn('app', 0, function* () {
        for (let r = 0; r < rounds; r++) {
          const base = yield* proc.mmap(
            0,
            len,
            Prot.READ | Prot.WRITE,
            Map_.PRIVATE | Map_.ANONYMOUS,
          );
          const mr = yield* nic.registerOdpMr(
            proc,
            base,
            len,
            IbAccess.LOCAL_WRITE | IbAccess.REMOTE_WRITE,
          );
          if (typeof mr === 'number') throw new Error(`registerOdpMr: ${mr}`);
          const fault = sim.spawn(`fault${r}`, 1, function* () {
            for (let p = 0; p < PAGES; p++) {
              const wc = yield* qp.execute({
                opcode: 'RDMA_WRITE',
                remote: { mr, addr: base + p * PAGE_SIZE },
                data: [p],
              });
              if (wc.status !== 'SUCCESS') qp.reset();
            }
          });
          yield* sim.scheduler.join(fault);
          yield* proc.munmap(base, len);
          yield* nic.deregisterMr(mr);
        }
      });
    },
  };
}

/** `report.open_ms`, `report.scrub_ms`, `report.file_mb` and the run's size. */
export async function benchReport(): Promise<Metric[]> {
  let rounds = 10;
  let run = runScenario(longOdpRun(rounds), 1, 'random');
  // Scale the rounds to about 10,000 steps.
  rounds = Math.max(1, Math.round((rounds * 10_000) / run.result.steps));
  run = runScenario(longOdpRun(rounds), 1, 'random');
  if (run.result.violations.length > 0)
    throw new Error(`bench run failed: ${run.result.violations[0]!.message}`);
  const loaded = loadLog(run.sim.log!.toNdjson({ scenario: 'bench-report-odp-rounds' }));
  const html = runReportHtml(loaded);
  const dir = mkdtempSync(join(tmpdir(), 'mmnsim-bench-report-'));
  const file = join(dir, 'report.html');
  writeFileSync(file, html);
  const browser = await chromium.launch(chromiumLaunchOptions());
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto('about:blank');
    let open = Infinity;
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      await page.goto('file://' + file);
      await page.waitForFunction(() => (window as ViewerWindow).__report?.ready === true);
      open = Math.min(open, performance.now() - t0);
    }
    const scrub = await page.evaluate(() => {
      const viewer = (window as ViewerWindow).__report!;
      const n = viewer.events;
      const state = document.getElementById('state')!;
      let x = 12345;
      const t0 = performance.now();
      const moves = 200;
      for (let k = 0; k < moves; k++) {
        x = (x * 1103515245 + 12345) % 2147483648;
        viewer.scrubTo(x % n);
        void state.offsetHeight;
      }
      return (performance.now() - t0) / moves;
    });
    return [
      { name: 'report.open_ms', value: Math.round(open), unit: 'ms' },
      { name: 'report.scrub_ms', value: Math.round(scrub * 100) / 100, unit: 'ms' },
      { name: 'report.file_mb', value: Math.round((html.length / 1e6) * 100) / 100, unit: 'MB' },
      { name: 'report.run_steps', value: run.result.steps, unit: 'steps' },
      { name: 'report.run_events', value: loaded.events.length, unit: 'events' },
    ];
  } finally {
    await browser.close();
  }
}
