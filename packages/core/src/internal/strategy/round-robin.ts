import type { JsonValue } from '../json.js';
import type { Task } from '../task.js';
import type { Strategy } from './strategy.js';

/**
 * Round-robin: at each choice, the candidate with the smallest id greater than the last chosen
 * task's id, wrapping around. Fully deterministic and seed-independent: one schedule per
 * scenario, which is why it finds few races — the baseline the other strategies are compared
 * with.
 */
export class RoundRobinStrategy implements Strategy {
  /** See {@link Strategy.name}. */
  readonly name = 'round-robin';
  private last = -1;

  /** See {@link Strategy.pick}. */
  pick(candidates: readonly Task[]): Task {
    let best: Task | undefined;
    let lowest: Task = candidates[0]!;
    for (let i = 0; i < candidates.length; i++) {
      const t = candidates[i]!;
      if (t.id < lowest.id) lowest = t;
      if (t.id > this.last && (best === undefined || t.id < best.id)) best = t;
    }
    const chosen = best ?? lowest;
    this.last = chosen.id;
    return chosen;
  }

  /** See {@link Strategy.describe}. */
  describe(): JsonValue {
    return { kind: 'round-robin' };
  }
}
