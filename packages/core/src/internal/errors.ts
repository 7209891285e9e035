/**
 * A simulation was configured wrongly: a bad option, a missing plugin, an unknown context.
 * The message names the field (or plugin) and the allowed values. Thrown before a run starts,
 * never from inside one.
 */
export class ConfigError extends Error {
  /** Always `'ConfigError'`. */
  override readonly name = 'ConfigError';
}

/**
 * Model code hit a state the kernel would `BUG()` on. Thrown inside a task; the scheduler
 * catches it, reports a `bug` violation with this message and ends the task, so the run and its
 * log survive.
 *
 * @see BUG
 */
export class KernelBug extends Error {
  /** Always `'KernelBug'`. */
  override readonly name = 'KernelBug';
}

/**
 * Thrown inside a task whose current step did more work than the simulation's `maxStepWork`
 * (events emitted plus {@link Scheduler.work} units) without reaching a scheduling point: a
 * loop that never yields. The scheduler reports it as a `step-budget` violation naming the task
 * and the last event before the budget ran out, ends the task, and the run and its log survive.
 */
export class StepBudgetError extends Error {
  /** Always `'StepBudgetError'`. */
  override readonly name = 'StepBudgetError';

  /**
   * @param limit the work budget of one step.
   * @param taskName the task that overran it.
   * @param taskId its id.
   * @param lastSeq `seq` of the last event built before the overrun (-1 if none).
   */
  constructor(
    readonly limit: number,
    readonly taskName: string,
    readonly taskId: number,
    readonly lastSeq: number,
  ) {
    super(
      `${taskName}#${taskId} did more than ${limit} units of work in one step without reaching a scheduling point (last event seq ${lastSeq})`,
    );
  }
}
