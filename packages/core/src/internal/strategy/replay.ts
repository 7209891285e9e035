import type { JsonValue } from '../json.js';
import type { Task } from '../task.js';
import type { Strategy } from './strategy.js';

/**
 * A replayed run asked for a choice the recorded schedule cannot give: the recorded task is not
 * runnable at that point, or the run needs more choices than were recorded. This means the
 * scenario, its plugins or their options differ from the recorded run.
 */
export class ReplayDivergenceError extends Error {
  /** Always `'ReplayDivergenceError'`. */
  override readonly name = 'ReplayDivergenceError';

  /**
   * @param choice index of the choice in the schedule (from 0).
   * @param step scheduler step at which it happened.
   * @param expected the recorded task id, or -1 past the end of the schedule.
   * @param candidates ids of the tasks that could run.
   */
  constructor(
    readonly choice: number,
    readonly step: number,
    readonly expected: number,
    readonly candidates: readonly number[],
  ) {
    super(
      expected < 0
        ? `replay diverged at choice ${choice} (step ${step}): the recorded schedule has only ${choice} choices, but tasks [${candidates.join(', ')}] still want to run`
        : `replay diverged at choice ${choice} (step ${step}): recorded task ${expected} is not runnable; runnable tasks are [${candidates.join(', ')}]`,
    );
  }
}

/**
 * Replays a recorded schedule: the i-th choice picks the i-th recorded task id. Combined with
 * the recorded seed this reproduces the run exactly (same event log, same final hash). A
 * mismatch throws {@link ReplayDivergenceError} instead of silently running something else.
 */
export class ReplayStrategy implements Strategy {
  /** See {@link Strategy.name}. */
  readonly name = 'replay';
  private next = 0;

  /** @param schedule the recorded task ids, one per choice. */
  constructor(readonly schedule: readonly number[]) {}

  /** See {@link Strategy.pick}. */
  pick(candidates: readonly Task[], step: number): Task {
    const i = this.next;
    const want = i < this.schedule.length ? this.schedule[i]! : -1;
    for (let j = 0; j < candidates.length; j++) {
      if (candidates[j]!.id === want) {
        this.next = i + 1;
        return candidates[j]!;
      }
    }
    throw new ReplayDivergenceError(
      i,
      step,
      want,
      candidates.map((t) => t.id),
    );
  }

  /** Number of recorded choices consumed so far. */
  get consumed(): number {
    return this.next;
  }

  /** See {@link Strategy.describe}. */
  describe(): JsonValue {
    return { kind: 'replay', choices: this.schedule.length };
  }
}
