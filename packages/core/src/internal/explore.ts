import { z } from 'zod';
import { describeThrown } from './describe-error.js';
import { ConfigError } from './errors.js';
import { canonicalJson, MAX_JSON_DEPTH, tooDeep } from './json-depth.js';
import type { JsonValue } from './json.js';
import type { Violation } from './oracle.js';
import { describeIssues, Simulation } from './simulation.js';
import type { RunResult, SimulationOptions } from './simulation.js';
import { DfsStrategy, nextDfsPrefix } from './strategy/dfs.js';
import { GuidedStrategy } from './strategy/guided.js';
import { ReplayDivergenceError } from './strategy/replay.js';
import { createStrategy, StrategySpecSchema } from './strategy/spec.js';
import type { StrategySpec } from './strategy/spec.js';
import type { Strategy } from './strategy/strategy.js';

/**
 * A reproducible workload: how to build each fresh simulation and what to run in it. A campaign
 * creates one simulation per iteration with its own seed and strategy.
 *
 * ## Example
 * ```ts
 * const scenario: Scenario = {
 *   id: 'two-workers',
 *   options: () => ({ cpus: 2, log: false }),
 *   setup(sim) {
 *     sim.spawn('a', 0, function* () { yield* sim.scheduler.preempt(); });
 *     sim.spawn('b', 1, function* () { yield* sim.scheduler.preempt(); });
 *   },
 * };
 * ```
 */
export interface Scenario {
  /** Stable id, recorded in reports and replay files. */
  readonly id: string;
  /** Options for each fresh simulation, without seed and strategy (the campaign sets them). */
  options(): Omit<SimulationOptions, 'seed' | 'strategy'>;
  /** Spawns the workload's tasks and attaches scenario-specific oracles. */
  setup(sim: Simulation): void;
}

/**
 * How a campaign chooses schedules: a run strategy for every iteration (`'random'`, `'pct'`,
 * `{ kind: 'pct', depth }` …), `'portfolio'` (random, then PCT depth 2 and 3, in turn), or
 * `{ kind: 'exhaustive', preemptions }`: every schedule with at most that many preemptions,
 * depth first, until the space is exhausted.
 */
export type CampaignStrategy =
  | StrategySpec
  | 'portfolio'
  | {
      /** Bounded-exhaustive search. */
      readonly kind: 'exhaustive';
      /** The preemption bound (0 = only non-preemptive schedules). */
      readonly preemptions: number;
    };

/** Progress of a running campaign, for {@link ExploreOptions.onProgress}. */
export interface ExploreProgress {
  /** Iterations done. */
  readonly iterations: number;
  /** The iteration budget. */
  readonly budget: number;
  /** Steps over all iterations so far. */
  readonly totalSteps: number;
  /** Distinct violations found so far. */
  readonly distinct: number;
}

/** Options of {@link explore}. */
export interface ExploreOptions {
  /** How schedules are chosen (default `'portfolio'`). */
  readonly strategy?: CampaignStrategy;
  /** Iteration budget (for an exhaustive search, the most schedules it may run). */
  readonly iterations: number;
  /** Stop at the first failing iteration (default true); otherwise collect distinct violations. */
  readonly stopOnFirst?: boolean;
  /** Seed of iteration 0; iteration i uses `seed + i` (an exhaustive search uses `seed` throughout). Default 1. */
  readonly seed?: number;
  /**
   * Index of the first iteration to run (default 0). A campaign resumed at `startAt` runs the
   * same seeds and portfolio slots as iterations `startAt`… of the uninterrupted one (a PCT
   * campaign measures its k again). Not for exhaustive searches.
   */
  readonly startAt?: number;
  /** Called before each iteration with its index, seed and strategy (as JSON). */
  readonly onIterationStart?: (iteration: number, seed: number, strategy: JsonValue) => void;
  /** Called after each iteration with its index and result. */
  readonly onIteration?: (iteration: number, result: RunResult) => void;
  /** Called after each iteration with the campaign's progress. */
  readonly onProgress?: (progress: ExploreProgress) => void;
  /** A wall clock in ms (e.g. `performance.now`), for `timeBudgetMs`; the simulations never see it. */
  readonly now?: () => number;
  /** Stop starting iterations once this much wall time passed (needs `now`). */
  readonly timeBudgetMs?: number;
  /**
   * Stop at the first iteration that could not run at all (its simulation could not be
   * created); by default such an iteration is recorded in {@link ExploreReport.errors} and the
   * campaign goes on.
   */
  readonly stopOnError?: boolean;
}

/** An iteration that could not run: its simulation or scenario options threw. */
export interface IterationError {
  /** Iteration index. */
  readonly iteration: number;
  /** The iteration's seed. */
  readonly seed: number;
  /** The error's name and message. */
  readonly message: string;
}

/** One failing iteration: enough to replay it. */
export interface ExploreFailure {
  /** Iteration index. */
  readonly iteration: number;
  /** The iteration's seed. */
  readonly seed: number;
  /** The strategy it ran with, as JSON. */
  readonly strategy: JsonValue;
  /** The recorded schedule. */
  readonly schedule: readonly number[];
  /** Preemptions in the schedule. */
  readonly preemptions: number;
  /** Steps the run took. */
  readonly steps: number;
  /** What broke. */
  readonly violations: readonly Violation[];
}

/** A violation found by a campaign, counted once per kind and location. */
export interface DistinctViolation {
  /** The deduplication key: kind, reporting oracle and task name. */
  readonly key: string;
  /** The violation kind. */
  readonly kind: string;
  /** Its first message. */
  readonly message: string;
  /** The first iteration that found it. */
  readonly firstIteration: number;
  /** How many iterations found it. */
  readonly count: number;
}

/**
 * What the clean PCT runs of a campaign are worth (Burckhardt et al.): with at most `tasks`
 * tasks and `steps` steps per run, one PCT run of depth `depth` finds a given depth-`depth` bug
 * with probability at least 1/(n·k^(d−1)); after `runs` clean runs the probability that such a
 * bug exists and was missed is at most `missProbability`.
 */
export interface PctGuarantee {
  /** d. */
  readonly depth: number;
  /** n: the most tasks of one run. */
  readonly tasks: number;
  /** k: the most steps of one run. */
  readonly steps: number;
  /** R: clean PCT runs of this depth. */
  readonly runs: number;
  /** (1 − 1/(n·k^(d−1)))^R. */
  readonly missProbability: number;
}

/** What a campaign did. */
export interface ExploreReport {
  /** The scenario id. */
  readonly scenario: string;
  /** The campaign strategy, as given. */
  readonly strategy: JsonValue;
  /** Iterations run (from `startAt`). */
  readonly iterations: number;
  /** Steps over all iterations. */
  readonly totalSteps: number;
  /** Largest step count of one iteration. */
  readonly maxSteps: number;
  /** Largest task count of one iteration. */
  readonly maxTasks: number;
  /** The failing iterations, in order. */
  readonly failures: readonly ExploreFailure[];
  /** Distinct violations (by kind and location), in order of discovery. */
  readonly distinct: readonly DistinctViolation[];
  /** Iterations that could not run, in order (see {@link ExploreOptions.stopOnError}). */
  readonly errors: readonly IterationError[];
  /** For an exhaustive search: true if every schedule within the bound was run. */
  readonly exhausted?: boolean;
  /** For PCT iterations: the guarantee of each depth used (clean runs only). */
  readonly pct: readonly PctGuarantee[];
  /** Wall time in ms, when `now` was given. */
  readonly elapsedMs?: number;
}

/** One run of a scenario: the simulation (for its log and services) and the result. */
export interface ScenarioRun {
  /** The simulation that ran. */
  readonly sim: Simulation;
  /** Its result. */
  readonly result: RunResult;
}

/**
 * Runs `scenario` once with a given seed and strategy. `overrides` change the scenario's
 * options (replays force `log: true` to get a hash).
 */
export function runScenario(
  scenario: Scenario,
  seed: number,
  strategy: StrategySpec | Strategy,
  overrides: Partial<Omit<SimulationOptions, 'seed' | 'strategy'>> = {},
  runOptions: { readonly stopAtStep?: number } = {},
): ScenarioRun {
  const s =
    typeof strategy === 'object' && 'pick' in strategy ? strategy : createStrategy(strategy);
  const sim = Simulation.create({ ...scenario.options(), ...overrides, seed, strategy: s });
  try {
    scenario.setup(sim);
  } catch (e) {
    sim.failSetup(e);
  }
  return { sim, result: sim.run(runOptions) };
}

const ExhaustiveSchema = z.strictObject({
  kind: z.literal('exhaustive'),
  preemptions: z.number().int().min(0).max(16),
});

/** The key violations are deduplicated by: kind, reporting oracle, task name. */
export function violationKey(v: Violation): string {
  return `${v.kind}|${v.oracle}|${v.taskName}`;
}

/**
 * Explores a scenario's interleavings: a fresh simulation per iteration, each with its own seed
 * (and strategy, for a portfolio), collecting the failing iterations with the seed and schedule
 * that replay them, the distinct violations, and what the clean PCT runs guarantee.
 *
 * For PCT without an explicit `steps`, one round-robin probe run measures k and every iteration
 * updates it with the largest run seen, so change points fall inside real runs. An exhaustive
 * search re-executes the scenario once per schedule with the same seed (stateless model
 * checking) and reports `exhausted: true` when no schedule within the bound is left.
 */
export function explore(scenario: Scenario, options: ExploreOptions): ExploreReport {
  const checked = ExploreOptionsSchema.safeParse(options);
  if (!checked.success)
    throw new ConfigError(`explore: invalid options: ${describeIssues(checked.error)}`);
  if (
    typeof scenario !== 'object' ||
    scenario === null ||
    typeof scenario.id !== 'string' ||
    typeof scenario.options !== 'function' ||
    typeof scenario.setup !== 'function'
  ) {
    throw new ConfigError(
      'explore: "scenario" must be an object with a string "id" and functions "options" and "setup"',
    );
  }
  if (options.timeBudgetMs !== undefined && options.now === undefined) {
    throw new ConfigError(
      'explore: "timeBudgetMs" needs "now" (a wall clock in ms, such as performance.now)',
    );
  }
  const campaign = options.strategy ?? 'portfolio';
  const base = options.seed ?? 1;
  if (base > Number.MAX_SAFE_INTEGER - (options.iterations - 1)) {
    throw new ConfigError(
      `explore: "seed" + "iterations" must stay within the safe-integer range (seed ${base}, iterations ${options.iterations}, at most ${Number.MAX_SAFE_INTEGER})`,
    );
  }
  const stopOnFirst = options.stopOnFirst ?? true;
  const stopOnError = options.stopOnError ?? false;
  const errors: IterationError[] = [];
  const now = options.now;
  const t0 = now?.() ?? 0;
  const failures: ExploreFailure[] = [];
  const distinct = new Map<
    string,
    { kind: string; message: string; firstIteration: number; count: number }
  >();
  const pctRuns = new Map<number, number>();
  let totalSteps = 0;
  let maxSteps = 0;
  let maxTasks = 0;
  let exhausted: boolean | undefined;

  const record = (i: number, seed: number, result: RunResult, pctDepth: number): boolean => {
    totalSteps += result.steps;
    if (result.steps > maxSteps) maxSteps = result.steps;
    if (result.tasks > maxTasks) maxTasks = result.tasks;
    options.onIteration?.(i, result);
    const failed = result.violations.length > 0 || result.error !== undefined;
    if (failed) {
      failures.push({
        iteration: i,
        seed,
        strategy: result.strategy,
        schedule: [...result.schedule],
        preemptions: result.preemptions,
        steps: result.steps,
        violations: result.violations,
      });
      for (const v of result.violations) {
        const key = violationKey(v);
        const d = distinct.get(key);
        if (d === undefined)
          distinct.set(key, { kind: v.kind, message: v.message, firstIteration: i, count: 1 });
        else d.count++;
      }
    } else if (pctDepth > 0) pctRuns.set(pctDepth, (pctRuns.get(pctDepth) ?? 0) + 1);
    options.onProgress?.({
      iterations: i + 1,
      budget: options.iterations,
      totalSteps,
      distinct: distinct.size,
    });
    return failed;
  };
  /** Runs one iteration; null (and an entry in `errors`) if it could not run at all. */
  const attempt = (
    i: number,
    seed: number,
    strategy: StrategySpec | Strategy,
  ): RunResult | null => {
    if (i >= 0 && options.onIterationStart !== undefined) {
      const json =
        typeof strategy === 'object' && 'describe' in strategy
          ? strategy.describe()
          : (strategy as JsonValue);
      options.onIterationStart(i, seed, json);
    }
    try {
      return runScenario(scenario, seed, strategy).result;
    } catch (e) {
      const d = describeThrown(e);
      errors.push({ iteration: i, seed, message: `${d.name}: ${d.message}` });
      return null;
    }
  };
  const outOfTime = (): boolean =>
    now !== undefined && options.timeBudgetMs !== undefined && now() - t0 >= options.timeBudgetMs;

  const startAt = options.startAt ?? 0;
  let i = startAt;
  if (typeof campaign === 'object' && campaign.kind === 'exhaustive') {
    if (startAt !== 0)
      throw new ConfigError('explore: "startAt" cannot resume an exhaustive search (use 0)');
    const parsed = ExhaustiveSchema.safeParse(campaign);
    if (!parsed.success)
      throw new ConfigError(`explore: invalid "strategy": ${describeIssues(parsed.error)}`);
    let prefix: number[] | null = [];
    exhausted = false;
    while (prefix !== null && i < options.iterations && !outOfTime()) {
      const dfs = new DfsStrategy(prefix);
      const result = attempt(i, base, dfs);
      i++;
      if (result === null) break;
      const failed = record(i - 1, base, result, 0);
      if (failed && stopOnFirst) break;
      prefix = nextDfsPrefix(dfs.trace, parsed.data.preemptions);
      if (prefix === null) exhausted = true;
    }
  } else {
    const portfolio = campaign === 'portfolio';
    const specParsed = portfolio ? null : StrategySpecSchema.safeParse(campaign);
    if (specParsed !== null && !specParsed.success) {
      throw new ConfigError(
        `explore: "strategy" ${shortJson(campaign)} is not a campaign strategy; allowed are 'portfolio', 'round-robin', 'random', 'pct', { kind: 'pct', depth?: 1..64, steps?: >= 1 }, { kind: 'replay', schedule } or { kind: 'exhaustive', preemptions: 0..16 }`,
      );
    }
    const spec: StrategySpec = specParsed === null ? 'pct' : specParsed.data;
    const fixedSteps = typeof spec === 'object' && spec.kind === 'pct' ? spec.steps : undefined;
    let k = 0;
    const needsK = portfolio || spec === 'pct' || (typeof spec === 'object' && spec.kind === 'pct');
    if (needsK && fixedSteps === undefined) k = attempt(-1, base, 'round-robin')?.steps ?? 1;
    for (; i < options.iterations && !outOfTime();) {
      const seed = base + i;
      let iterSpec: StrategySpec;
      let depth = 0;
      if (portfolio) {
        const slot = i % 3;
        depth = slot === 0 ? 0 : slot + 1;
        iterSpec = depth === 0 ? 'random' : { kind: 'pct', depth, steps: Math.max(1, k) };
      } else if (needsK) {
        depth = typeof spec === 'object' && spec.kind === 'pct' ? (spec.depth ?? 3) : 3;
        iterSpec = { kind: 'pct', depth, steps: Math.max(1, fixedSteps ?? k) };
      } else iterSpec = spec;
      const result = attempt(i, seed, iterSpec);
      i++;
      if (result === null) {
        if (stopOnError) break;
        continue;
      }
      if (result.steps > k) k = result.steps;
      const failed = record(i - 1, seed, result, depth);
      if (failed && stopOnFirst) break;
    }
  }
  const pct: PctGuarantee[] = [...pctRuns.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([depth, runs]) => pctGuarantee(depth, maxTasks, maxSteps, runs));
  return {
    scenario: scenario.id,
    strategy: campaign as JsonValue,
    iterations: i - startAt,
    totalSteps,
    maxSteps,
    maxTasks,
    failures,
    distinct: [...distinct.entries()].map(([key, d]) => ({ key, ...d })),
    errors,
    ...(exhausted !== undefined ? { exhausted } : {}),
    pct,
    ...(now !== undefined ? { elapsedMs: now() - t0 } : {}),
  };
}

/** A JSON rendering of a user value for an error message, cut at 80 characters. */
function shortJson(v: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = Object.prototype.toString.call(v);
  }
  return text.length > 80 ? text.slice(0, 77) + '...' : text;
}

/** Schema of the plain fields of {@link ExploreOptions} (the strategy is checked separately). */
const ExploreOptionsSchema = z.object({
  iterations: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  stopOnFirst: z.boolean().optional(),
  stopOnError: z.boolean().optional(),
  startAt: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  onIterationStart: z.function().optional(),
  timeBudgetMs: z.number().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  now: z.function().optional(),
  onIteration: z.function().optional(),
  onProgress: z.function().optional(),
});

/**
 * The PCT guarantee for `runs` clean runs of depth `depth` with at most `tasks` tasks and `steps`
 * steps per run: the probability of missing a depth-d bug is at most (1 − 1/(n·k^(d−1)))^R.
 */
export function pctGuarantee(
  depth: number,
  tasks: number,
  steps: number,
  runs: number,
): PctGuarantee {
  const n = Math.max(1, tasks);
  const k = Math.max(1, steps);
  const p = 1 / (n * k ** (depth - 1));
  const missProbability = p >= 1 ? 0 : Math.exp(runs * Math.log1p(-p));
  return { depth, tasks: n, steps: k, runs, missProbability };
}

/** What replays a run: its seed and recorded schedule (an {@link ExploreFailure} is one). */
export interface RecordedRun {
  /** The run's seed. */
  readonly seed: number;
  /** The task id chosen at each choice point. */
  readonly schedule: readonly number[];
}

/**
 * Re-executes a recorded run from its seed and schedule. The result's simulation has the same
 * event log and final hash as the recorded run. `stopAtStep` stops it before that step for
 * inspection (reason `'stopped'`).
 *
 * @throws ReplayDivergenceError when the run asks for a choice the schedule cannot give (the
 * scenario or its plugins changed since the recording).
 */
export function replay(
  scenario: Scenario,
  recorded: RecordedRun,
  options: { readonly stopAtStep?: number; readonly log?: boolean } = {},
): ScenarioRun {
  const overrides = options.log === true ? { log: true } : {};
  const stop = options.stopAtStep !== undefined ? { stopAtStep: options.stopAtStep } : {};
  const out = runScenario(
    scenario,
    recorded.seed,
    { kind: 'replay', schedule: [...recorded.schedule] },
    overrides,
    stop,
  );
  if (out.result.error !== undefined) throw out.result.error;
  if (out.result.reason !== 'stopped' && out.result.schedule.length !== recorded.schedule.length) {
    throw new ReplayDivergenceError(
      out.result.schedule.length,
      out.result.steps,
      recorded.schedule[out.result.schedule.length] ?? -1,
      [],
    );
  }
  return out;
}

// --- minimisation ---------------------------------------------------------------------------

/** Size of a schedule: choices, preemptions and steps of its run. */
export interface ScheduleSize {
  /** Choice points. */
  readonly choices: number;
  /** Preemptions among them. */
  readonly preemptions: number;
  /** Steps of the run. */
  readonly steps: number;
}

/** The result of {@link minimise}. */
export interface MinimisedSchedule {
  /** The seed (unchanged). */
  readonly seed: number;
  /** The minimised schedule: replays (with {@link replay}) to the same violation kind. */
  readonly schedule: readonly number[];
  /** The violation kind it still produces. */
  readonly kind: string;
  /** The violations of the minimised run. */
  readonly violations: readonly Violation[];
  /** Size before. */
  readonly before: ScheduleSize;
  /** Size after. */
  readonly after: ScheduleSize;
  /** Runs the minimisation took. */
  readonly runs: number;
}

function guidedRun(scenario: Scenario, seed: number, schedule: readonly number[]): RunResult {
  return runScenario(scenario, seed, new GuidedStrategy(schedule)).result;
}

function sizeOf(r: RunResult): ScheduleSize {
  return { choices: r.schedule.length, preemptions: r.preemptions, steps: r.steps };
}

function smaller(a: ScheduleSize, b: ScheduleSize): boolean {
  return a.preemptions < b.preemptions || (a.preemptions === b.preemptions && a.steps < b.steps);
}

/**
 * Shrinks a failing schedule to fewer preemptions (then steps) that still produce the same
 * violation kind: first the shortest prefix after which running without preemptions still fails,
 * then switches are removed one by one — pulling the preempted task's next slice forward, or
 * swapping the runs on both sides of a switch — while the violation stays. Greedy, so the result is a local minimum; every candidate is a real
 * re-execution (choices that no longer apply fall back to not preempting).
 *
 * @param failure the failing run (its first violation's kind is the target).
 * @param options `maxRuns` bounds the work (default 500).
 */
export function minimise(
  scenario: Scenario,
  failure: {
    readonly seed: number;
    readonly schedule: readonly number[];
    readonly violations: readonly Violation[];
  },
  options: { readonly maxRuns?: number } = {},
): MinimisedSchedule {
  const kind = failure.violations[0]?.kind;
  if (kind === undefined)
    throw new ConfigError('minimise: the failure has no violation to preserve');
  const maxRuns = options.maxRuns ?? 500;
  let runs = 0;
  const fails = (r: RunResult): boolean => r.violations.some((v) => v.kind === kind);
  const attempt = (schedule: readonly number[]): RunResult | null => {
    if (runs >= maxRuns) return null;
    runs++;
    const r = guidedRun(scenario, failure.seed, schedule);
    return fails(r) ? r : null;
  };
  const first = attempt(failure.schedule);
  if (first === null) {
    throw new ConfigError(
      `minimise: the recorded schedule no longer produces a ${kind} violation (seed ${failure.seed})`,
    );
  }
  const before = sizeOf(first);
  let best = first;
  // 1. The shortest prefix that still fails when the rest runs without preemptions.
  let lo = 0;
  let hi = best.schedule.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const r = attempt(best.schedule.slice(0, mid));
    if (r !== null) {
      if (smaller(sizeOf(r), sizeOf(best)) || r.schedule.length <= best.schedule.length) best = r;
      hi = mid;
    } else lo = mid + 1;
  }
  // 2. Remove switches: at each switch away from task p, pull p's next slice forward to the
  //    switch point (each task's own slices stay in order), keeping the change if the violation
  //    stays and the run got smaller; repeat until nothing helps.
  let improved = true;
  while (improved && runs < maxRuns) {
    improved = false;
    const sched = best.schedule;
    for (let i = 1; i < sched.length && runs < maxRuns && !improved; i++) {
      const p = sched[i - 1]!;
      const q = sched[i]!;
      if (q === p) continue;
      const candidates: number[][] = [];
      const j = sched.indexOf(p, i + 1);
      if (j >= 0)
        candidates.push([...sched.slice(0, i), p, ...sched.slice(i, j), ...sched.slice(j + 1)]);
      // Or swap the run of p ending at i − 1 with the run of q starting at i.
      let a = i - 1;
      while (a > 0 && sched[a - 1] === p) a--;
      let b = i;
      while (b + 1 < sched.length && sched[b + 1] === q) b++;
      candidates.push([
        ...sched.slice(0, a),
        ...sched.slice(i, b + 1),
        ...sched.slice(a, i),
        ...sched.slice(b + 1),
      ]);
      for (const candidate of candidates) {
        const r = attempt(candidate);
        if (r !== null && smaller(sizeOf(r), sizeOf(best))) {
          best = r;
          improved = true;
          break;
        }
      }
    }
  }
  return {
    seed: failure.seed,
    schedule: [...best.schedule],
    kind,
    violations: best.violations,
    before,
    after: sizeOf(best),
    runs,
  };
}

// --- replay files ---------------------------------------------------------------------------

/**
 * A saved failing (or interesting) run: enough to re-execute it in any process and check that
 * it is the same run.
 */
export interface ReplayFile {
  /** Always `'mmnsim-replay'`. */
  readonly format: 'mmnsim-replay';
  /** Format version (1). */
  readonly version: 1;
  /** The scenario id (looked up in a registry when replaying). */
  readonly scenario: string;
  /** The plugins of the run, with their options. */
  readonly plugins: readonly {
    /** Plugin id. */
    readonly id: string;
    /** Its options as given (null for none). */
    readonly options: JsonValue;
  }[];
  /** The seed. */
  readonly seed: number;
  /**
   * How the schedule was found, checked on replay: null (not said); a strategy spec (or an
   * exhaustive search's `{ kind: 'exhaustive', prefix }`) that, run with `seed`, gives exactly
   * `schedule`; or `{ kind: 'minimised', from }` for a schedule derived from a run of `from`
   * (shrunk by {@link minimise}, edited), which cannot be re-derived and is not re-run.
   */
  readonly strategy: JsonValue;
  /** The task id chosen at each choice point. */
  readonly schedule: readonly number[];
  /** The hash at the end of the run's log (checked on replay). */
  readonly finalHash: string;
  /** The first violation, if the run failed. */
  readonly violation?: {
    /** Violation kind. */
    readonly kind: string;
    /** Its message. */
    readonly message: string;
  };
}

const JsonSchema: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(JsonSchema),
    z.record(z.string(), JsonSchema),
  ]),
);

/** Schema of a {@link ReplayFile}. */
export const ReplayFileSchema: z.ZodType<ReplayFile> = z.strictObject({
  format: z.literal('mmnsim-replay'),
  version: z.literal(1),
  scenario: z.string().min(1),
  plugins: z.array(z.strictObject({ id: z.string().min(1), options: JsonSchema })),
  seed: z.number().int().min(0),
  strategy: JsonSchema,
  schedule: z.array(z.number().int().min(0)),
  finalHash: z.string().regex(/^[0-9a-f]{64}$/, 'a 64-digit hex sha256'),
  violation: z.strictObject({ kind: z.string(), message: z.string() }).optional(),
});

/** A replay file that cannot be used: malformed, for another scenario, or not reproducing. */
export class ReplayFileError extends Error {
  /** Always `'ReplayFileError'`. */
  override readonly name = 'ReplayFileError';

  /**
   * @param field the offending field (`'schedule.3'`, `'plugins'`, `'finalHash'`, or `'(file)'`).
   * @param message what is wrong and what was expected.
   */
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`replay file: "${field}": ${message}`);
  }
}

/** Parses and validates a replay file's text. @throws ReplayFileError naming the field. */
export function parseReplayFile(text: string): ReplayFile {
  if (typeof text !== 'string')
    throw new ReplayFileError('(file)', `expected the file's text, got ${typeof text}`);
  // A UTF-8 byte-order mark (some Windows editors write one) is not part of the JSON.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (e) {
    throw new ReplayFileError('(file)', `not valid JSON (${(e as Error).message})`);
  }
  const deep = tooDeep(raw);
  if (deep !== null) {
    throw new ReplayFileError(
      deep.split('.')[0] === '(value)' ? '(file)' : deep.split('.')[0]!,
      `nested deeper than ${MAX_JSON_DEPTH} levels (at ${deep})`,
    );
  }
  const r = ReplayFileSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const keys = (issue as { keys?: string[] }).keys;
    const field =
      issue.path.length > 0
        ? issue.path.join('.')
        : keys !== undefined
          ? keys.join(', ')
          : '(file)';
    throw new ReplayFileError(field, issue.message);
  }
  return r.data;
}

/**
 * Builds the replay file of a recorded run: re-executes it once with the log on to record the
 * final hash (and to make sure it reproduces).
 */
export function makeReplayFile(
  scenario: Scenario,
  run: {
    readonly seed: number;
    readonly schedule: readonly number[];
    readonly strategy?: JsonValue;
  },
): ReplayFile {
  const { sim, result } = replay(scenario, run, { log: true });
  const v = result.violations[0];
  let strategy: JsonValue = run.strategy ?? null;
  if (strategy !== null && !isMinimised(strategy)) {
    const again = strategyRun(scenario, run.seed, strategy);
    if (again === null || !sameSchedule(again.schedule, run.schedule))
      strategy = { kind: 'minimised', from: strategy };
  }
  return {
    format: 'mmnsim-replay',
    version: 1,
    scenario: scenario.id,
    plugins: sim.plugins.map((p) => ({ id: p.id, options: p.options?.input ?? null })),
    seed: run.seed,
    strategy,
    schedule: [...run.schedule],
    finalHash: sim.finalHash(),
    ...(v !== undefined ? { violation: { kind: v.kind, message: v.message } } : {}),
  };
}

/**
 * Replays a replay file against the scenario registry: checks the scenario and its plugins are
 * the ones recorded (plugin options by value: key order does not matter), re-executes the
 * schedule (optionally stopping at a step), and checks the final hash, the first violation
 * (kind and message, or that there is none) and the strategy (see {@link ReplayFile.strategy}).
 *
 * @throws ReplayFileError naming the field that does not match (`scenario`, `plugins`,
 * `finalHash`, `violation`, `strategy`), or ReplayDivergenceError naming the choice where the
 * run diverged.
 */
export function replayFile(
  file: ReplayFile,
  scenarios: (id: string) => Scenario | undefined,
  options: { readonly stopAtStep?: number } = {},
): ScenarioRun {
  const scenario = scenarios(file.scenario);
  if (scenario === undefined)
    throw new ReplayFileError('scenario', `no scenario "${file.scenario}" is registered`);
  const probe = Simulation.create({ ...scenario.options(), seed: file.seed, log: false });
  const now = canonicalJson(
    probe.plugins.map((p) => ({ id: p.id, options: p.options?.input ?? null })),
  );
  if (now !== canonicalJson(file.plugins)) {
    throw new ReplayFileError(
      'plugins',
      `the scenario's plugins are now ${now}, the file recorded ${canonicalJson(file.plugins)}`,
    );
  }
  const out = replay(scenario, file, {
    log: true,
    ...(options.stopAtStep !== undefined ? { stopAtStep: options.stopAtStep } : {}),
  });
  if (out.result.reason !== 'stopped') {
    const hash = out.sim.finalHash();
    if (hash !== file.finalHash) {
      throw new ReplayFileError(
        'finalHash',
        `the replayed log ends in ${hash}, the file recorded ${file.finalHash}`,
      );
    }
    const v = out.result.violations[0];
    const got = v === undefined ? 'no violation' : `${v.kind}: ${v.message}`;
    const want =
      file.violation === undefined
        ? 'no violation'
        : `${file.violation.kind}: ${file.violation.message}`;
    if (got !== want) {
      throw new ReplayFileError(
        'violation',
        `the replayed run gives ${shortJson(got)}, the file recorded ${shortJson(want)}`,
      );
    }
  }
  checkStrategyField(scenario, file);
  return out;
}

/** True for the `{ kind: 'minimised', from }` form of a replay file's strategy. */
function isMinimised(s: JsonValue): boolean {
  return (
    typeof s === 'object' &&
    s !== null &&
    !Array.isArray(s) &&
    s.kind === 'minimised' &&
    'from' in s &&
    Object.keys(s).length === 2
  );
}

function sameSchedule(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Runs `strategy` (a spec or an exhaustive prefix) with `seed`, or null if it is neither. */
function strategyRun(scenario: Scenario, seed: number, strategy: JsonValue): RunResult | null {
  const dfs = z
    .strictObject({ kind: z.literal('exhaustive'), prefix: z.array(z.number().int().min(0)) })
    .safeParse(strategy);
  if (dfs.success)
    return runScenario(scenario, seed, new DfsStrategy(dfs.data.prefix), { log: false }).result;
  const spec = StrategySpecSchema.safeParse(strategy);
  if (!spec.success || (typeof spec.data === 'object' && spec.data.kind === 'replay')) return null;
  return runScenario(scenario, seed, spec.data, { log: false }).result;
}

/** Checks a replay file's `strategy` field against the scenario (see {@link ReplayFile.strategy}). */
function checkStrategyField(scenario: Scenario, file: ReplayFile): void {
  const s = file.strategy;
  if (s === null || isMinimised(s)) return;
  const r = strategyRun(scenario, file.seed, s);
  if (r === null) {
    throw new ReplayFileError(
      'strategy',
      `${shortJson(s)} is not a strategy; allowed are null, a strategy spec ('random', { kind: 'pct', depth, steps } …), { kind: 'exhaustive', prefix } or { kind: 'minimised', from }`,
    );
  }
  if (!sameSchedule(r.schedule, file.schedule)) {
    let i = 0;
    while (i < r.schedule.length && r.schedule[i] === file.schedule[i]) i++;
    throw new ReplayFileError(
      'strategy',
      `${shortJson(s)} with seed ${file.seed} gives another schedule (${r.schedule.length} choices, first difference at choice ${i}) than the file's (${file.schedule.length} choices); a derived schedule is recorded as { kind: 'minimised', from }`,
    );
  }
}
