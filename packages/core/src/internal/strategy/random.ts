import type { JsonValue } from '../json.js';
import type { RandomStream } from '../random.js';
import type { Task } from '../task.js';
import type { Strategy, StrategyStartInfo } from './strategy.js';

/**
 * Seeded random walk: each choice is uniform over the candidates. Good at shallow races; the
 * probability of hitting a specific deep interleaving falls off quickly, which is what PCT
 * addresses.
 */
export class RandomStrategy implements Strategy {
  /** See {@link Strategy.name}. */
  readonly name = 'random';
  private random: RandomStream | null = null;

  /** See {@link Strategy.start}. */
  start(info: StrategyStartInfo): void {
    this.random = info.random;
  }

  /** See {@link Strategy.pick}. */
  pick(candidates: readonly Task[]): Task {
    if (this.random === null) throw new Error('RandomStrategy.pick called before start()');
    return candidates[this.random.int(0, candidates.length - 1)]!;
  }

  /** See {@link Strategy.describe}. */
  describe(): JsonValue {
    return { kind: 'random' };
  }
}
