// Exploration acceptance of the x86 TLB model (issue 6): a process unmaps and maps again two
// regions — one alone in its page tables (its munmap frees them), one next to a mapping that keeps
// its PTE table — while another thread of it reads both regions through CPU1's TLB and sleeps now
// and then, so that a kernel thread runs there lazily and the CPU walks the regions
// speculatively, and kswapd reclaims with batched flushes from CPU2. PCT finds nothing with the
// kernel's flush code and finds each deliberately broken variant within 1,000 schedules.
import { describe, expect, it } from '@jest/globals';
import { explore, replay } from '@mmnsim/core';
import type { ExploreReport } from '@mmnsim/core';
import type { X86TlbBug } from '@mmnsim/hw-x86-tlb';
import { scenarioFor, totals } from './fixtures/explore-scenario.js';

const ITERATIONS = 1000;
const STRATEGY = { kind: 'pct', depth: 3 } as const;

function run(bug: X86TlbBug, stopOnFirst = true): ExploreReport {
  return explore(scenarioFor(bug), {
    strategy: STRATEGY,
    iterations: ITERATIONS,
    stopOnFirst,
    seed: 1,
  });
}

describe('exploration (PCT, depth 3, 1,000 schedules)', () => {
  it('the kernel flush code: 1,000 schedules, no stale-TLB or use-after-free, and the races were exercised', () => {
    const report = run('none', false);
    expect(report.failures).toEqual([]);
    expect(report.iterations).toBe(ITERATIONS);
    expect(totals.ipis).toBeGreaterThan(ITERATIONS);
    expect(totals.lazyReturns).toBeGreaterThan(100);
    expect(totals.speculative).toBeGreaterThan(100);
    expect(totals.batchFlushes).toBeGreaterThan(100);
  });

  for (const bug of [
    'skip-lazy-when-tables-freed',
    'no-lazy-generation-check',
    'no-ipi-wait',
  ] as const) {
    it(`the broken variant '${bug}' is found with a stale-TLB or use-after-free violation within 1,000 schedules, and replays`, () => {
      const report = run(bug);
      expect(report.failures.length).toBe(1);
      const f = report.failures[0]!;
      expect(f.iteration).toBeLessThan(ITERATIONS);
      const v = f.violations[0]!;
      expect(['tlb-use-after-free', 'stale-tlb']).toContain(v.kind);
      expect(v.oracle).toBe('x86-tlb');
      const again = replay(scenarioFor(bug), f).result;
      expect(again.violations[0]?.kind).toBe(v.kind);
      expect(again.violations[0]?.message).toBe(v.message);
    });
  }
});
