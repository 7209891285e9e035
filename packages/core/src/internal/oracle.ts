import type { EventBus } from './bus.js';
import type { Clock } from './clock.js';
import type { JsonValue } from './json.js';
import type { RunState } from './run-state.js';
import type { Scheduler } from './scheduler.js';

/**
 * A broken rule, as an oracle reports it (ARCHITECTURE §7). A violation fails the run;
 * exploration collects them.
 */
export interface Violation {
  /** Stable kind, the key violations are deduplicated by (`'deadlock'`, `'use-after-free'` …). */
  readonly kind: string;
  /** What rule broke and how, for a person. */
  readonly message: string;
  /** `seq` numbers of the events that prove it, oldest first. */
  readonly evidence: readonly number[];
  /** Id of the task that broke the rule (by default the running one), or -1. */
  readonly task: number;
  /** Name of that task, or `'-'`. */
  readonly taskName: string;
  /** Scheduler step at which it was reported. */
  readonly step: number;
  /** Virtual time (ns) at which it was reported. */
  readonly time: number;
  /** Id of the oracle (or kernel part) that reported it. */
  readonly oracle: string;
  /** Structured detail, such as a deadlock's wait-for graph. */
  readonly details?: JsonValue;
}

/** What an oracle passes to {@link OracleContext.report}; the rest is filled in. */
export interface ViolationReport {
  /** See {@link Violation.kind}. */
  readonly kind: string;
  /** See {@link Violation.message}. */
  readonly message: string;
  /** See {@link Violation.evidence}. */
  readonly evidence?: readonly number[];
  /** Overrides the task blamed (defaults to the running task). */
  readonly task?: {
    /** Task id, or -1 for none. */
    readonly id: number;
    /** Task name, or `'-'`. */
    readonly name: string;
  };
  /** See {@link Violation.details}. */
  readonly details?: JsonValue;
}

/** What an oracle gets when it is attached to a run. */
export interface OracleContext {
  /** The bus to observe. */
  readonly bus: EventBus;
  /** The scheduler, to inspect tasks. */
  readonly scheduler: Scheduler;
  /** The virtual clock. */
  readonly clock: Clock;
  /** Reports a violation on behalf of this oracle. */
  report(violation: ViolationReport): Violation;
}

/**
 * A checker that watches events and projections and reports broken rules (ARCHITECTURE §7).
 * Contributed to the {@link OracleContribution} extension point; attached before the run's first step.
 *
 * ## Example
 * ```ts
 * const noSpawnStorm: Oracle = {
 *   id: 'no-spawn-storm',
 *   attach(ctx) {
 *     let n = 0;
 *     ctx.bus.on('sched.spawn').subscribe((e) => {
 *       if (++n > 100) ctx.report({ kind: 'spawn-storm', message: 'more than 100 tasks', evidence: [e.seq] });
 *     });
 *   },
 * };
 * ```
 */
export interface Oracle {
  /** Unique id, shown on its violations. */
  readonly id: string;
  /** Subscribes to what the oracle needs. Called once per run, before the first step. */
  attach(ctx: OracleContext): void;
  /** Checks end-of-run rules (leaks, unpaired calls). Called once after the last step. */
  finish?(ctx: OracleContext): void;
}

/**
 * Collects the violations of one run and decides when the run must stop.
 *
 * With `stopOnViolation` (the default) the scheduler ends the run at the end of the step in
 * which the first violation was reported; otherwise the run goes on and violations accumulate.
 */
export class OracleRegistry {
  private readonly found: Violation[] = [];

  /**
   * @param bus where `oracle.violation` events are emitted.
   * @param state the run state violations are stamped from.
   * @param stopOnViolation end the run after the step of the first violation.
   * @internal
   */
  constructor(
    private readonly bus: EventBus,
    private readonly state: RunState,
    readonly stopOnViolation: boolean,
  ) {}

  /** Violations reported so far, in order. */
  get violations(): readonly Violation[] {
    return this.found;
  }

  /** True once the run should stop because of a violation. */
  get stopRequested(): boolean {
    return this.stopOnViolation && this.found.length > 0;
  }

  /** Records a violation from `oracle`, emits `oracle.violation`, and returns it. */
  report(oracle: string, v: ViolationReport): Violation {
    const s = this.state;
    const violation: Violation = {
      kind: v.kind,
      message: v.message,
      evidence: v.evidence ?? [],
      task: v.task?.id ?? s.task,
      taskName: v.task?.name ?? s.taskName,
      step: s.step,
      time: s.time,
      oracle,
      ...(v.details !== undefined ? { details: v.details } : {}),
    };
    this.found.push(violation);
    this.bus.emit('oracle.violation', {
      kind: violation.kind,
      message: violation.message,
      evidence: [...violation.evidence],
      oracle,
    });
    return violation;
  }
}
