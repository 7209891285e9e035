import type { EventBus } from './bus.js';
import type { Clock } from './clock.js';
import { ExecutionContext } from './context.js';
import { asError, describeThrown } from './describe-error.js';
import { ConfigError, KernelBug, StepBudgetError } from './errors.js';
import type { OracleRegistry } from './oracle.js';
import type { RunState } from './run-state.js';
import { stepObserver } from './step-observer.js';
import type { Strategy } from './strategy/strategy.js';
import { Task } from './task.js';
import type { SchedOp, SpawnOptions, TaskBody, TaskGen } from './task.js';
import { WaitQueue } from './waitqueue.js';
import type { Waitable } from './waitqueue.js';

/** Why a run ended (`'stopped'`: at the step a replay was asked to stop at, for inspection). */
export type RunEndReason = 'done' | 'violation' | 'deadlock' | 'livelock' | 'error' | 'stopped';

/** How a scheduler run ended; {@link Simulation.run} wraps it into a `RunResult`. */
export interface RunEnd {
  /** Why the run ended. */
  readonly reason: RunEndReason;
  /** Steps taken. */
  readonly steps: number;
  /** Virtual time at the end, in ns. */
  readonly time: number;
  /** The error that aborted the run when `reason` is `'error'` (a replay divergence, a broken strategy). */
  readonly error?: Error;
}

const PREEMPT: SchedOp = { kind: 'preempt' };

/** The reporter id the scheduler uses for its own violations. */
const SCHED = 'scheduler';

/**
 * The deterministic scheduler (ARCHITECTURE §3.2–3.3): owns the tasks, the execution contexts
 * and the step loop.
 *
 * At each step it collects the candidates — per context, the occupant if it is runnable, plus
 * the context's other runnable tasks when the occupant may be preempted or is gone — asks the
 * strategy to pick one when there is more than one, and resumes that task's generator until its
 * next scheduling point. The choices are recorded as the run's schedule. When nothing can run,
 * it advances the clock to the next timer, reports a deadlock (blocked non-daemon tasks, with the
 * wait-for graph), or ends the run. Exceeding the step budget is reported as a livelock.
 *
 * Model code reaches it for `current` and for the scheduling-point helpers:
 *
 * ```ts
 * function* body() {
 *   yield* sched.preempt();          // a plain preemption point
 *   yield* sched.sleepFor(10_000);   // sleep 10 µs of virtual time
 * }
 * ```
 */
export class Scheduler {
  /** The CPUs, then the device engines. */
  readonly contexts: readonly ExecutionContext[];
  private readonly byName = new Map<string, ExecutionContext>();
  private readonly live: Task[] = [];
  private readonly all: Task[] = [];
  private readonly choices: number[] = [];
  private readonly cands: Task[] = [];
  private running: Task | null = null;
  private ended: RunEnd | null = null;
  private lastRan: Task | null = null;
  private preempted = 0;

  /**
   * @param state shared run state (step, time, running task).
   * @param clock the virtual clock.
   * @param bus the event bus.
   * @param oracles where violations go.
   * @param strategy the scheduling strategy (already started).
   * @param cpus number of CPUs (`cpu0` …).
   * @param devices names of device engines.
   * @param maxSteps the step budget.
   * @internal
   */
  constructor(
    private readonly state: RunState,
    private readonly clock: Clock,
    private readonly bus: EventBus,
    private readonly oracles: OracleRegistry,
    readonly strategy: Strategy,
    cpus: number,
    devices: readonly string[],
    readonly maxSteps: number,
  ) {
    const ctxs: ExecutionContext[] = [];
    for (let i = 0; i < cpus; i++) ctxs.push(new ExecutionContext(`cpu${i}`, 'cpu', i));
    devices.forEach((d, i) => ctxs.push(new ExecutionContext(d, 'device', i)));
    for (const c of ctxs) this.byName.set(c.name, c);
    this.contexts = ctxs;
  }

  /**
   * The context named `on` (`'cpu1'`, `'nic0'`), or CPU number `on`.
   * @throws ConfigError naming the allowed contexts when there is no such context.
   */
  context(on: string | number): ExecutionContext {
    const c = typeof on === 'number' ? this.byName.get(`cpu${on}`) : this.byName.get(on);
    if (c === undefined) {
      throw new ConfigError(
        `unknown execution context ${JSON.stringify(on)}: allowed are ${[...this.byName.keys()].join(', ')}`,
      );
    }
    return c;
  }

  /** The running task. Only valid inside a task's step. */
  get current(): Task {
    const t = this.running;
    if (t === null) throw new Error('Scheduler.current used outside a task (no task is running)');
    return t;
  }

  /** The running task, or null outside any task (setup, timers). */
  get currentOrNull(): Task | null {
    return this.running;
  }

  /** Tasks that have not exited, in spawn order. */
  get tasks(): readonly Task[] {
    return this.live;
  }

  /** The task with id `id`, exited or not. */
  task(id: number): Task | undefined {
    return this.all[id];
  }

  /** The recorded schedule: the chosen task id at each choice point so far. */
  get schedule(): readonly number[] {
    return this.choices;
  }

  /** Steps taken so far. */
  get steps(): number {
    return this.state.step;
  }

  /**
   * Preemptions so far: choices that switched away from the task that ran the previous step
   * while it could have continued.
   */
  get preemptions(): number {
    return this.preempted;
  }

  /** Number of tasks spawned so far. */
  get spawned(): number {
    return this.all.length;
  }

  /**
   * Counts `units` of work against the current step's budget (the simulation's `maxStepWork`;
   * every emitted event counts one). Model code calls it inside loops that may run long between
   * two scheduling points (walking a list, retrying), so that a loop that never ends becomes a
   * `step-budget` violation of its task instead of a hung run.
   * @throws StepBudgetError (caught by the scheduler) when the budget is spent.
   */
  work(units = 1): void {
    const s = this.state;
    s.work += units;
    if (s.work > s.workLimit && s.task >= 0) {
      s.work = 0;
      throw new StepBudgetError(s.workLimit, s.taskName, s.task, this.bus.emitted - 1);
    }
  }

  /**
   * Creates a task on a context. It becomes runnable at once; the strategy decides when it
   * first runs. May be called before the run or from inside a task.
   *
   * @param name readable name for events and reports.
   * @param on context name or CPU number.
   * @param body the task's generator function.
   */
  spawn<R>(
    name: string,
    on: string | number | ExecutionContext,
    body: TaskBody<R>,
    options?: SpawnOptions,
  ): Task {
    const ctx = on instanceof ExecutionContext ? on : this.context(on);
    const task = new Task(
      this.all.length,
      name,
      ctx,
      options?.daemon === true,
      options?.interrupt === true,
    );
    this.all.push(task);
    this.live.push(task);
    this.strategy.onSpawn?.(task);
    task.gen = body(task);
    this.enqueue(task);
    if (this.bus.wants('sched.spawn'))
      this.bus.emit('sched.spawn', { id: task.id, name, on: ctx.name });
    return task;
  }

  /** A plain preemption point: the strategy may run another task here. */
  *preempt(): TaskGen<void> {
    yield PREEMPT;
  }

  /** Sleeps until virtual time `until` (ns). Sleeping in atomic context is a violation. */
  *sleepUntil(until: number): TaskGen<void> {
    yield { kind: 'sleep', until };
  }

  /** Sleeps for `ns` of virtual time. */
  *sleepFor(ns: number): TaskGen<void> {
    yield { kind: 'sleep', until: this.clock.now + ns };
  }

  /** Waits until `task` exits and returns its result. */
  *join(task: Task): TaskGen<unknown> {
    while (task.state !== 'exited') yield* this.exitQueue(task).wait();
    return task.result;
  }

  /**
   * Enters a preempt-disabled section (`preempt_disable`, a spinlock): the current task may not
   * be preempted or sleep until the matching {@link Scheduler.preemptEnable}.
   * @param reason what made the context atomic, named in sleep-in-atomic reports.
   */
  preemptDisable(reason: string): void {
    const t = this.current;
    t.preemptDepth++;
    t.atomicReasons.push(reason);
  }

  /** Leaves the innermost preempt-disabled section. */
  preemptEnable(): void {
    const t = this.current;
    if (t.preemptDepth === 0) {
      this.oracles.report(SCHED, {
        kind: 'preempt-imbalance',
        message: `${t.toString()}: preempt_enable() without a matching preempt_disable()`,
      });
      return;
    }
    t.preemptDepth--;
    t.atomicReasons.pop();
  }

  /**
   * Enters a section in which the task may be preempted but must not sleep (the kernel's
   * `non_block_start()`, used around non-blockable notifier calls).
   */
  enterNoSleep(reason: string): void {
    this.current.atomicReasons.push(reason);
  }

  /** Leaves the innermost no-sleep section entered with {@link Scheduler.enterNoSleep}. */
  leaveNoSleep(): void {
    const t = this.current;
    if (t.atomicReasons.length <= t.preemptDepth) {
      this.oracles.report(SCHED, {
        kind: 'preempt-imbalance',
        message: `${t.toString()}: leaving a no-sleep section that was not entered`,
      });
      return;
    }
    t.atomicReasons.pop();
  }

  /** @internal The op a waitable yields to block the current task. */
  blockOp(on: Waitable, spin: boolean): SchedOp {
    return { kind: 'block', on, spin };
  }

  /**
   * Makes a blocked task runnable again; `by` is the waitable that woke it. Waking a task that
   * is not blocked does nothing (a wake-up can race with the waiter giving up).
   */
  wake(task: Task, by: Waitable): void {
    if (task.state !== 'blocked') return;
    task.state = 'runnable';
    task.blockedOn = null;
    task.spinning = false;
    this.enqueue(task);
    if (this.bus.wants('sched.wake')) this.bus.emit('sched.wake', { id: task.id, on: by.name });
  }

  private readonly exitQueues = new Map<number, WaitQueue>();

  private exitQueue(task: Task): WaitQueue {
    let q = this.exitQueues.get(task.id);
    if (q === undefined) {
      q = new WaitQueue(this, `exit of ${task.toString()}`, () => [task]);
      this.exitQueues.set(task.id, q);
    }
    return q;
  }

  /**
   * Runs until every non-daemon task exited, a violation stops the run, nothing can run, or the
   * step budget is spent. Called once, by the simulation.
   */
  run(stopAtStep = Infinity): RunEnd {
    if (this.ended !== null) throw new Error('Scheduler.run: this run already ended');
    const state = this.state;
    const clock = this.clock;
    const quantum = clock.quantumNs;
    const cands = this.cands;
    const choices = this.choices;
    const strategy = this.strategy;
    const oracles = this.oracles;
    try {
      for (;;) {
        if (oracles.stopRequested) return this.end('violation');
        if (state.step >= stopAtStep) return this.end('stopped');
        if (clock.nextAt() <= state.time) clock.runDue();
        this.collect(cands);
        const n = cands.length;
        if (n === 0) {
          const next = clock.nextAt();
          // Only daemons are left, all asleep or blocked: the workload is over, whatever
          // periodic timers they keep (a daemon's next tick is not work of the run).
          if (next !== Infinity && this.onlyDaemonsLeft()) return this.end('done');
          if (next !== Infinity) {
            const from = state.time;
            clock.jumpTo(next);
            if (this.bus.wants('sched.idle')) this.bus.emit('sched.idle', { from, to: state.time });
            continue;
          }
          if (this.reportDeadlock()) return this.end('deadlock');
          return this.end(oracles.stopRequested ? 'violation' : 'done');
        }
        if (state.step >= this.maxSteps) {
          // Daemons that keep yielding after the workload exited are not a livelock.
          if (this.onlyDaemonsLeft()) return this.end('done');
          oracles.report(SCHED, {
            kind: 'livelock',
            message: `livelock: step budget (${this.maxSteps}) exhausted with tasks still runnable: ${cands.map((t) => t.toString()).join(', ')}`,
            task: { id: -1, name: '-' },
          });
          return this.end('livelock');
        }
        let chosen: Task;
        const prev = this.lastRan;
        if (n === 1) chosen = cands[0]!;
        else {
          try {
            chosen = strategy.pick(cands, state.step, prev);
            if (!cands.includes(chosen)) {
              throw new Error(
                `picked ${String((chosen as Task | undefined)?.toString())}, which is not one of the candidates (${cands.map((t) => t.toString()).join(', ')})`,
              );
            }
          } catch (e) {
            const d = describeThrown(e);
            oracles.report(SCHED, {
              kind: 'strategy-error',
              message: `strategy ${d.name}: ${d.message} (at step ${state.step})`,
              task: { id: -1, name: '-' },
            });
            return this.end('error', asError(e));
          }
          choices.push(chosen.id);
          if (prev !== null && chosen !== prev && cands.includes(prev)) this.preempted++;
        }
        this.lastRan = chosen;
        this.slice(chosen);
        state.step++;
        clock.advance(quantum);
      }
    } catch (e) {
      this.leaveTask();
      const d = describeThrown(e);
      oracles.report(SCHED, {
        kind: 'scheduler-error',
        message: `the run aborted: ${d.name}: ${d.message}`,
        task: { id: -1, name: '-' },
      });
      return this.end('error', asError(e));
    }
  }

  /**
   * @internal Ends a run that cannot start (its setup threw): reason `'error'`, no step taken.
   */
  abort(error: Error): RunEnd {
    if (this.ended !== null) throw new Error('Scheduler.abort: this run already ended');
    return this.end('error', error);
  }

  /** True when tasks are left and every one of them is a daemon. */
  private onlyDaemonsLeft(): boolean {
    const live = this.live;
    if (live.length === 0) return false;
    for (let i = 0; i < live.length; i++) if (!live[i]!.daemon) return false;
    return true;
  }

  private end(reason: RunEndReason, error?: Error): RunEnd {
    const s = this.state;
    this.ended =
      error === undefined
        ? { reason, steps: s.step, time: s.time }
        : { reason, steps: s.step, time: s.time, error };
    if (this.bus.wants('sim.end'))
      this.bus.emit('sim.end', { reason, steps: s.step, time: s.time });
    return this.ended;
  }

  /** Puts a runnable task on its context's run queue (interrupt work on the interrupt queue). */
  private enqueue(t: Task): void {
    if (t.interrupt) t.context.irqq.push(t);
    else t.context.runq.push(t);
  }

  /**
   * Fills `out` with the tasks that may run at this step, in a deterministic order. It writes by
   * index and trims the length only when it changed (resetting `length` at every step costs more
   * than the collection itself on the hot path).
   */
  private collect(out: Task[]): void {
    let k = 0;
    const ctxs = this.contexts;
    for (let c = 0; c < ctxs.length; c++) {
      const ctx = ctxs[c]!;
      const occ = ctx.occupant;
      if (occ !== null && occ.interrupt) {
        // A handler runs to completion; nested interrupts are not modelled.
        if (occ.state === 'runnable') out[k++] = occ;
        continue;
      }
      const irqq = ctx.irqq;
      if (irqq.length > 0 && (occ === null || occ.irqsOff === 0)) {
        for (let i = 0; i < irqq.length; i++) out[k++] = irqq[i]!;
      }
      if (occ !== null) {
        if (occ.state === 'runnable') {
          out[k++] = occ;
          if (occ.preemptDepth > 0) continue;
        } else if (occ.spinning) continue;
      }
      const rq = ctx.runq;
      for (let i = 0; i < rq.length; i++) {
        const t = rq[i]!;
        if (t !== occ) out[k++] = t;
      }
    }
    if (out.length !== k) out.length = k;
  }

  private enterTask(t: Task): void {
    const s = this.state;
    this.running = t;
    s.task = t.id;
    s.ctx = t.context.name;
    s.taskName = t.name;
  }

  private leaveTask(): void {
    const s = this.state;
    this.running = null;
    s.task = -1;
    s.ctx = '-';
    s.taskName = '-';
  }

  /** Resumes `t` until its next scheduling point and applies what it yielded. */
  private slice(t: Task): void {
    const ctx = t.context;
    const prev = ctx.occupant;
    if (prev !== t) {
      if (t.interrupt) ctx.interrupted = prev;
      ctx.occupant = t;
      if (prev !== null && this.bus.wants('sched.switch')) {
        this.enterTask(t);
        this.bus.emit('sched.switch', { from: prev.id, to: t.id });
      }
    }
    this.enterTask(t);
    this.state.work = 0;
    if (stepObserver.fn !== null)
      stepObserver.fn(this.state.step, t.id, t.name, this.bus.emitted - 1);
    let r: IteratorResult<SchedOp, unknown>;
    try {
      r = t.gen!.next();
    } catch (e) {
      this.state.work = 0;
      this.crashed(t, e);
      this.endInterrupt(t);
      this.leaveTask();
      return;
    }
    if (r.done === true) {
      t.result = r.value;
      this.exit(t);
    } else {
      const op = r.value;
      if (op.kind === 'block') this.block(t, op.on, op.spin);
      else if (op.kind === 'sleep') this.sleep(t, op.until);
    }
    this.endInterrupt(t);
    this.leaveTask();
  }

  /** When a handler ended (or, wrongly, slept), the interrupted task gets its CPU back. */
  private endInterrupt(t: Task): void {
    const ctx = t.context;
    if (!t.interrupt || ctx.occupant === t) return;
    ctx.occupant = ctx.interrupted;
    ctx.interrupted = null;
  }

  /**
   * Reports `sleep-in-atomic` if the current task is in atomic or no-sleep context
   * (`might_sleep()`); `what` names the function that may sleep.
   */
  checkMaySleep(what: string): void {
    const t = this.running;
    if (t !== null) this.mayNotSleep(t, `called ${what}`);
  }

  private mayNotSleep(t: Task, what: string): void {
    if (t.atomicReasons.length === 0) return;
    const why = t.atomicReasons[t.atomicReasons.length - 1]!;
    this.oracles.report(SCHED, {
      kind: 'sleep-in-atomic',
      message: `BUG: sleeping function called from invalid context: ${t.toString()} ${what} while in atomic context (${why})`,
      details: { reasons: [...t.atomicReasons] },
    });
  }

  private removeFromRunq(t: Task): void {
    const rq = t.interrupt ? t.context.irqq : t.context.runq;
    const i = rq.indexOf(t);
    if (i < 0) return;
    // In place (splice would allocate the array of removed elements at every block).
    const last = rq.length - 1;
    for (let j = i; j < last; j++) rq[j] = rq[j + 1]!;
    rq.pop();
  }

  private block(t: Task, on: Waitable, spin: boolean): void {
    if (!spin) this.mayNotSleep(t, `blocked on ${on.name}`);
    if (t.state !== 'runnable') return;
    t.state = 'blocked';
    t.blockedOn = on;
    t.spinning = spin;
    this.removeFromRunq(t);
    if (!spin) t.context.occupant = null;
    if (this.bus.wants('sched.block')) {
      const ev = this.bus.emit('sched.block', { on: on.name });
      t.blockSeq = ev === undefined ? -1 : ev.seq;
    }
  }

  private sleep(t: Task, until: number): void {
    this.mayNotSleep(t, 'slept');
    t.state = 'sleeping';
    this.removeFromRunq(t);
    t.context.occupant = null;
    if (this.bus.wants('sched.sleep')) this.bus.emit('sched.sleep', { until });
    this.clock.addTimer(until, `wake ${t.toString()}`, () => {
      if (t.state !== 'sleeping') return;
      t.state = 'runnable';
      this.enqueue(t);
    });
  }

  private exit(t: Task): void {
    t.state = 'exited';
    t.gen = null;
    this.removeFromRunq(t);
    if (t.context.occupant === t) t.context.occupant = null;
    const i = this.live.indexOf(t);
    if (i >= 0) this.live.splice(i, 1);
    if (this.bus.wants('sched.exit')) this.bus.emit('sched.exit', { id: t.id, name: t.name });
    this.exitQueues.get(t.id)?.wakeAll();
  }

  /**
   * Reports a task's exception. The message holds no source location, so the log is the same
   * in every checkout; the first frame (file name, line, column) goes to `details.where`, which
   * is not logged. A non-Error value is reported at the task that threw it.
   */
  private crashed(t: Task, e: unknown): void {
    const d = describeThrown(e);
    const details = d.where !== '' ? { details: { where: d.where } } : {};
    if (e instanceof StepBudgetError) {
      this.oracles.report(SCHED, {
        kind: 'step-budget',
        message: `step budget: ${e.message}`,
        evidence: e.lastSeq >= 0 ? [e.lastSeq] : [],
        ...details,
      });
    } else {
      this.oracles.report(SCHED, {
        kind: e instanceof KernelBug ? 'bug' : 'exception',
        message:
          e instanceof KernelBug
            ? `kernel BUG in ${t.toString()}: ${d.message}`
            : `${t.toString()} threw ${d.name}: ${d.message}`,
        ...details,
      });
    }
    this.exit(t);
  }

  private reportDeadlock(): boolean {
    const stuck = this.live.filter((t) => t.state === 'blocked' && !t.daemon);
    if (stuck.length === 0) return false;
    const edges = stuck.map((t) => ({
      task: t.id,
      name: t.name,
      waitsOn: t.blockedOn?.name ?? '?',
      heldBy: (t.blockedOn?.holders() ?? []).map((h) => h.id),
    }));
    const text = stuck
      .map((t) => {
        const holders = t.blockedOn?.holders() ?? [];
        const held =
          holders.length > 0 ? ` held by ${holders.map((h) => h.toString()).join(', ')}` : '';
        return `${t.toString()} waits for ${t.blockedOn?.name ?? '?'}${held}`;
      })
      .join('; ');
    this.oracles.report(SCHED, {
      kind: 'deadlock',
      message: `deadlock: no task can run; ${text}`,
      evidence: stuck.map((t) => t.blockSeq).filter((s) => s >= 0),
      task: { id: -1, name: '-' },
      details: { waitFor: edges },
    });
    return true;
  }
}
