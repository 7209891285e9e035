/**
 * The watchdog: runs a simulation or a campaign in a worker thread that can be terminated, for
 * code that never returns to the scheduler (a `for (;;) {}` between two yields, which no step
 * budget can interrupt). A run that does not finish in time becomes a `hang` violation naming
 * the task that was running, its step and the last event, and its streamed log is kept. This is
 * execution machinery around simulations (it uses Promises and wall-clock timers); the
 * simulations themselves stay synchronous and deterministic. Its own file for that reason.
 */
/* eslint-disable no-restricted-globals, no-restricted-syntax -- the execution layer around
   simulations (worker threads, wall-clock watchdog), not simulation code: see above. */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ConfigError } from './errors.js';
import type {
  DistinctViolation,
  ExploreFailure,
  ExploreOptions,
  ExploreReport,
} from './explore.js';
import { violationKey } from './explore.js';
import type { JsonValue } from './json.js';
import { verifyNdjsonFile } from './log-stream.js';
import type { LoggedEvent } from './events.js';
import type { Violation } from './oracle.js';
import type { RunEndReason } from './scheduler.js';
import type { WorkerJob } from './isolated-shared.js';
import { SHARED } from './isolated-shared.js';

/** Where a scenario lives, for a worker to load it. */
export interface ScenarioModule {
  /** Path or file URL of an ES module (plain JavaScript, importing the built `@mmnsim/core`). */
  readonly module: string;
  /** The export holding the `Scenario` or a zero-argument function returning it (default `'scenario'`). */
  readonly exportName?: string;
}

/** Options of {@link runIsolated}. */
export interface IsolatedRunOptions extends ScenarioModule {
  /** The seed. */
  readonly seed: number;
  /** A strategy spec, or an exhaustive search's `{ kind: 'exhaustive', prefix }`. */
  readonly strategy: JsonValue;
  /** Wall time the run may take before it is terminated as a hang (ms, ≥ 1). */
  readonly timeoutMs: number;
  /** Stream the log to this file (kept, up to the last step started, if the run hangs). */
  readonly logFile?: string;
}

/** What {@link runIsolated} returns: the run's result, or a hang. */
export interface IsolatedRunResult {
  /** Why the run ended; `'hang'` when the watchdog terminated it. */
  readonly reason: RunEndReason | 'hang';
  /** Steps taken (for a hang: the step that never ended). */
  readonly steps: number;
  /** The violations (for a hang: the one `hang` violation). */
  readonly violations: readonly Violation[];
  /** The recorded schedule (empty for a hang: the worker could not hand it over). */
  readonly schedule: readonly number[];
  /** The final hash of the streamed log (of its verified prefix, for a hang), or null. */
  readonly finalHash: string | null;
  /** The last event of the streamed log, for a hang with `logFile`. */
  readonly lastEvent?: LoggedEvent;
  /** The error message, when the run (or loading the scenario) failed. */
  readonly error?: string;
}

/** The worker script next to this file (the built one when this file runs from its sources). */
function workerUrl(): URL {
  const here = new URL('./isolated-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = fileURLToPath(here).replace(/([/\\])src([/\\]internal[/\\])/, '$1dist$2');
  if (existsSync(built)) return pathToFileURL(built);
  throw new Error(`runIsolated: the worker script ${fileURLToPath(here)} is missing (build core)`);
}

type WorkerMessage =
  | { type: 'done'; result: Record<string, unknown>; finalHash: string | null }
  | { type: 'start'; iteration: number; seed: number; strategy: JsonValue }
  | { type: 'iteration'; iteration: number; steps: number; tasks: number; failure?: ExploreFailure }
  | { type: 'report'; report: ExploreReport }
  | { type: 'fail'; message: string }
  | { type: 'ready' };

interface Running {
  readonly worker: Worker;
  readonly shared: Int32Array;
}

function start(job: Omit<WorkerJob, 'shared'>, onMessage: (m: WorkerMessage) => void): Running {
  const shared = new SharedArrayBuffer(SHARED.name * 4 + SHARED.nameBytes);
  const i32 = new Int32Array(shared);
  i32[SHARED.task] = -1;
  i32[SHARED.seq] = -1;
  const worker = new Worker(workerUrl(), { workerData: { ...job, shared } });
  worker.on('message', onMessage);
  return { worker, shared: i32 };
}

/** The `hang` violation from what the worker last recorded in shared memory. */
function hangViolation(r: Running, timeoutMs: number, last: LoggedEvent | undefined): Violation {
  const i32 = r.shared;
  const step = Atomics.load(i32, SHARED.step);
  const task = Atomics.load(i32, SHARED.task);
  const len = Atomics.load(i32, SHARED.nameLen);
  const name =
    task < 0
      ? '-'
      : new TextDecoder().decode(
          new Uint8Array(i32.buffer, SHARED.name * 4, Math.min(len, SHARED.nameBytes)).slice(),
        );
  const seq = last?.seq ?? Atomics.load(i32, SHARED.seq);
  const lastText =
    last !== undefined
      ? `last event seq ${last.seq} ${last.type} at step ${last.step}`
      : seq >= 0
        ? `last event seq ${seq}`
        : 'no event yet';
  return {
    kind: 'hang',
    message: `hang: ${task < 0 ? 'the run' : `${name}#${task}`} did not reach a scheduling point within ${timeoutMs} ms at step ${step} (${lastText}); the watchdog terminated it`,
    evidence: seq >= 0 ? [seq] : [],
    task,
    taskName: name,
    step,
    time: last?.time ?? 0,
    oracle: 'watchdog',
  };
}

function checkTimeout(where: string, timeoutMs: number): void {
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1)
    throw new ConfigError(
      `${where}: "timeoutMs" must be an integer >= 1 (got ${String(timeoutMs)})`,
    );
}

/**
 * Runs one simulation of a scenario module in a worker thread with a wall-clock watchdog. A run
 * that has not ended after `timeoutMs` is terminated and reported as a `hang` violation naming
 * the running task, its step and the last event (read back from `logFile`, whose verified
 * prefix is kept).
 *
 * @example
 * const r = await runIsolated({ module: './hang.mjs', seed: 1, strategy: 'random', timeoutMs: 2000, logFile: 'run.ndjson' });
 * if (r.reason === 'hang') console.log(r.violations[0].message);
 */
export function runIsolated(options: IsolatedRunOptions): Promise<IsolatedRunResult> {
  checkTimeout('runIsolated', options.timeoutMs);
  return new Promise((resolve) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (r: IsolatedRunResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void running.worker.terminate();
      resolve(r);
    };
    const running = start(
      {
        module: options.module,
        exportName: options.exportName ?? 'scenario',
        run: {
          seed: options.seed,
          strategy: options.strategy,
          ...(options.logFile !== undefined ? { logFile: options.logFile } : {}),
        },
      },
      (m) => {
        if (m.type === 'ready') timer = setTimeout(onTimeout, options.timeoutMs);
        else if (m.type === 'done') {
          const r = m.result as unknown as IsolatedRunResult & { error?: string };
          finish({
            reason: r.reason,
            steps: r.steps,
            violations: r.violations,
            schedule: r.schedule,
            finalHash: m.finalHash,
            ...(r.error !== undefined ? { error: r.error } : {}),
          });
        } else if (m.type === 'fail') {
          finish({
            reason: 'error',
            steps: 0,
            violations: [],
            schedule: [],
            finalHash: null,
            error: m.message,
          });
        }
      },
    );
    running.worker.on('error', (e) =>
      finish({
        reason: 'error',
        steps: 0,
        violations: [],
        schedule: [],
        finalHash: null,
        error: e.message,
      }),
    );
    function onTimeout(): void {
      void running.worker.terminate().then(() => {
        let last: LoggedEvent | undefined;
        let finalHash: string | null = null;
        if (options.logFile !== undefined) {
          try {
            const v = verifyNdjsonFile(options.logFile);
            last = v.last ?? undefined;
            finalHash = v.finalHash;
          } catch {
            // A log that cannot be verified is still kept on disk; the hang is reported anyway.
          }
        }
        const v = hangViolation(running, options.timeoutMs, last);
        if (settled) return;
        settled = true;
        resolve({
          reason: 'hang',
          steps: v.step,
          violations: [v],
          schedule: [],
          finalHash,
          ...(last !== undefined ? { lastEvent: last } : {}),
        });
      });
    }
  });
}

/** Options of {@link exploreIsolated}: a campaign's plain options plus the watchdog's. */
export interface IsolatedExploreOptions
  extends
    ScenarioModule,
    Pick<ExploreOptions, 'strategy' | 'iterations' | 'seed' | 'stopOnFirst' | 'stopOnError'> {
  /** Wall time one iteration may take before it is terminated as a hang (ms, ≥ 1). */
  readonly timeoutMs: number;
  /**
   * If given, a hung iteration is run once more on its own with its log streamed to
   * `<logDir>/hang-<iteration>.ndjson`, which is kept, and its hang names the last event.
   */
  readonly logDir?: string;
}

/**
 * `explore()` in a worker thread with a watchdog per iteration: an iteration that does not end
 * within `timeoutMs` is terminated and recorded as a failure with a `hang` violation (its index,
 * seed and strategy, which re-run it), and the campaign resumes in a fresh worker at the next
 * iteration (same seeds and portfolio slots; a PCT campaign measures its k again). The reports
 * of the pieces are merged.
 */
export async function exploreIsolated(options: IsolatedExploreOptions): Promise<ExploreReport> {
  checkTimeout('exploreIsolated', options.timeoutMs);
  const failures: ExploreFailure[] = [];
  const distinct = new Map<string, DistinctViolation>();
  const errors: ExploreReport['errors'][number][] = [];
  let iterations = 0;
  let totalSteps = 0;
  let maxSteps = 0;
  let maxTasks = 0;
  let pct: ExploreReport['pct'] = [];
  let exhausted: boolean | undefined;
  let startAt = 0;
  const stopOnFirst = options.stopOnFirst ?? true;
  const addDistinct = (v: Violation, iteration: number): void => {
    const key = violationKey(v);
    const d = distinct.get(key);
    distinct.set(
      key,
      d === undefined
        ? { key, kind: v.kind, message: v.message, firstIteration: iteration, count: 1 }
        : { ...d, count: d.count + 1 },
    );
  };
  for (;;) {
    const piece = await new Promise<
      | { report: ExploreReport }
      | {
          hang: { iteration: number; seed: number; strategy: JsonValue };
          violation: Violation;
          done: { steps: number; tasks: number; failures: ExploreFailure[] };
        }
      | { fail: string }
    >((resolve) => {
      let current: { iteration: number; seed: number; strategy: JsonValue } | null = null;
      const done = { steps: 0, tasks: 0, failures: [] as ExploreFailure[] };
      let timer: NodeJS.Timeout | undefined;
      const arm = (): void => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          void running.worker.terminate().then(() => {
            const at = current ?? {
              iteration: startAt,
              seed: (options.seed ?? 1) + startAt,
              strategy: null,
            };
            resolve({
              hang: at,
              violation: hangViolation(running, options.timeoutMs, undefined),
              done,
            });
          });
        }, options.timeoutMs);
      };
      const { iterations: budget, seed, strategy, stopOnError } = options;
      const running = start(
        {
          module: options.module,
          exportName: options.exportName ?? 'scenario',
          explore: {
            iterations: budget,
            startAt,
            stopOnFirst,
            ...(seed !== undefined ? { seed } : {}),
            ...(strategy !== undefined ? { strategy } : {}),
            ...(stopOnError !== undefined ? { stopOnError } : {}),
          },
        },
        (m) => {
          if (m.type === 'ready') arm();
          else if (m.type === 'start') {
            current = { iteration: m.iteration, seed: m.seed, strategy: m.strategy };
            arm();
          } else if (m.type === 'iteration') {
            done.steps += m.steps;
            done.tasks = Math.max(done.tasks, m.tasks);
            if (m.failure !== undefined) done.failures.push(m.failure);
          } else if (m.type === 'report') {
            clearTimeout(timer);
            void running.worker.terminate();
            resolve({ report: m.report });
          } else if (m.type === 'fail') {
            clearTimeout(timer);
            void running.worker.terminate();
            resolve({ fail: m.message });
          }
        },
      );
      running.worker.on('error', (e) => {
        clearTimeout(timer);
        resolve({ fail: e.message });
      });
    });
    if ('fail' in piece) throw new ConfigError(`exploreIsolated: ${piece.fail}`);
    if ('report' in piece) {
      const r = piece.report;
      iterations += r.iterations;
      totalSteps += r.totalSteps;
      maxSteps = Math.max(maxSteps, r.maxSteps);
      maxTasks = Math.max(maxTasks, r.maxTasks);
      failures.push(...r.failures);
      for (const f of r.failures) for (const v of f.violations) addDistinct(v, f.iteration);
      errors.push(...r.errors);
      pct = r.pct;
      exhausted = r.exhausted;
      break;
    }
    const { hang, done } = piece;
    totalSteps += done.steps;
    maxTasks = Math.max(maxTasks, done.tasks);
    for (const f of done.failures) {
      failures.push(f);
      maxSteps = Math.max(maxSteps, f.steps);
      for (const v of f.violations) addDistinct(v, f.iteration);
    }
    let violation = piece.violation;
    if (options.logDir !== undefined) {
      const again = await runIsolated({
        module: options.module,
        ...(options.exportName !== undefined ? { exportName: options.exportName } : {}),
        seed: hang.seed,
        strategy: hang.strategy,
        timeoutMs: options.timeoutMs,
        logFile: `${options.logDir}/hang-${hang.iteration}.ndjson`,
      });
      if (again.reason === 'hang') violation = again.violations[0]!;
    }
    iterations += hang.iteration - startAt + 1;
    failures.push({
      iteration: hang.iteration,
      seed: hang.seed,
      strategy: hang.strategy,
      schedule: [],
      preemptions: 0,
      steps: violation.step,
      violations: [violation],
    });
    addDistinct(violation, hang.iteration);
    startAt = hang.iteration + 1;
    if ((stopOnFirst && failures.length > 0) || startAt >= options.iterations) break;
  }
  return {
    scenario: options.module,
    strategy: (options.strategy ?? 'portfolio') as JsonValue,
    iterations,
    totalSteps,
    maxSteps,
    maxTasks,
    failures: failures.sort((a, b) => a.iteration - b.iteration),
    distinct: [...distinct.values()],
    errors,
    ...(exhausted !== undefined ? { exhausted } : {}),
    pct,
  };
}
