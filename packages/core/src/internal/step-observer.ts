/**
 * A process-wide hook the scheduler calls at the start of every task slice, for the watchdog
 * of an isolated run (`runIsolated`): it records in shared memory which task of which step is
 * running, so that when the worker is terminated because a task never came back, the parent can
 * name it. Its own file because it is the only global state of the core, and it never
 * influences a run (it only observes).
 */

/** The hook, or null (the default: no call). */
export const stepObserver: {
  /**
   * Called with the step, the task id, its name and the `seq` of the last event built so far
   * (-1 if none) before the task resumes.
   */
  fn: ((step: number, task: number, name: string, lastSeq: number) => void) | null;
} = { fn: null };
