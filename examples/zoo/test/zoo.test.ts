import { describe, expect, it } from '@jest/globals';
import { replay } from '@mmnsim/core';
import { huntVariant, ZOO } from '@mmnsim/zoo';

describe('the bug zoo (issue 9)', () => {
  it('has at least 12 variants, each with a rule, a spec section and expected kinds', () => {
    expect(ZOO.length).toBeGreaterThanOrEqual(12);
    for (const v of ZOO) {
      expect(v.rule.length).toBeGreaterThan(10);
      expect(v.spec).toMatch(/§/);
      expect(v.expected.length).toBeGreaterThan(0);
    }
  });

  it.each(ZOO.map((v) => [v.id, v] as const))(
    '%s: found within 2,000 PCT schedules (seed 1) with a violation naming the rule; the minimised schedule replays to the same kind',
    (_id, v) => {
      const h = huntVariant(v, { broken: true, seed: 1, iterations: 2000, minimise: true });
      expect(h.found).toBe(true);
      expect(v.expected).toContain(h.kind);
      const m = h.minimised!;
      expect(m.after.preemptions).toBeLessThanOrEqual(m.before.preemptions);
      const again = replay(v.scenario(true), { seed: m.seed, schedule: m.schedule });
      expect(again.result.violations[0]!.kind).toBe(h.kind);
    },
  );

  it.each(ZOO.map((v) => [v.id, v] as const))(
    '%s: the correct counterpart runs 200 PCT schedules clean',
    (_id, v) => {
      const h = huntVariant(v, { broken: false, seed: 1, iterations: 200 });
      expect(h.failure?.violations ?? []).toEqual([]);
      expect(h.iterations).toBe(200);
    },
  );
});
