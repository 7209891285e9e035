/**
 * The few facts every event is stamped with: the scheduler step, the virtual time, and which
 * task on which execution context is running. The scheduler and the clock write it; the bus
 * reads it. Sharing one small object keeps the bus independent of the scheduler.
 *
 * Not exported from the package: users see these values on events and on `Simulation`.
 */
export class RunState {
  /** Scheduling steps taken so far (one per resumed task slice). */
  step = 0;
  /** Virtual time in nanoseconds. */
  time = 0;
  /** Id of the running task, or -1 outside any task (setup, timers, teardown). */
  task = -1;
  /** Name of the running task's execution context, or `'-'` outside any task. */
  ctx = '-';
  /** Name of the running task, or `'-'` outside any task. */
  taskName = '-';
  /** Work units (events emitted, {@link Scheduler.work} calls) of the current step so far. */
  work = 0;
  /** The most work one step may do before the task is stopped with a `step-budget` violation. */
  workLimit = Infinity;
}
