/**
 * The mmnsim simulation kernel: deterministic scheduler, tasks as generators, virtual time,
 * seeded randomness, the event bus and log, plugins and oracles, and the interval tree.
 *
 * @packageDocumentation
 */
import 'reflect-metadata';

export { EventBus } from './internal/bus.js';
export type { BusErrorHandler, EventSink } from './internal/bus.js';
export { Clock } from './internal/clock.js';
export type { Timer } from './internal/clock.js';
export { ExecutionContext } from './internal/context.js';
export type { ContextKind } from './internal/context.js';
export { ConfigError, KernelBug, StepBudgetError } from './internal/errors.js';
export { Errno, errnoName } from './internal/errno.js';
export type {
  AnySimEvent,
  LoggedEvent,
  SimEvent,
  SimEventMap,
  SimEventType,
} from './internal/events.js';
export {
  explore,
  makeReplayFile,
  minimise,
  parseReplayFile,
  pctGuarantee,
  replay,
  replayFile,
  ReplayFileError,
  ReplayFileSchema,
  runScenario,
  violationKey,
} from './internal/explore.js';
export type {
  CampaignStrategy,
  DistinctViolation,
  ExploreFailure,
  ExploreOptions,
  ExploreProgress,
  ExploreReport,
  IterationError,
  MinimisedSchedule,
  PctGuarantee,
  RecordedRun,
  ReplayFile,
  Scenario,
  ScenarioRun,
  ScheduleSize,
} from './internal/explore.js';
export { formatInterleaving, interleaving } from './internal/interleaving.js';
export type {
  FormatInterleavingOptions,
  InterleavingOptions,
  InterleavingRow,
} from './internal/interleaving.js';
export { IntervalNode, IntervalTree } from './internal/interval-tree.js';
export { exploreIsolated, runIsolated } from './internal/isolated.js';
export type {
  IsolatedExploreOptions,
  IsolatedRunOptions,
  IsolatedRunResult,
  ScenarioModule,
} from './internal/isolated.js';
export { releaseKeptObjects } from './internal/kept-objects.js';
export type { JsonPrimitive, JsonValue } from './internal/json.js';
export { EventLog, LogFormatError, readNdjson } from './internal/log.js';
export type { EventLogOptions, LogHeader, LogHeaderFields, ReadLog } from './internal/log.js';
export { NdjsonFileWriter, verifyNdjsonFile } from './internal/log-stream.js';
export type { NdjsonFileWriterOptions, VerifiedLogFile } from './internal/log-stream.js';
export { OracleRegistry } from './internal/oracle.js';
export type { Oracle, OracleContext, Violation, ViolationReport } from './internal/oracle.js';
export { definePlugin } from './internal/plugin.js';
export type { Plugin, PluginDefinition, PluginOptions } from './internal/plugin.js';
export { fold, LiveProjection } from './internal/projection.js';
export type { LiveProjectionOptions, Projection } from './internal/projection.js';
export { RandomSource, RandomStream } from './internal/random.js';
export { Scheduler } from './internal/scheduler.js';
export { serviceId } from './internal/service-id.js';
export type { ServiceId } from './internal/service-id.js';
export type { RunEnd, RunEndReason } from './internal/scheduler.js';
export {
  describeIssues,
  EventSinkContribution,
  OracleContribution,
  Simulation,
  SimulationConfig,
  SimulationService,
} from './internal/simulation.js';
export type {
  LogOptions,
  ResolvedSimulationOptions,
  RunResult,
  SimulationOptions,
} from './internal/simulation.js';
export { DfsStrategy, nextDfsPrefix, tracePreemptions } from './internal/strategy/dfs.js';
export type { DfsChoice } from './internal/strategy/dfs.js';
export { GuidedStrategy, nonPreemptiveChoice } from './internal/strategy/guided.js';
export { PctStrategy } from './internal/strategy/pct.js';
export type { PctOptions } from './internal/strategy/pct.js';
export { RandomStrategy } from './internal/strategy/random.js';
export { ReplayDivergenceError, ReplayStrategy } from './internal/strategy/replay.js';
export { RoundRobinStrategy } from './internal/strategy/round-robin.js';
export { createStrategy, StrategySpecSchema } from './internal/strategy/spec.js';
export type { StrategySpec } from './internal/strategy/spec.js';
export type { Strategy, StrategyStartInfo } from './internal/strategy/strategy.js';
export {
  FS_RECLAIM_MAP,
  Gfp,
  GFP_ATOMIC,
  GFP_KERNEL,
  GFP_NOFS,
  GFP_NOIO,
  GFP_NOWAIT,
  Kernel,
  MMU_NOTIFIER_START_MAP,
} from './internal/kernel.js';
export type { AllocScope } from './internal/kernel.js';
export { LockClass, Lockdep, LockdepMap } from './internal/lockdep/lockdep.js';
export type { ChainLink, HeldLock, LockMode } from './internal/lockdep/lockdep.js';
export { Completion } from './internal/sync/completion.js';
export { Mutex } from './internal/sync/mutex.js';
export { RwLock } from './internal/sync/rwlock.js';
export { RwSemaphore } from './internal/sync/rwsem.js';
export { SeqCount } from './internal/sync/seqcount.js';
export { SpinLock } from './internal/sync/spinlock.js';
export { SrcuDomain, SrcuOracle } from './internal/sync/srcu.js';
export type { SrcuDomainOptions, SrcuGpState } from './internal/sync/srcu.js';
export {
  DEFINE_WD_CLASS,
  DEFINE_WW_CLASS,
  WwAcquireCtx,
  WwClass,
  WwMutex,
} from './internal/sync/ww-mutex.js';
export type { WwAcquireOptions, WwAlgorithm, WwWaiter } from './internal/sync/ww-mutex.js';
export { Task } from './internal/task.js';
export type { SchedOp, SpawnOptions, TaskBody, TaskGen, TaskState } from './internal/task.js';
export { WaitQueue } from './internal/waitqueue.js';
export type { Waitable, WaitOptions } from './internal/waitqueue.js';
