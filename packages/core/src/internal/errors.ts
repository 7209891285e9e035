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
