import type { JsonValue } from '../json.js';
import type { Task } from '../task.js';
import type { Strategy } from './strategy.js';

/**
 * The choice a scheduler makes without preempting: keep running the task that ran the previous
 * step if it can go on, otherwise the candidate with the lowest id.
 */
export function nonPreemptiveChoice(candidates: readonly Task[], previous: Task | null): Task {
  let lowest = candidates[0]!;
  for (let i = 0; i < candidates.length; i++) {
    const t = candidates[i]!;
    if (t === previous) return t;
    if (t.id < lowest.id) lowest = t;
  }
  return lowest;
}

/**
 * Follows a recorded schedule where it can and falls back to the non-preemptive choice where the
 * recorded task cannot run (or the schedule is exhausted). Unlike {@link ReplayStrategy} it never
 * diverges: it is how schedule minimisation tries shortened or edited schedules.
 */
export class GuidedStrategy implements Strategy {
  /** See {@link Strategy.name}. */
  readonly name = 'guided';
  private next = 0;
  /** Choices where the recorded task could not run and the fallback was used. */
  misses = 0;

  /** @param schedule the task ids to follow, one per choice point. */
  constructor(readonly schedule: readonly number[]) {}

  /** See {@link Strategy.pick}. */
  pick(candidates: readonly Task[], _step: number, previous: Task | null): Task {
    const i = this.next++;
    if (i < this.schedule.length) {
      const want = this.schedule[i]!;
      for (let j = 0; j < candidates.length; j++)
        if (candidates[j]!.id === want) return candidates[j]!;
      this.misses++;
    }
    return nonPreemptiveChoice(candidates, previous);
  }

  /** See {@link Strategy.describe}. */
  describe(): JsonValue {
    return { kind: 'guided', choices: this.schedule.length };
  }
}
