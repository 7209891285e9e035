import type { JsonValue } from '../json.js';
import type { RandomStream } from '../random.js';
import type { Task } from '../task.js';

/** What a strategy is told before a run starts. */
export interface StrategyStartInfo {
  /** The strategy's own random stream (`'sched'`), derived from the simulation seed. */
  readonly random: RandomStream;
  /** The run's step budget. */
  readonly maxSteps: number;
}

/**
 * Decides which runnable task steps next at each scheduling point that offers a choice
 * (ARCHITECTURE §3.3). The sequence of decisions is the run's schedule; the seed plus the
 * schedule replay the run exactly.
 *
 * The scheduler asks only when two or more tasks could run. A strategy must be deterministic
 * given its random stream: no hidden state from outside the simulation.
 *
 * ## Example: always run the task with the lowest id
 * ```ts
 * const lowestFirst: Strategy = {
 *   name: 'lowest-first',
 *   pick: (candidates) => candidates.reduce((a, b) => (b.id < a.id ? b : a)),
 *   describe: () => ({ kind: 'lowest-first' }),
 * };
 * Simulation.create({ seed: 1, cpus: 2, strategy: lowestFirst });
 * ```
 */
export interface Strategy {
  /** Short name shown in reports (`'pct'`, `'random'` …). */
  readonly name: string;
  /** Called once before the run, with the strategy's random stream. */
  start?(info: StrategyStartInfo): void;
  /** Called when a task is created, before it can be a candidate. */
  onSpawn?(task: Task): void;
  /**
   * Chooses the task to run from `candidates` (two or more, in a deterministic order).
   * @param candidates the tasks that may step now.
   * @param step the scheduler step about to be taken.
   * @param previous the task that ran the previous step (null at the first): choosing another
   * candidate while `previous` is among the candidates is a preemption.
   * @returns one element of `candidates`.
   */
  pick(candidates: readonly Task[], step: number, previous: Task | null): Task;
  /** The strategy and its parameters as JSON, for log headers and replay files. */
  describe(): JsonValue;
}
