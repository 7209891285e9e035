import { describe, expect, it } from '@jest/globals';
import { explore, fold, replay, Simulation } from '@mmnsim/core';
import { lastWriterProjection, liveView, mmProjection, MmService } from '@mmnsim/mm';
import { runGartExample } from '../src/gart/example.js';
import { gartScenario } from '../src/gart/scenario.js';

describe('pnpm gart (issue 14; users-and-hardware scenario 41 with a speculating secondary MMU)', () => {
  it('the correct composition (exit, munmap, reclaim, AGP churn) is clean over 2,000 PCT schedules', () => {
    const r = explore(gartScenario(), {
      strategy: { kind: 'pct', depth: 3 },
      iterations: 2000,
      seed: 1,
      stopOnFirst: false,
    });
    expect(r.distinct.map((d) => `${d.kind}: ${d.message}`)).toEqual([]);
    expect(r.iterations).toBe(2000);
  });

  it('finds the dirty-line write-back over the GPU data when ->release is skipped, minimises and replays it, and prints the line, the write-back and the bytes', () => {
    const lines: string[] = [];
    const r = runGartExample((l) => lines.push(l), { schedules: 20, seed: 1 });
    expect(r.correct).toEqual({ schedules: 20, violations: 0 });
    expect(r.firstWarning).toBe('mixed-memory-type');
    const c = r.corruption!;
    expect(c.kind).toBe('cache-writeback-corruption');
    expect(c.replayedKind).toBe('cache-writeback-corruption');
    expect(c.preemptionsAfter).toBeLessThanOrEqual(c.preemptionsBefore);
    expect(c.words.length).toBeGreaterThan(0);
    const [word, stale, lost] = c.words[0]!;
    expect(word).toBe(1);
    expect(stale).toBe(0);
    expect(lost! >>> 16).toBe(0x900d);
    const text = lines.join('\n');
    expect(text).toMatch(/The cached line: gru0 cache, frame \d+, line 0/);
    expect(text).toMatch(/GPU wrote +#\d+ .* word 1 = 0x900d00.. through the aperture/);
    expect(text).toMatch(/write-back +#\d+ .*word 1 0x900d00.. -> 0x0/);
  });
});

describe('the last-writer projection (issue 14 oracles)', () => {
  it('folding the corrupted run shows the write-back as the last writer of the GPU word, and the GPU write it destroyed', () => {
    const broken = gartScenario({ bug: 'skip-release', oracles: 'corruption' });
    const hunt = explore(broken, {
      strategy: { kind: 'pct', depth: 3 },
      iterations: 2000,
      seed: 2,
    });
    const f = hunt.failures[0]!;
    const { sim } = replay(broken, f, { log: true });
    const events = sim.log!.events;
    const lost = events.find((e) => e.type === 'cache.lost')!;
    const d = lost.data as { pfn: number; clobbered: number[][] };
    const writers = fold(lastWriterProjection(), events);
    const w = writers.get(d.pfn)!.get(d.clobbered[0]![0]!)!;
    expect(w.by).toBe('gru0 cache write-back (evict)');
    expect(w.value).toBe(0);
    expect(w.overwrote!.by).toMatch(/^gfx0 via aperture page \d+$/);
    expect(w.overwrote!.value >>> 16).toBe(0x900d);
    expect(w.overwrote!.seq).toBe(d.clobbered[0]![3]);
  });
});

describe('event sourcing with the cache model attached', () => {
  it.each([1, 2, 3])(
    'seed %i: folding the composition’s log with mmProjection gives the live memory model (alias writes, write-backs and clear_page included)',
    (seed) => {
      const s = gartScenario({ bug: 'skip-release', oracles: 'corruption' });
      const sim = Simulation.create({
        ...s.options(),
        log: true,
        seed,
        stopOnViolation: false,
        strategy: { kind: 'pct', depth: 3 },
      });
      s.setup(sim);
      sim.run();
      expect(fold(mmProjection(), sim.log!.events)).toEqual(liveView(sim.get(MmService).core));
    },
  );
});
