// Exploration acceptance of the RDMA driver (users-and-hardware.md §2, §7 scenarios 17–22): NIC
// READ/WRITE traffic on an ODP MR while the process unmaps and remaps the range, changes its
// protection, forks, drops pages with MADV_DONTNEED, a page migrates and kswapd reclaims — with
// the notifier oracles and the rdma oracle watching. PCT finds nothing for the correct driver and
// finds each broken variant: first the rule it breaks (reported where it is broken), then — with
// runs going on after the rule report — the stale translation or bad DMA it leads to. Pinned-MR
// traffic while the process unmaps and reuses the range keeps hitting the pinned pages.
import { describe, expect, it } from '@jest/globals';
import { explore, replay, runScenario } from '@mmnsim/core';
import type { ExploreReport, StrategySpec } from '@mmnsim/core';
import type { RdmaBug } from '@mmnsim/drivers-rdma';
import { newTotals, odpScenario, PAGES, pinnedScenario } from './fixtures/workloads.js';
import type { PinnedOutcome } from './fixtures/workloads.js';

const ITERATIONS = 1000;
const BUDGET = 2000;
const PCT = { kind: 'pct', depth: 3 } as const;

/** What a stale translation or a bad DMA looks like to the oracles. */
const CONSEQUENCES = [
  'secondary-map-in-window',
  'secondary-mapping-survived-start',
  'secondary-mapping-to-freed-frame',
  'secondary-use-after-free',
  'dma-unmapped-access',
];

/** The first failing iteration of a campaign that stops at the first violation. */
function firstFailure(report: ExploreReport): { iteration: number; kinds: string[] } {
  const f = report.failures[0];
  if (f === undefined) return { iteration: -1, kinds: [] };
  return { iteration: f.iteration, kinds: [...new Set(f.violations.map((v) => v.kind))] };
}

/**
 * The first iteration (of at most `BUDGET`) in which the oracles see a consequence of the bug:
 * runs go on after the rule report (stopOnViolation false), PCT with the step count measured as
 * `explore` does.
 */
function firstConsequence(bug: RdmaBug): { iteration: number; kinds: string[] } {
  const sc = odpScenario(`odp-${bug}-consequence`, { bugs: [bug], stopOnViolation: false });
  let k = runScenario(sc, 1, 'round-robin').result.steps;
  for (let i = 0; i < BUDGET; i++) {
    const spec: StrategySpec = { ...PCT, steps: Math.max(1, k) };
    const { result } = runScenario(sc, 1 + i, spec);
    if (result.steps > k) k = result.steps;
    const kinds = [...new Set(result.violations.map((v) => v.kind))].filter((x) =>
      CONSEQUENCES.includes(x),
    );
    if (kinds.length > 0) return { iteration: i, kinds };
  }
  return { iteration: -1, kinds: [] };
}

describe('ODP MR under exploration (users-and-hardware.md §2.2, §2.3, §7 scenario 17)', () => {
  it(`the correct driver: ${ITERATIONS} PCT(depth 3) schedules of NIC READ/WRITE traffic during munmap + re-mmap, mprotect, fork, madvise(DONTNEED), migration and reclaim find no violation`, () => {
    const totals = newTotals();
    const report = explore(odpScenario('odp-traffic', { totals }), {
      strategy: PCT,
      iterations: ITERATIONS,
      seed: 1,
    });
    expect(report.failures.map((f) => f.violations.map((v) => `${v.kind}: ${v.message}`))).toEqual(
      [],
    );
    expect(report.iterations).toBe(ITERATIONS);
    expect(totals.runs).toBe(ITERATIONS + 1); // + the PCT probe run
    // The races were exercised: device faults, collisions seen by read_retry and by
    // hmm_range_fault, MTT entries zapped and pages unmapped by invalidations, DMA done, and
    // work requests failing while the range was unmapped or read-only.
    expect(totals.faults).toBeGreaterThan(0);
    expect(totals.collisions).toBeGreaterThan(0);
    expect(totals.busyRetries).toBeGreaterThan(0);
    expect(totals.zapped).toBeGreaterThan(0);
    expect(totals.unmapped).toBeGreaterThan(0);
    expect(totals.dmaPages).toBeGreaterThan(0);
    expect(totals.errors).toBeGreaterThan(0);
  });

  const rules: [RdmaBug, string][] = [
    ['no-read-retry', 'odp-mtt-update-unchecked'],
    ['read-retry-outside-lock', 'mmn-read-retry-unlocked'],
    ['mtt-after-unlock', 'odp-mtt-update-unlocked'],
    ['dma-unmap-before-zap', 'odp-dma-unmap-before-zap'],
    ['set-seq-if-mapped', 'mmn-set-seq-missing'],
  ];
  for (const [bug, rule] of rules) {
    it(`broken variant '${bug}' is found within ${BUDGET} PCT schedules as ${rule}, the failure replays, and the oracles then see the stale translation or bad DMA it causes`, () => {
      const id = `odp-${bug}`;
      const report = explore(odpScenario(id, { bugs: [bug] }), {
        strategy: PCT,
        iterations: BUDGET,
        seed: 1,
      });
      const f = firstFailure(report);
      expect(f.iteration).toBeGreaterThanOrEqual(0);
      expect(f.kinds).toEqual([rule]);
      const again = replay(odpScenario(id, { bugs: [bug] }), report.failures[0]!);
      expect([...new Set(again.result.violations.map((v) => v.kind))]).toEqual(f.kinds);

      const c = firstConsequence(bug);
      expect(c.iteration).toBeGreaterThanOrEqual(0);
      expect(c.iteration).toBeLessThan(BUDGET);
      expect(c.kinds.length).toBeGreaterThan(0);
    });
  }
});

describe('pinned MR under exploration (users-and-hardware.md §2.5, §7 scenario 22)', () => {
  it(`${ITERATIONS} PCT(depth 3) schedules of NIC writes to a pinned MR while the process unmaps the range and maps new memory there: the NIC keeps hitting the pinned pages, the process sees only its new memory, nothing is freed before deregistration`, () => {
    const outcomes: PinnedOutcome[] = [];
    const report = explore(pinnedScenario('pinned-traffic', outcomes), {
      strategy: PCT,
      iterations: ITERATIONS,
      seed: 1,
    });
    expect(report.failures.map((f) => f.violations.map((v) => `${v.kind}: ${v.message}`))).toEqual(
      [],
    );
    expect(outcomes).toHaveLength(ITERATIONS + 1);
    const nic: number[] = [];
    const cpu: number[] = [];
    for (let p = 0; p < PAGES; p++) {
      nic.push(p + 1, 520 + p); // the original word 0, then the NIC's last write in word 1
      cpu.push(900 + p); // what the process stored in its new memory
    }
    for (const o of outcomes) {
      expect(o.nicReads).toEqual(nic);
      expect(o.cpuLoads).toEqual(cpu);
      expect(o.freedEarly).toBe(false);
      expect(o.freedAfter).toBe(true);
      expect(o.pinnedVm).toEqual([PAGES, 0]);
    }
  });
});
