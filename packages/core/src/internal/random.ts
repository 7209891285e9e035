import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';

/** FNV-1a over a string's UTF-16 code units, 32-bit. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A 32-bit finaliser (murmur3 fmix32) so near seeds give unrelated streams. */
function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x | 0;
}

/**
 * One independent, seeded stream of random numbers (xoroshiro128+), owned by one consumer.
 *
 * Streams are derived from the simulation seed and the consumer's name only, so adding a
 * plugin (a new consumer) does not change the numbers any other consumer sees.
 */
export class RandomStream {
  private readonly rng: RandomGenerator;

  /**
   * @param name the consumer's name (`'sched'`, `'mm.reclaim'`, a plugin id …).
   * @param seed the 32-bit seed derived for this stream.
   */
  constructor(
    readonly name: string,
    seed: number,
  ) {
    this.rng = xoroshiro128plus(seed);
  }

  /** A uniform integer in `[lo, hi]`, both inclusive. */
  int(lo: number, hi: number): number {
    return uniformInt(this.rng, lo, hi);
  }

  /** A uniform float in `[0, 1)` with 32 bits of randomness. */
  float(): number {
    return (this.rng.next() >>> 0) / 4294967296;
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError(`RandomStream(${this.name}).pick: items is empty`);
    return items[uniformInt(this.rng, 0, items.length - 1)]!;
  }

  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = uniformInt(this.rng, 0, i);
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }
}

/**
 * The simulation's single source of randomness (ARCHITECTURE §3.5): a seed, split into named
 * streams. `Math.random` is banned in simulation code; ask for a stream instead.
 *
 * ## Example
 * ```ts
 * const rnd = sim.random.stream('mydriver');
 * const victim = rnd.int(0, 15);
 * ```
 */
export class RandomSource {
  private readonly streams = new Map<string, RandomStream>();

  /** @param seed the simulation seed (any safe integer). */
  constructor(readonly seed: number) {}

  /** The stream for `name`, created on first use; the same name always gets the same stream. */
  stream(name: string): RandomStream {
    let s = this.streams.get(name);
    if (s === undefined) {
      const lo = this.seed | 0;
      const hi = Math.floor(this.seed / 4294967296) | 0;
      s = new RandomStream(name, mix(lo ^ mix(hi ^ fnv1a(name))));
      this.streams.set(name, s);
    }
    return s;
  }
}
