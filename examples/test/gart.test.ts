import { describe, expect, it } from '@jest/globals';
import { explore } from '@mmnsim/core';
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
