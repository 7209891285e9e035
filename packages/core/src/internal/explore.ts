import type { JsonValue } from './json.js';
import type { Violation } from './oracle.js';
import { Simulation } from './simulation.js';
import type { RunResult, SimulationOptions } from './simulation.js';
import { ReplayDivergenceError } from './strategy/replay.js';
import { createStrategy, StrategySpecSchema } from './strategy/spec.js';
import type { StrategySpec } from './strategy/spec.js';
import { ConfigError } from './errors.js';

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

/** Options of {@link explore}. */
export interface ExploreOptions {
  /** Strategy of every iteration (default `'pct'`). PCT without `steps` measures them with a probe run. */
  readonly strategy?: StrategySpec;
  /** Number of iterations (schedules) to run. */
  readonly iterations: number;
  /** Stop at the first failing iteration (default true). */
  readonly stopOnFirst?: boolean;
  /** Seed of iteration 0; iteration i uses `seed + i` (default 1). */
  readonly seed?: number;
  /** Called after each iteration with its index and result. */
  readonly onIteration?: (iteration: number, result: RunResult) => void;
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
  /** What broke. */
  readonly violations: readonly Violation[];
}

/** What a campaign did. */
export interface ExploreReport {
  /** The scenario id. */
  readonly scenario: string;
  /** Iterations run. */
  readonly iterations: number;
  /** Steps over all iterations. */
  readonly totalSteps: number;
  /** Largest step count of one iteration. */
  readonly maxSteps: number;
  /** The failing iterations, in order. */
  readonly failures: readonly ExploreFailure[];
}

/** One run of a scenario: the simulation (for its log and services) and the result. */
export interface ScenarioRun {
  /** The simulation that ran. */
  readonly sim: Simulation;
  /** Its result. */
  readonly result: RunResult;
}

/** Runs `scenario` once with a given seed and strategy. */
export function runScenario(scenario: Scenario, seed: number, strategy: StrategySpec): ScenarioRun {
  const sim = Simulation.create({
    ...scenario.options(),
    seed,
    strategy: createStrategy(strategy),
  });
  scenario.setup(sim);
  return { sim, result: sim.run() };
}

/**
 * Explores a scenario's interleavings: a fresh simulation per iteration, each with its own seed,
 * collecting the failing iterations with the seed and schedule that replay them.
 *
 * For PCT without an explicit `steps`, one round-robin probe run measures k (the steps of one
 * run) and every iteration updates it with the largest run seen, so change points fall inside
 * real runs.
 */
export function explore(scenario: Scenario, options: ExploreOptions): ExploreReport {
  if (!Number.isInteger(options.iterations) || options.iterations < 1) {
    throw new ConfigError(`explore: "iterations" (${options.iterations}) must be an integer >= 1`);
  }
  const spec = StrategySpecSchema.parse(options.strategy ?? 'pct');
  const base = options.seed ?? 1;
  const stopOnFirst = options.stopOnFirst ?? true;
  const isPct = spec === 'pct' || (typeof spec === 'object' && spec.kind === 'pct');
  const fixedSteps = typeof spec === 'object' && spec.kind === 'pct' ? spec.steps : undefined;
  const depth = typeof spec === 'object' && spec.kind === 'pct' ? spec.depth : undefined;
  let k = 0;
  if (isPct && fixedSteps === undefined)
    k = runScenario(scenario, base, 'round-robin').result.steps;
  const failures: ExploreFailure[] = [];
  let totalSteps = 0;
  let maxSteps = 0;
  let i = 0;
  for (; i < options.iterations; i++) {
    const seed = base + i;
    const iterSpec: StrategySpec = isPct
      ? {
          kind: 'pct',
          steps: Math.max(1, fixedSteps ?? k),
          ...(depth !== undefined ? { depth } : {}),
        }
      : spec;
    const { result } = runScenario(scenario, seed, iterSpec);
    totalSteps += result.steps;
    if (result.steps > maxSteps) maxSteps = result.steps;
    if (result.steps > k) k = result.steps;
    options.onIteration?.(i, result);
    if (result.error !== undefined) throw result.error;
    if (result.violations.length > 0) {
      failures.push({
        iteration: i,
        seed,
        strategy: result.strategy,
        schedule: [...result.schedule],
        violations: result.violations,
      });
      if (stopOnFirst) {
        i++;
        break;
      }
    }
  }
  return { scenario: scenario.id, iterations: i, totalSteps, maxSteps, failures };
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
 * event log and final hash as the recorded run.
 *
 * @throws ReplayDivergenceError when the run asks for a choice the schedule cannot give (the
 * scenario or its plugins changed since the recording).
 */
export function replay(scenario: Scenario, recorded: RecordedRun): ScenarioRun {
  const out = runScenario(scenario, recorded.seed, {
    kind: 'replay',
    schedule: [...recorded.schedule],
  });
  if (out.result.error !== undefined) throw out.result.error;
  if (out.result.schedule.length !== recorded.schedule.length) {
    throw new ReplayDivergenceError(
      out.result.schedule.length,
      out.result.steps,
      recorded.schedule[out.result.schedule.length] ?? -1,
      [],
    );
  }
  return out;
}
