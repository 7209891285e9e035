import type { JsonValue } from '../json.js';
import type { Task } from '../task.js';
import type { Strategy } from './strategy.js';

/** One choice point seen by a {@link DfsStrategy} run. */
export interface DfsChoice {
  /** The alternatives, non-preemptive first: the task ids in the order the search tries them. */
  readonly alternatives: readonly number[];
  /** True if alternatives after the first are preemptions (the previous task could go on). */
  readonly preemptive: boolean;
  /** Index of the alternative taken. */
  readonly taken: number;
}

/**
 * One run of a bounded-exhaustive search (stateless model checking by re-execution, as CHESS
 * does): it takes the alternatives given by `prefix` at the first choice points and the
 * non-preemptive alternative after that, recording every choice point so the search can
 * backtrack. The campaign drives it (`explore` with `{ kind: 'exhaustive', preemptions }`).
 */
export class DfsStrategy implements Strategy {
  /** See {@link Strategy.name}. */
  readonly name = 'exhaustive';
  /** The choice points of this run, in order. */
  readonly trace: DfsChoice[] = [];

  /** @param prefix alternative index to take at each of the first choice points. */
  constructor(readonly prefix: readonly number[]) {}

  /** See {@link Strategy.pick}. */
  pick(candidates: readonly Task[], _step: number, previous: Task | null): Task {
    const preemptive = previous !== null && candidates.includes(previous);
    const ids = candidates.map((t) => t.id).sort((a, b) => a - b);
    const alternatives = preemptive
      ? [previous.id, ...ids.filter((id) => id !== previous.id)]
      : ids;
    const i = this.trace.length;
    const taken = i < this.prefix.length ? this.prefix[i]! : 0;
    if (taken >= alternatives.length) {
      throw new Error(
        `exhaustive search diverged at choice ${i}: alternative ${taken} of ${alternatives.length} (the scenario is not deterministic)`,
      );
    }
    this.trace.push({ alternatives, preemptive, taken });
    const id = alternatives[taken]!;
    return candidates.find((t) => t.id === id)!;
  }

  /** See {@link Strategy.describe}. */
  describe(): JsonValue {
    return { kind: 'exhaustive', prefix: [...this.prefix] };
  }
}

/** Preemptions of a trace (choices of a non-first alternative at a preemptive point). */
export function tracePreemptions(trace: readonly DfsChoice[], upTo = trace.length): number {
  let n = 0;
  for (let i = 0; i < upTo; i++) {
    const c = trace[i]!;
    if (c.preemptive && c.taken > 0) n++;
  }
  return n;
}

/**
 * The prefix of the next run of a depth-first search with at most `bound` preemptions, or null
 * when the space is exhausted.
 */
export function nextDfsPrefix(trace: readonly DfsChoice[], bound: number): number[] | null {
  for (let j = trace.length - 1; j >= 0; j--) {
    const c = trace[j]!;
    const before = tracePreemptions(trace, j);
    for (let alt = c.taken + 1; alt < c.alternatives.length; alt++) {
      const cost = c.preemptive && alt > 0 ? 1 : 0;
      if (before + cost <= bound) return [...trace.slice(0, j).map((t) => t.taken), alt];
    }
  }
  return null;
}
