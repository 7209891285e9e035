// Exploration acceptance of KVM as a secondary MMU (users-and-hardware.md §1, §7): the workload
// of fixtures/kvm-workload.ts — a VM with two vCPUs reading and writing guest memory while the
// host process runs MADV_DONTNEED, mprotect, fork (and a COW break), munmap and a re-mmap on the
// backing range, and a kswapd-like task reclaims and migrates its pages. With the notifier
// oracles and the KVM oracle attached, PCT finds nothing in the correct model, and finds each
// broken variant (scenarios 1, 2 and 6 of §7) within the budget, with the rule it breaks.
import { describe, expect, it } from '@jest/globals';
import { explore, replay } from '@mmnsim/core';
import type { ExploreReport } from '@mmnsim/core';
import type { KvmBugs } from '@mmnsim/drivers-kvm';
import { kvmWorkload, newTotals } from './fixtures/kvm-workload.js';

const ITERATIONS = 1000;
const BROKEN_BUDGET = 2000;
const STRATEGY = { kind: 'pct', depth: 3 } as const;

function firstFailure(report: ExploreReport): { iteration: number; kinds: string[] } {
  const f = report.failures[0];
  if (f === undefined) return { iteration: -1, kinds: [] };
  return { iteration: f.iteration, kinds: f.violations.map((v) => v.kind) };
}

function brokenCampaign(id: string, bugs: KvmBugs, rule: string): void {
  const sc = kvmWorkload(id, { bugs });
  const report = explore(sc, { strategy: STRATEGY, iterations: BROKEN_BUDGET, seed: 1 });
  const f = firstFailure(report);
  expect(f.iteration).toBeGreaterThanOrEqual(0);
  expect(f.iteration).toBeLessThan(BROKEN_BUDGET);
  expect(f.kinds).toContain(rule);
  // The failure replays from its seed and schedule.
  const again = replay(sc, report.failures[0]!);
  expect(again.result.violations.map((v) => v.kind)).toEqual(f.kinds);
}

describe('KVM under exploration: 2 vCPUs against munmap, mprotect, MADV_DONTNEED, fork, reclaim and migration', () => {
  it(`the correct model: ${ITERATIONS} PCT(depth 3) schedules find no violation`, () => {
    const totals = newTotals();
    const report = explore(kvmWorkload('kvm', { totals }), {
      strategy: STRATEGY,
      iterations: ITERATIONS,
      seed: 1,
    });
    expect(report.failures.map((f) => f.violations.map((v) => `${v.kind}: ${v.message}`))).toEqual(
      [],
    );
    expect(report.iterations).toBe(ITERATIONS);
    expect(totals.runs).toBe(ITERATIONS + 1); // + the PCT probe run
    // The races were exercised: faults retried, SPTEs installed and zapped, IPIs sent.
    expect(totals.retries).toBeGreaterThan(0);
    expect(totals.installed).toBeGreaterThan(0);
    expect(totals.zapped).toBeGreaterThan(0);
    expect(totals.ipis).toBeGreaterThan(0);
    expect(totals.accesses).toBeGreaterThan(0);
  });

  it('scenario 1 broken (the seq snapshot taken after GUP) is found with kvm-stale-spte, and replays', () => {
    brokenCampaign('kvm-seq-after-gup', { seqSnapshotAfterGup: true }, 'kvm-stale-spte');
  });

  it('scenario 2 broken (the staleness check ignores the in-progress range) is found with kvm-spte-in-invalidation, and replays', () => {
    brokenCampaign(
      'kvm-stale-check-ignores-range',
      { staleCheckIgnoresRange: true },
      'kvm-spte-in-invalidation',
    );
  });

  it('scenario 6 broken (the remote flush done after start returns) is found with kvm-tlb-survived-start, and replays', () => {
    brokenCampaign(
      'kvm-flush-after-start',
      { flushAfterStartReturns: true },
      'kvm-tlb-survived-start',
    );
  });
});
