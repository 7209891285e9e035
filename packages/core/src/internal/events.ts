import type { JsonValue } from './json.js';

/**
 * The payload type of every event, by event type. Each package adds its own event types by
 * declaration merging, so that `bus.on('mm.pte.set')` is fully typed:
 *
 * ```ts
 * declare module '@mmnsim/core' {
 *   interface SimEventMap {
 *     'mydev.tlb.fill': { va: number; pfn: number };
 *   }
 * }
 * ```
 *
 * Types are namespaced by the package or plugin that emits them (`sched.*`, `sim.*` and
 * `oracle.*` belong to core). Payloads are plain JSON data and must not be changed after they
 * are emitted: the log keeps them by reference.
 */
export interface SimEventMap {
  /**
   * The simulation was created (before plugins start). The strategy is deliberately absent, so
   * a replay of a run logs exactly what the run logged.
   */
  'sim.start': {
    /** The simulation seed. */
    seed: number;
    /** Number of CPUs. */
    cpus: number;
    /** Device engine names. */
    devices: string[];
  };
  /** The run ended. */
  'sim.end': {
    /** `'done'`, `'violation'`, `'deadlock'`, `'livelock'` or `'error'`. */
    reason: string;
    /** Steps taken. */
    steps: number;
    /** Virtual time at the end (ns). */
    time: number;
  };
  /** A task was created on an execution context. */
  'sched.spawn': {
    /** The new task's id. */
    id: number;
    /** Its name. */
    name: string;
    /** The context it is bound to. */
    on: string;
  };
  /** A task's body returned (or threw; see `oracle.violation`). */
  'sched.exit': {
    /** The task's id. */
    id: number;
    /** Its name. */
    name: string;
  };
  /** The running task blocked on a waitable. */
  'sched.block': {
    /** The waitable's name. */
    on: string;
  };
  /** A blocked task was made runnable by a wake-up on the waitable it waited for. */
  'sched.wake': {
    /** The woken task's id. */
    id: number;
    /** The waitable that woke it. */
    on: string;
  };
  /** The running task went to sleep until a virtual time. */
  'sched.sleep': {
    /** Wake-up time (ns). */
    until: number;
  };
  /** The clock jumped forward because every task was asleep. */
  'sched.idle': {
    /** Time before the jump (ns). */
    from: number;
    /** Time after the jump (ns). */
    to: number;
  };
  /** An execution context switched from one task to another. */
  'sched.switch': {
    /** Id of the task that had the context. */
    from: number;
    /** Id of the task that has it now. */
    to: number;
  };
  /** A lock was acquired by the running task. */
  'lock.acquired': {
    /** The lock's name. */
    lock: string;
  };
  /** A lock was released by the running task. */
  'lock.released': {
    /** The lock's name. */
    lock: string;
  };
  /** The running task found a lock held and will wait for it. */
  'lock.contended': {
    /** The lock's name. */
    lock: string;
    /** Id of the task holding it. */
    owner: number;
  };
  /** An SRCU reader entered a read-side section (a task reader or an observable scope). */
  'srcu.read_lock': {
    /** The SRCU domain's name. */
    domain: string;
    /** The counter index the reader was counted in (0 or 1). */
    idx: number;
    /** `'task'` or `'scope'`. */
    reader: string;
  };
  /** An SRCU reader left its read-side section. */
  'srcu.read_unlock': {
    /** The SRCU domain's name. */
    domain: string;
    /** The index passed back. */
    idx: number;
    /** `'task'` or `'scope'`. */
    reader: string;
  };
  /** An SRCU grace period started. */
  'srcu.gp_start': {
    /** The SRCU domain's name. */
    domain: string;
    /** Grace-period sequence number. */
    gp: number;
  };
  /** The active index flipped inside a grace period. */
  'srcu.flip': {
    /** The SRCU domain's name. */
    domain: string;
    /** The new active index. */
    idx: number;
  };
  /** An SRCU grace period ended. */
  'srcu.gp_end': {
    /** The SRCU domain's name. */
    domain: string;
    /** Grace-period sequence number. */
    gp: number;
  };
  /** `synchronize_srcu` was called. */
  'srcu.sync_start': {
    /** The SRCU domain's name. */
    domain: string;
  };
  /** `synchronize_srcu` returned. */
  'srcu.sync_end': {
    /** The SRCU domain's name. */
    domain: string;
  };
  /** A callback was queued with `call_srcu`. */
  'srcu.cb_queue': {
    /** The SRCU domain's name. */
    domain: string;
    /** Callback id, unique in the domain. */
    cb: number;
  };
  /** A queued callback ran. */
  'srcu.cb_invoke': {
    /** The SRCU domain's name. */
    domain: string;
    /** Callback id. */
    cb: number;
  };
  /** `srcu_barrier` was called. */
  'srcu.barrier_start': {
    /** The SRCU domain's name. */
    domain: string;
  };
  /** `srcu_barrier` returned. */
  'srcu.barrier_end': {
    /** The SRCU domain's name. */
    domain: string;
  };
  /** `ww_acquire_init`: a new acquire context. */
  'ww.acquire_init': {
    /** The ww_class name. */
    class: string;
    /** The context's stamp (its identity: smaller is older). */
    stamp: number;
  };
  /** A ww_mutex lock call returned. */
  'ww.lock': {
    /** The ww_mutex's name. */
    lock: string;
    /** The context's stamp, or -1 without a context. */
    stamp: number;
    /** 0, or the errno returned (-35 EDEADLK, -114 EALREADY, -4 EINTR). */
    result: number;
    /** `'lock'`, `'slow'` or `'trylock'`. */
    how: string;
  };
  /** A context was wounded (Wound-Wait) or told to die (Wait-Die). */
  'ww.wound': {
    /** Stamp of the context that must back off. */
    victim: number;
    /** Stamp of the older context that caused it. */
    by: number;
  };
  /** A ww_mutex was unlocked. */
  'ww.unlock': {
    /** The ww_mutex's name. */
    lock: string;
    /** The context's stamp, or -1. */
    stamp: number;
  };
  /** `ww_acquire_fini`: an acquire context ended. */
  'ww.acquire_fini': {
    /** The context's stamp. */
    stamp: number;
  };
  /** An oracle reported a broken rule. */
  'oracle.violation': {
    /** The violation kind. */
    kind: string;
    /** What broke. */
    message: string;
    /** `seq` numbers of the proving events. */
    evidence: number[];
    /** The reporting oracle's id. */
    oracle: string;
  };
}

/** Every known event type. */
export type SimEventType = Extract<keyof SimEventMap, string>;

/**
 * One recorded state change of the model (ARCHITECTURE §4).
 *
 * `seq` numbers the events a run built (events nobody wanted are never built and take no
 * number); `step` and `time` are the scheduler step and virtual time at emission; `ctx` and
 * `task` say who was running (`'-'` and -1 outside any task).
 */
export interface SimEvent<K extends SimEventType = SimEventType> {
  /** Position of this event among the events the run built, from 0. */
  readonly seq: number;
  /** Scheduler step at emission. */
  readonly step: number;
  /** Virtual time in nanoseconds at emission. */
  readonly time: number;
  /** Execution context that was running (`'cpu0'`, `'nic0'`, or `'-'`). */
  readonly ctx: string;
  /** Id of the task that was running, or -1. */
  readonly task: number;
  /** Namespaced event type. */
  readonly type: K;
  /** Typed payload, plain JSON. */
  readonly data: SimEventMap[K];
}

/** The discriminated union of all typed events: narrowing on `type` narrows `data`. */
export type AnySimEvent = { [K in SimEventType]: SimEvent<K> }[SimEventType];

/**
 * An event as a log holds it when the emitting plugin's types are not known (for example a log
 * read back from NDJSON by a viewer that loads no plugins).
 */
export interface LoggedEvent {
  /** See {@link SimEvent.seq}. */
  readonly seq: number;
  /** See {@link SimEvent.step}. */
  readonly step: number;
  /** See {@link SimEvent.time}. */
  readonly time: number;
  /** See {@link SimEvent.ctx}. */
  readonly ctx: string;
  /** See {@link SimEvent.task}. */
  readonly task: number;
  /** See {@link SimEvent.type}. */
  readonly type: string;
  /** The payload as plain JSON. */
  readonly data: JsonValue;
}
