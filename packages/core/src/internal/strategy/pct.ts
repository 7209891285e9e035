import type { JsonValue } from '../json.js';
import type { RandomStream } from '../random.js';
import type { Task } from '../task.js';
import type { Strategy, StrategyStartInfo } from './strategy.js';

/** Parameters of {@link PctStrategy}. */
export interface PctOptions {
  /** Bug depth d ≥ 1: the number of ordering constraints the target bug needs (default 3). */
  readonly depth?: number;
  /**
   * k, the expected number of steps of one run: the d − 1 priority change points are drawn
   * uniformly from [1, k]. Defaults to the run's step budget; campaigns pass a measured value,
   * since a budget much larger than a real run wastes change points.
   */
  readonly steps?: number;
}

/**
 * PCT, probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi, Nagarakatte,
 * ASPLOS 2010).
 *
 * Every task gets a distinct random priority ≥ d when it is created, and the highest-priority
 * candidate always runs. At d − 1 change points drawn uniformly from the first k steps, the task
 * about to run drops to a priority below every initial one (the i-th change point gives
 * priority d − i). With n tasks, k steps and depth d, one run finds any given depth-d bug with
 * probability at least 1 / (n · k^(d−1)).
 */
export class PctStrategy implements Strategy {
  /** See {@link Strategy.name}. */
  readonly name = 'pct';
  /** The bug depth d. */
  readonly depth: number;
  private steps: number;
  private random: RandomStream | null = null;
  private priority: number[] = [];
  private changePoints: number[] = [];
  private nextChange = 0;

  /** @param options depth and expected run length. */
  constructor(options: PctOptions = {}) {
    const depth = options.depth ?? 3;
    if (!Number.isInteger(depth) || depth < 1) {
      throw new RangeError(`PctStrategy: depth (${depth}) must be an integer >= 1`);
    }
    if (options.steps !== undefined && (!Number.isInteger(options.steps) || options.steps < 1)) {
      throw new RangeError(`PctStrategy: steps (${options.steps}) must be an integer >= 1`);
    }
    this.depth = depth;
    this.steps = options.steps ?? 0;
  }

  /** See {@link Strategy.start}. */
  start(info: StrategyStartInfo): void {
    this.random = info.random;
    if (this.steps === 0) this.steps = info.maxSteps;
    const points = new Set<number>();
    const wanted = Math.min(this.depth - 1, this.steps);
    while (points.size < wanted) points.add(info.random.int(1, this.steps));
    this.changePoints = [...points].sort((a, b) => a - b);
  }

  /** See {@link Strategy.onSpawn}. */
  onSpawn(task: Task): void {
    if (this.random === null) throw new Error('PctStrategy.onSpawn called before start()');
    // A random key above every change-point priority; ties (rare) are broken by task id.
    this.priority[task.id] = this.depth + this.random.int(0, 0x3fffffff);
  }

  /** See {@link Strategy.pick}. */
  pick(candidates: readonly Task[], step: number): Task {
    let best = this.highest(candidates);
    while (
      this.nextChange < this.changePoints.length &&
      this.changePoints[this.nextChange]! <= step
    ) {
      this.nextChange++;
      this.priority[best.id] = this.depth - this.nextChange;
      best = this.highest(candidates);
    }
    return best;
  }

  private highest(candidates: readonly Task[]): Task {
    const prio = this.priority;
    let best = candidates[0]!;
    let bp = prio[best.id]!;
    for (let i = 1; i < candidates.length; i++) {
      const t = candidates[i]!;
      const p = prio[t.id]!;
      if (p > bp || (p === bp && t.id < best.id)) {
        best = t;
        bp = p;
      }
    }
    return best;
  }

  /** See {@link Strategy.describe}. */
  describe(): JsonValue {
    return { kind: 'pct', depth: this.depth, steps: this.steps };
  }
}
