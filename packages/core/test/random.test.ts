import { describe, expect, it } from '@jest/globals';
import { RandomSource } from '@mmnsim/core';

describe('seeded randomness (ARCHITECTURE §3.5)', () => {
  it('a stream depends only on the seed and its name, not on which other streams exist', () => {
    const a = new RandomSource(11);
    const first = Array.from({ length: 20 }, () => a.stream('kvm').int(0, 1000));
    const b = new RandomSource(11);
    b.stream('mm').int(0, 5); // another consumer appears first and draws
    b.stream('x86-tlb');
    const second = Array.from({ length: 20 }, () => b.stream('kvm').int(0, 1000));
    expect(second).toEqual(first);
  });

  it('different names and different seeds give different sequences', () => {
    const draw = (seed: number, name: string) => {
      const s = new RandomSource(seed).stream(name);
      return Array.from({ length: 10 }, () => s.int(0, 1 << 30)).join(',');
    };
    expect(draw(1, 'a')).not.toBe(draw(1, 'b'));
    expect(draw(1, 'a')).not.toBe(draw(2, 'a'));
    expect(draw(2 ** 40, 'a')).not.toBe(draw(2 ** 40 + 2 ** 32, 'a'));
  });

  it('int stays in its inclusive bounds, float in [0, 1), and pick on an empty array names the stream', () => {
    const s = new RandomSource(5).stream('bounds');
    for (let i = 0; i < 1000; i++) {
      const v = s.int(-3, 3);
      expect(v >= -3 && v <= 3).toBe(true);
      const f = s.float();
      expect(f >= 0 && f < 1).toBe(true);
    }
    expect(() => s.pick([])).toThrow(/RandomStream\(bounds\)\.pick: items is empty/);
  });
});
