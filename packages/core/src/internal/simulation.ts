import { Container } from 'inversify';
import { serviceId } from './service-id.js';
import type { ServiceId } from './service-id.js';
import type { Newable } from 'inversify';
import { z } from 'zod';
import { EventBus } from './bus.js';
import type { EventSink } from './bus.js';
import { Clock } from './clock.js';
import { asError, describeThrown } from './describe-error.js';
import { ConfigError } from './errors.js';
import { releaseKeptObjects } from './kept-objects.js';
import type { JsonValue } from './json.js';
import { EventLog } from './log.js';
import { NdjsonFileWriter } from './log-stream.js';
import type { LogHeaderFields } from './log.js';
import { Kernel } from './kernel.js';
import { Lockdep } from './lockdep/lockdep.js';
import { OracleRegistry } from './oracle.js';
import type { Oracle, OracleContext, Violation, ViolationReport } from './oracle.js';
import type { Plugin } from './plugin.js';
import { RandomSource } from './random.js';
import { RunState } from './run-state.js';
import { Scheduler } from './scheduler.js';
import type { RunEndReason } from './scheduler.js';
import { createStrategy, isStrategy } from './strategy/spec.js';
import type { StrategySpec } from './strategy/spec.js';
import type { Strategy } from './strategy/strategy.js';
import type { SpawnOptions, Task, TaskBody } from './task.js';
import type { ExecutionContext } from './context.js';

/** Extension point: oracles contributed by plugins (multi-bound). */
export const OracleContribution = serviceId<Oracle>('@mmnsim/core:Oracle');
/** Extension point: event sinks contributed by plugins (multi-bound); the log is one. */
export const EventSinkContribution = serviceId<EventSink>('@mmnsim/core:EventSink');
/** Token under which a simulation binds itself, for plugins that need the whole simulation. */
export const SimulationService = serviceId<Simulation>('@mmnsim/core:Simulation');
/** Token of the simulation's validated options. */
export const SimulationConfig = serviceId<ResolvedSimulationOptions>(
  '@mmnsim/core:SimulationConfig',
);

const LogOptionsSchema: z.ZodType<LogOptions> = z.union([
  z.boolean(),
  z.strictObject({
    include: z.array(z.string()).optional(),
    exclude: z.array(z.string()).optional(),
  }),
]);

const OptionsSchema: z.ZodType<ResolvedSimulationOptions> = z.strictObject({
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  cpus: z.number().int().min(1).max(256).default(1),
  devices: z
    .array(
      z
        .string()
        .regex(/^[a-z][a-z0-9_-]*$/, 'lower-case letters, digits, _ and -, starting with a letter'),
    )
    .default([]),
  maxSteps: z.number().int().min(1).default(100_000),
  quantumNs: z.number().int().min(0).default(100),
  stopOnViolation: z.boolean().default(true),
  lockdep: z.boolean().default(true),
  log: LogOptionsSchema.default(true),
  maxStepWork: z.number().int().min(1).default(1_000_000),
  logFile: z.string().min(1).optional(),
});

/**
 * What the log keeps: `true` (every event, the default), `false` (nothing: fastest, for
 * exploration), or prefix lists such as `{ exclude: ['sched.'] }`.
 */
export type LogOptions =
  | boolean
  | {
      /** Keep only types starting with one of these prefixes (default: all). */
      readonly include?: readonly string[] | undefined;
      /** Drop types starting with one of these prefixes. */
      readonly exclude?: readonly string[] | undefined;
    };

/** Options of {@link Simulation.create}. */
export interface SimulationOptions {
  /** The seed every random stream derives from (a non-negative safe integer). */
  readonly seed: number;
  /** Number of CPUs, `cpu0` … (1..256, default 1). */
  readonly cpus?: number;
  /** Names of device engines (`['nic0']`); lower-case, unique, distinct from CPU names. */
  readonly devices?: readonly string[];
  /** Plugins to compose; each one's `requires` must be present. */
  readonly plugins?: readonly Plugin[];
  /** Scheduling strategy: a spec (`'pct'`, `{ kind: 'pct', depth: 2 }` …) or a Strategy object (default round-robin). */
  readonly strategy?: StrategySpec | Strategy;
  /** Step budget; a run that is still going after it is reported as a livelock (default 100,000). */
  readonly maxSteps?: number;
  /** Virtual nanoseconds one step costs (default 100). */
  readonly quantumNs?: number;
  /** End the run after the step of the first violation (default true). */
  readonly stopOnViolation?: boolean;
  /** Run the lock validator (default true; turn off only to measure its cost). */
  readonly lockdep?: boolean;
  /** What the event log keeps (default everything). */
  readonly log?: LogOptions;
  /**
   * The most work one step may do (events emitted plus `Scheduler.work` units) before its task
   * is stopped with a `step-budget` violation (default 1,000,000).
   */
  readonly maxStepWork?: number;
  /**
   * Also stream the log to this file as the run goes (NDJSON with the hash chain, byte-identical
   * to `toNdjson()`), in bounded memory: it keeps the types `log` selects (every type with
   * `log: false`, so a 10^7-event run can keep no log in memory and still write one). The file
   * is closed at the end of `run()`; {@link Simulation.fileLog} is its writer.
   */
  readonly logFile?: string;
}

/** The options after validation and defaults (plugins and strategy are held separately). */
export interface ResolvedSimulationOptions {
  /** See {@link SimulationOptions.seed}. */
  readonly seed: number;
  /** See {@link SimulationOptions.cpus}. */
  readonly cpus: number;
  /** See {@link SimulationOptions.devices}. */
  readonly devices: readonly string[];
  /** See {@link SimulationOptions.maxSteps}. */
  readonly maxSteps: number;
  /** See {@link SimulationOptions.quantumNs}. */
  readonly quantumNs: number;
  /** See {@link SimulationOptions.stopOnViolation}. */
  readonly stopOnViolation: boolean;
  /** See {@link SimulationOptions.lockdep}. */
  readonly lockdep: boolean;
  /** See {@link SimulationOptions.log}. */
  readonly log: LogOptions;
  /** See {@link SimulationOptions.maxStepWork}. */
  readonly maxStepWork: number;
  /** See {@link SimulationOptions.logFile}. */
  readonly logFile?: string | undefined;
}

/** The outcome of {@link Simulation.run}. */
export interface RunResult {
  /** Why the run ended. */
  readonly reason: RunEndReason;
  /** True when the run ended normally with no violation. */
  readonly ok: boolean;
  /** Steps taken. */
  readonly steps: number;
  /** Virtual time at the end, in ns. */
  readonly time: number;
  /** Violations reported, in order. */
  readonly violations: readonly Violation[];
  /** The recorded schedule (task id per choice); replays the run with the same seed. */
  readonly schedule: readonly number[];
  /** Choices in the schedule that were preemptions (switching away from a task that could go on). */
  readonly preemptions: number;
  /** Tasks spawned during the run. */
  readonly tasks: number;
  /** The seed of the run. */
  readonly seed: number;
  /** The strategy, as JSON. */
  readonly strategy: JsonValue;
  /** Number of events the log kept (0 with `log: false`). */
  readonly events: number;
  /**
   * Number of events built: those some sink, oracle or observer wanted (events nobody wants are
   * never built). With the log off, this is what the oracles looked at.
   */
  readonly eventsBuilt: number;
  /** The error that aborted the run, when `reason` is `'error'`. */
  readonly error?: Error;
}

/** Formats zod issues as `"field": problem` phrases. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const keys = (i as { keys?: string[] }).keys;
      const field =
        i.path.length > 0 ? i.path.join('.') : keys !== undefined ? keys.join(', ') : '(options)';
      return `"${field}": ${i.message}`;
    })
    .join('; ');
}

function prefixFilter(opts: LogOptions): ((type: string) => boolean) | null {
  if (opts === false) return null;
  if (opts === true) return () => true;
  const inc = opts.include;
  const exc = opts.exclude ?? [];
  return (type) =>
    (inc === undefined || inc.some((p) => type.startsWith(p))) &&
    !exc.some((p) => type.startsWith(p));
}

/** Orders plugins so every plugin comes after what it requires (stable otherwise). */
function dependencyOrder(plugins: readonly Plugin[]): Plugin[] {
  const byId = new Map<string, Plugin>();
  for (const p of plugins) {
    if (typeof p?.id !== 'string' || p.id === '') {
      throw new ConfigError(
        `plugins: every plugin needs a non-empty string "id" (got ${JSON.stringify(p?.id)})`,
      );
    }
    if (byId.has(p.id)) throw new ConfigError(`plugins: plugin "${p.id}" is listed twice`);
    byId.set(p.id, p);
  }
  for (const p of plugins) {
    for (const r of p.requires) {
      if (!byId.has(r)) {
        throw new ConfigError(
          `plugin "${p.id}" requires plugin "${r}", which is not in the simulation (plugins: ${[...byId.keys()].join(', ') || 'none'})`,
        );
      }
    }
  }
  const out: Plugin[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (p: Plugin, path: string[]): void => {
    const s = state.get(p.id);
    if (s === 'done') return;
    if (s === 'visiting')
      throw new ConfigError(`plugins: dependency cycle ${[...path, p.id].join(' -> ')}`);
    state.set(p.id, 'visiting');
    for (const r of p.requires) visit(byId.get(r)!, [...path, p.id]);
    state.set(p.id, 'done');
    out.push(p);
  };
  for (const p of plugins) visit(p, []);
  return out;
}

/**
 * One simulation: an inversify container holding the kernel services (scheduler, clock, random
 * streams, event bus, log, oracle registry) and every plugin's bindings (ARCHITECTURE §6).
 *
 * Create it, spawn the workload's tasks (plugins may spawn their own in `start`), then `run()`
 * once. Same options, plugins, seed and strategy give a byte-identical event log.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({ seed: 7, cpus: 2, strategy: 'pct' });
 * const lock = new Mutex(sim.scheduler, sim.bus, 'demo.lock');
 * let counter = 0;
 * for (const cpu of [0, 1]) {
 *   sim.spawn(`worker${cpu}`, cpu, function* () {
 *     yield* lock.lock();
 *     counter++;
 *     lock.unlock();
 *   });
 * }
 * const result = sim.run();
 * console.log(result.reason, result.steps, result.schedule);
 * ```
 */
export class Simulation {
  /** The DI container: core services plus every plugin's bindings. */
  readonly container: Container;
  /** Validated options. */
  readonly options: ResolvedSimulationOptions;
  /** The scheduler. */
  readonly scheduler: Scheduler;
  /** The virtual clock. */
  readonly clock: Clock;
  /** The event bus. */
  readonly bus: EventBus;
  /** The seeded random source. */
  readonly random: RandomSource;
  /** Collected violations. */
  readonly oracles: OracleRegistry;
  /** The lock validator. */
  readonly lockdep: Lockdep;
  /** The kernel services facade that primitives and models take. */
  readonly kernel: Kernel;
  /** The event log, or null when `log: false`. */
  readonly log: EventLog | null;
  /** The plugins in start order. */
  readonly plugins: readonly Plugin[];
  /** The writer of `logFile`, or null when the options name no log file. */
  fileLog: NdjsonFileWriter | null = null;
  private readonly strategyObj: Strategy;
  private readonly attached: { oracle: Oracle; ctx: OracleContext }[] = [];
  private result: RunResult | null = null;
  private setupError: Error | null = null;
  private reportingError = false;
  private readonly brokenReporters = new Set<string>();

  private constructor(options: ResolvedSimulationOptions, plugins: Plugin[], strategy: Strategy) {
    this.options = options;
    this.plugins = plugins;
    this.strategyObj = strategy;
    const state = new RunState();
    state.workLimit = options.maxStepWork;
    this.random = new RandomSource(options.seed);
    this.clock = new Clock(state, options.quantumNs);
    this.bus = new EventBus(state);
    this.oracles = new OracleRegistry(this.bus, state, options.stopOnViolation);
    this.bus.onSubscriberError = (e, type, owner) =>
      this.reportError(
        owner !== undefined ? 'oracle-error' : 'subscriber-error',
        owner ?? 'bus',
        `${owner !== undefined ? `oracle "${owner}"` : 'a bus subscriber'} threw while handling ${type === '*' ? 'an event' : `"${type}"`}`,
        e,
      );
    this.clock.onTimerError = (e, name) =>
      this.reportError('timer-error', 'clock', `timer "${name}" threw`, e);
    strategy.start?.({ random: this.random.stream('sched'), maxSteps: options.maxSteps });
    this.scheduler = new Scheduler(
      state,
      this.clock,
      this.bus,
      this.oracles,
      strategy,
      options.cpus,
      options.devices,
      options.maxSteps,
    );
    this.lockdep = new Lockdep(this.scheduler, this.bus, this.oracles, state, options.lockdep);
    this.kernel = new Kernel(
      this.scheduler,
      this.clock,
      this.bus,
      this.oracles,
      this.lockdep,
      this.random,
    );
    const keep = prefixFilter(options.log);
    this.log = keep === null ? null : new EventLog({ keep });

    const c = new Container({ defaultScope: 'Singleton' });
    c.bind(SimulationService).toConstantValue(this);
    c.bind(SimulationConfig).toConstantValue(options);
    c.bind(Scheduler).toConstantValue(this.scheduler);
    c.bind(Clock).toConstantValue(this.clock);
    c.bind(EventBus).toConstantValue(this.bus);
    c.bind(RandomSource).toConstantValue(this.random);
    c.bind(OracleRegistry).toConstantValue(this.oracles);
    c.bind(Lockdep).toConstantValue(this.lockdep);
    c.bind(Kernel).toConstantValue(this.kernel);
    if (this.log !== null) {
      c.bind(EventLog).toConstantValue(this.log);
      c.bind(EventSinkContribution).toConstantValue(this.log);
    }
    this.container = c;
  }

  /**
   * Validates the options, builds the container, loads every plugin's module (after binding
   * its validated options), attaches sinks and oracles, and starts the plugins in dependency
   * order.
   *
   * @throws ConfigError naming the field (or plugin) and the allowed values when the options
   * are invalid, a plugin is missing, listed twice or part of a dependency cycle, or a plugin's
   * options fail its schema.
   */
  static create(options: SimulationOptions): Simulation {
    releaseKeptObjects();
    const {
      plugins: pluginList = [],
      strategy: strategyOpt,
      ...plain
    } = options ?? ({} as SimulationOptions);
    const parsed = OptionsSchema.safeParse(plain);
    if (!parsed.success)
      throw new ConfigError(`Simulation.create: invalid options: ${describeIssues(parsed.error)}`);
    const opts = parsed.data;
    if (new Set(opts.devices).size !== opts.devices.length) {
      throw new ConfigError(
        `Simulation.create: "devices" must be unique (got ${opts.devices.join(', ')})`,
      );
    }
    if (opts.devices.some((d) => /^cpu\d+$/.test(d))) {
      throw new ConfigError(
        `Simulation.create: "devices" may not be named like CPUs (cpuN): ${opts.devices.join(', ')}`,
      );
    }
    if (!Array.isArray(pluginList))
      throw new ConfigError('Simulation.create: "plugins" must be an array of plugins');
    const ordered = dependencyOrder(pluginList);
    const strategy = isStrategy(strategyOpt)
      ? strategyOpt
      : createStrategy(strategyOpt ?? 'round-robin');
    const sim = new Simulation(opts, ordered, strategy);
    for (const p of ordered) {
      if (p.options !== undefined) {
        const r = p.options.schema.safeParse(p.options.input ?? {});
        if (!r.success)
          throw new ConfigError(`plugin "${p.id}": invalid options: ${describeIssues(r.error)}`);
        sim.container.bind(p.options.token).toConstantValue(r.data);
      }
      sim.container.load(p.module);
    }
    if (opts.logFile !== undefined) {
      const keep = prefixFilter(opts.log) ?? undefined;
      sim.fileLog = new NdjsonFileWriter(
        opts.logFile,
        sim.header(),
        keep !== undefined ? { keep } : {},
      );
      sim.bus.addSink(sim.fileLog);
    }
    for (const sink of sim.getAll(EventSinkContribution)) sim.bus.addSink(sink);
    if (sim.bus.wants('sim.start')) {
      sim.bus.emit('sim.start', {
        seed: opts.seed,
        cpus: opts.cpus,
        devices: [...opts.devices],
      });
    }
    for (const oracle of sim.getAll(OracleContribution)) sim.addOracle(oracle);
    for (const p of ordered) p.start?.(sim);
    return sim;
  }

  /** Resolves a service from the container, typed by its {@link ServiceId}. */
  get<T>(id: ServiceId<T>): T;
  /** Resolves a service bound under its class. */
  get<T>(id: Newable<T>): T;
  get<T>(id: ServiceId<T> | Newable<T>): T {
    return this.container.get<T>(id);
  }

  /** Resolves every contribution to an extension point (empty if none). */
  getAll<T>(id: ServiceId<T>): T[] {
    return this.container.getAll<T>(id, { optional: true });
  }

  /** The strategy driving this run. */
  get strategy(): Strategy {
    return this.strategyObj;
  }

  /** The seed. */
  get seed(): number {
    return this.options.seed;
  }

  /**
   * Attaches an oracle to this run (plugins usually contribute them to
   * {@link OracleContribution} instead). Must be called before `run()`.
   */
  addOracle(oracle: Oracle): void {
    if (this.result !== null) throw new Error('Simulation.addOracle: the run already ended');
    const ctx: OracleContext = {
      bus: this.bus.forOwner(oracle.id),
      scheduler: this.scheduler,
      clock: this.clock,
      report: (v: ViolationReport) => this.oracles.report(oracle.id, v),
    };
    try {
      oracle.attach(ctx);
    } catch (e) {
      this.reportError('oracle-error', oracle.id, `oracle "${oracle.id}" threw in attach()`, e);
    }
    this.attached.push({ oracle, ctx });
  }

  /**
   * Reports an exception thrown outside any task (an oracle, a bus subscriber, a timer, the
   * scenario's setup) as a violation of `kind`, once per kind and reporter (a broken oracle
   * throws on every event; the first report says it), and never from inside its own delivery
   * (so a broken oracle cannot recurse).
   */
  private reportError(kind: string, reporter: string, what: string, e: unknown): void {
    if (this.reportingError || this.brokenReporters.has(`${kind}|${reporter}`)) return;
    this.brokenReporters.add(`${kind}|${reporter}`);
    this.reportingError = true;
    try {
      const d = describeThrown(e);
      this.oracles.report(reporter, {
        kind,
        message: `${what}: ${d.name}: ${d.message}`,
        ...(d.where !== '' ? { details: { where: d.where } } : {}),
      });
    } finally {
      this.reportingError = false;
    }
  }

  /**
   * Records that the scenario's setup threw: a `setup-error` violation; `run()` then ends at
   * once with reason `'error'` (no step is taken in a half-built simulation). Campaigns call it
   * so one bad iteration does not lose the others.
   */
  failSetup(error: unknown): void {
    if (this.result !== null) throw new Error('Simulation.failSetup: the run already ended');
    this.reportError('setup-error', 'setup', 'the scenario setup threw', error);
    this.setupError = asError(error);
  }

  /** Spawns a task; see {@link Scheduler.spawn}. */
  spawn<R>(
    name: string,
    on: string | number | ExecutionContext,
    body: TaskBody<R>,
    options?: SpawnOptions,
  ): Task {
    return this.scheduler.spawn(name, on, body, options);
  }

  /**
   * Reports a `WARN()`-style violation from model code without stopping the current task.
   * @see WARN
   */
  warn(kind: string, message: string, evidence: readonly number[] = []): Violation {
    return this.oracles.report('model', { kind, message, evidence });
  }

  /**
   * Runs the simulation to its end (once), then lets every oracle check end-of-run rules.
   * `stopAtStep` ends the run early, before that step, with reason `'stopped'` (to inspect the
   * state of a replay at a point of interest); end-of-run oracle checks are skipped then.
   * Never throws for anything a task does: crashes, deadlocks and budget overruns become
   * violations, and a strategy error (such as a replay divergence) ends the run with
   * `reason: 'error'`; the log keeps everything up to that point.
   */
  run(options: { readonly stopAtStep?: number } = {}): RunResult {
    if (this.result !== null)
      throw new Error('Simulation.run: a simulation runs once; create a new one');
    const end =
      this.setupError !== null
        ? this.scheduler.abort(this.setupError)
        : this.scheduler.run(options.stopAtStep ?? Infinity);
    if (end.reason !== 'stopped' && this.setupError === null) {
      for (const { oracle, ctx } of this.attached) {
        try {
          oracle.finish?.(ctx);
        } catch (e) {
          this.reportError('oracle-error', oracle.id, `oracle "${oracle.id}" threw in finish()`, e);
        }
      }
    }
    this.fileLog?.close();
    const violations = this.oracles.violations;
    const reason: RunEndReason =
      end.reason === 'done' && violations.length > 0 ? 'violation' : end.reason;
    this.result = {
      reason,
      ok: reason === 'done',
      steps: end.steps,
      time: end.time,
      violations,
      schedule: this.scheduler.schedule,
      preemptions: this.scheduler.preemptions,
      tasks: this.scheduler.spawned,
      seed: this.options.seed,
      strategy: this.strategyObj.describe(),
      events: this.log?.length ?? 0,
      eventsBuilt: this.bus.emitted,
      ...(end.error !== undefined ? { error: end.error } : {}),
    };
    return this.result;
  }

  /**
   * The log header: the seed and what the simulation was made of. Excludes the strategy, so a
   * replay of a run (which uses the replay strategy) has the same header and final hash.
   */
  header(extra: LogHeaderFields = {}): LogHeaderFields {
    const o = this.options;
    return {
      seed: o.seed,
      cpus: o.cpus,
      devices: [...o.devices],
      quantumNs: o.quantumNs,
      plugins: this.plugins.map((p) => ({ id: p.id, options: p.options?.input ?? null })),
      ...extra,
    };
  }

  /** The log as NDJSON with its hash chain (see {@link EventLog.toNdjson}). */
  toNdjson(extra: LogHeaderFields = {}): string {
    if (this.log === null)
      throw new Error('Simulation.toNdjson: this simulation keeps no log (log: false)');
    return this.log.toNdjson(this.header(extra));
  }

  /**
   * The hash at the end of the log's chain (with the same header `extra` fields as
   * {@link Simulation.toNdjson}): equal for runs whose logs are byte-identical.
   */
  finalHash(extra: LogHeaderFields = {}): string {
    if (this.log === null)
      throw new Error('Simulation.finalHash: this simulation keeps no log (log: false)');
    return this.log.finalHash(this.header(extra));
  }
}
