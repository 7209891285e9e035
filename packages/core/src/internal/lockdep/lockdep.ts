import type { EventBus } from '../bus.js';
import type { JsonValue } from '../json.js';
import type { OracleRegistry } from '../oracle.js';
import type { RunState } from '../run-state.js';
import type { Scheduler } from '../scheduler.js';
import type { Task } from '../task.js';

/**
 * How a lock is acquired, for lockdep's dependency rules:
 * - `'write'`: exclusive (spinlocks, mutexes, writers);
 * - `'read'`: shared but non-recursive (rwsem readers, qrwlock readers in process context) — a
 *   reader can be blocked by a waiting writer, so it can take part in a deadlock;
 * - `'recursive-read'`: shared and recursive (SRCU/RCU readers) — never blocked by a waiting
 *   writer, so a cycle through it is not always a deadlock.
 */
export type LockMode = 'write' | 'read' | 'recursive-read';

/**
 * A lock class: the unit lockdep reasons about. Every lock with the same name (and subclass)
 * shares one class, as every `mm->mmap_lock` shares the class of its initialisation site in the
 * kernel.
 *
 * @see struct lock_class
 */
export class LockClass {
  /**
   * @param id dense id.
   * @param name the class name (the lock's name).
   * @param subclass nesting subclass (`mutex_lock_nested`), 0 by default.
   * @internal
   */
  constructor(
    readonly id: number,
    readonly name: string,
    readonly subclass: number,
  ) {}

  /** `name` or `name/subclass`, as reports show it. */
  toString(): string {
    return this.subclass === 0 ? this.name : `${this.name}/${this.subclass}`;
  }
}

/** One entry of a task's held-lock stack. */
export interface HeldLock {
  /** The lock instance (the object passed to {@link Lockdep.acquire}). */
  readonly instance: object;
  /** Its class. */
  readonly cls: LockClass;
  /** How it is held; a downgrade turns `'write'` into `'read'`. */
  mode: LockMode;
  /** True if it was taken with a trylock (such an acquisition adds no dependency). */
  readonly trylock: boolean;
  /** Scheduler step of the acquisition. */
  readonly step: number;
  /** `seq` of the event that recorded the acquisition, or -1; set by the lock. */
  seq: number;
}

/** Where a dependency was first seen, for reports. */
interface EdgeWitness {
  readonly task: string;
  readonly step: number;
  readonly holdSeq: number;
}

/** Edge label bits: held lock exclusive (E) or shared (S), new lock recursive-read (R) or not (N). */
const EN = 1;
const ER = 2;
const SN = 4;
const SR = 8;
/** Edge label bit by (held shared ? 2 : 0) + (new recursive-read ? 1 : 0). */
const LABEL_BITS: readonly number[] = [EN, ER, SN, SR];

interface Edge {
  readonly to: LockClass;
  labels: number;
  readonly witness: Map<number, EdgeWitness>;
}

/** One step of a reported dependency chain. */
export interface ChainLink {
  /** The lock held. */
  readonly from: string;
  /** The lock acquired while holding it. */
  readonly to: string;
  /** Who recorded this dependency first (`name#id`). */
  readonly task: string;
  /** At which step. */
  readonly step: number;
}

/**
 * A lockdep map: a lock class acquired and released with no real lock behind it, to teach
 * lockdep about an ordering that has no lock of its own (`struct lockdep_map`). The kernel has
 * one for "inside `invalidate_range_start`" and one for "inside direct reclaim".
 *
 * ## Example
 * ```ts
 * const map = kernel.lockdep.map('mmu_notifier_invalidate_range_start');
 * map.acquire();   // lock_map_acquire
 * callNotifiers();
 * map.release();   // lock_map_release
 * ```
 *
 * @see lock_map_acquire
 */
export class LockdepMap {
  /**
   * @param lockdep the validator.
   * @param cls the map's class.
   * @internal
   */
  constructor(
    private readonly lockdep: Lockdep,
    readonly cls: LockClass,
  ) {}

  /** The map's name. */
  get name(): string {
    return this.cls.name;
  }

  /** Acquires the map for the current task (`lock_map_acquire`, or `_read` for `'recursive-read'`). */
  acquire(mode: LockMode = 'write'): void {
    this.lockdep.acquire(this, this.cls, mode);
  }

  /** Releases the map (`lock_map_release`). */
  release(): void {
    this.lockdep.release(this);
  }

  /**
   * Acquires and releases at once: records "everything held now comes before this map" without
   * holding it (used before sleeping on something the map's holders may wait for).
   */
  touch(): void {
    this.lockdep.acquire(this, this.cls, 'write');
    this.lockdep.release(this);
  }
}

/** Lockdep reporter id on violations. */
const LOCKDEP = 'lockdep';

/**
 * The lock validator (the kernel's lockdep, `CONFIG_PROVE_LOCKING`): held-lock stacks per task,
 * a dependency graph between lock classes, and reports of orderings that can deadlock — in any
 * run that shows both orders, whether or not that run deadlocked.
 *
 * What it reports (each a violation, at most once per distinct problem):
 * - `lockdep-circular`: acquiring L while holding H when the graph already has a path
 *   L → … → H (the AB-BA pattern, and longer cycles), showing both acquisition chains. Read
 *   acquisitions follow the kernel's rule for recursive readers: a cycle is reported only if it
 *   is "strong" — no lock in it is reached by a recursive-read acquisition and then held as a
 *   reader for the next step.
 * - `lockdep-recursive`: acquiring a class the task already holds (same class, not both reads
 *   of a recursive-read class).
 * - `lockdep-bad-unlock`: releasing a lock the task does not hold.
 * - `lockdep-held-at-exit`: a task exits holding locks.
 *
 * Locks call it; model code rarely does, except through {@link LockdepMap}s. Context: plain
 * functions, never sleep.
 *
 * @see kernel/locking/lockdep.c
 */
export class Lockdep {
  private readonly classes = new Map<string, LockClass>();
  private readonly classList: LockClass[] = [];
  private readonly edges: Map<number, Edge>[] = [];
  private readonly heldByTask: HeldLock[][] = [];
  private readonly maps = new Map<string, LockdepMap>();
  private readonly reported = new Set<string>();

  /**
   * @param enabled false turns lockdep off entirely: no held-lock stacks, no graph, no reports.
   * @internal
   */
  constructor(
    private readonly sched: Scheduler,
    bus: EventBus,
    private readonly oracles: OracleRegistry,
    private readonly state: RunState,
    readonly enabled: boolean,
  ) {
    if (enabled) {
      bus.on('sched.exit').subscribe((e) => this.checkExit(e.data.id, e.data.name));
    }
  }

  /** The class for `name` (and `subclass`), created on first use. */
  classOf(name: string, subclass = 0): LockClass {
    const key = subclass === 0 ? name : `${name}/${subclass}`;
    let cls = this.classes.get(key);
    if (cls === undefined) {
      cls = new LockClass(this.classList.length, name, subclass);
      this.classes.set(key, cls);
      this.classList.push(cls);
      this.edges.push(new Map());
    }
    return cls;
  }

  /** The fake lock map named `name`, created on first use. */
  map(name: string): LockdepMap {
    let m = this.maps.get(name);
    if (m === undefined) {
      m = new LockdepMap(this, this.classOf(name));
      this.maps.set(name, m);
    }
    return m;
  }

  /** The held-lock stack of `task` (default: the current task), oldest first. */
  held(task?: Task): readonly HeldLock[] {
    const t = task ?? this.sched.current;
    return this.heldByTask[t.id] ?? [];
  }

  /**
   * True if the current task holds `instance` (in any mode). Only meaningful with lockdep
   * enabled; locks also answer `heldByCurrent()` themselves.
   */
  isHeld(instance: object): boolean {
    const t = this.sched.currentOrNull;
    if (t === null) return false;
    const stack = this.heldByTask[t.id];
    if (stack === undefined) return false;
    for (let i = stack.length - 1; i >= 0; i--) if (stack[i]!.instance === instance) return true;
    return false;
  }

  /**
   * Records that the current task is acquiring `instance` of class `cls`. Call it before
   * waiting for the lock, so an ordering that deadlocks is reported even in the run where it
   * does. Returns the held-lock entry (set its `seq` once the acquisition event is emitted).
   * `nestLock` is the kernel's `nest_lock` annotation (`down_write_nest_lock`): while that lock
   * is held, taking several locks of one class is not recursive locking.
   *
   * @see lock_acquire
   */
  acquire(
    instance: object,
    cls: LockClass,
    mode: LockMode,
    options?: { trylock?: boolean; nestLock?: object },
  ): HeldLock | null {
    if (!this.enabled) return null;
    const task = this.sched.current;
    let stack = this.heldByTask[task.id];
    if (stack === undefined) {
      stack = [];
      this.heldByTask[task.id] = stack;
    }
    const trylock = options?.trylock === true;
    const nested =
      options?.nestLock !== undefined && stack.some((h) => h.instance === options.nestLock);
    if (options?.nestLock !== undefined && !nested) {
      this.report(
        'lockdep-nest-lock-not-held',
        `WARNING: ${task.toString()} acquires ${cls.toString()} with a nest lock it does not hold`,
      );
    }
    // Under a held nest lock, more locks of one class are fine (lock_acquire's nest_lock): the
    // nest lock serialises them, so no recursion report and no new dependency.
    if (!trylock && !(nested && stack.some((h) => h.cls === cls)))
      this.checkNew(task, stack, cls, mode);
    const entry: HeldLock = { instance, cls, mode, trylock, step: this.state.step, seq: -1 };
    stack.push(entry);
    return entry;
  }

  /**
   * Records that the current task released `instance`. Releasing a lock the task does not hold
   * is reported as `lockdep-bad-unlock` and returns false.
   *
   * @see lock_release
   */
  release(instance: object): boolean {
    if (!this.enabled) return true;
    const task = this.sched.currentOrNull;
    const stack = task === null ? undefined : this.heldByTask[task.id];
    if (stack !== undefined) {
      for (let i = stack.length - 1; i >= 0; i--) {
        if (stack[i]!.instance === instance) {
          stack.splice(i, 1);
          return true;
        }
      }
    }
    const name = (instance as { name?: unknown }).name;
    this.report(
      'lockdep-bad-unlock',
      `WARNING: bad unlock balance detected! ${task?.toString() ?? 'no task'} is trying to release lock ${typeof name === 'string' ? name : '?'} but there are no more locks to release`,
    );
    return false;
  }

  /** Turns a held write acquisition of `instance` into a read one (`downgrade_write`). */
  downgrade(instance: object): void {
    if (!this.enabled) return;
    const stack = this.heldByTask[this.sched.current.id] ?? [];
    for (let i = stack.length - 1; i >= 0; i--) {
      if (stack[i]!.instance === instance) {
        stack[i]!.mode = 'read';
        return;
      }
    }
    this.release(instance);
  }

  /**
   * Records a wait for every holder of `cls` to leave, without holding it (`lock_sync`, used by
   * `synchronize_srcu`): "everything held now comes before cls". Waiting while holding `cls` as
   * a reader is a self-deadlock and is reported.
   */
  sync(instance: object, cls: LockClass): void {
    this.acquire(instance, cls, 'write');
    this.release(instance);
  }

  // ---------------------------------------------------------------------------------------

  private checkNew(task: Task, stack: HeldLock[], cls: LockClass, mode: LockMode): void {
    for (let i = stack.length - 1; i >= 0; i--) {
      const h = stack[i]!;
      if (h.cls !== cls) continue;
      if (mode === 'recursive-read' && h.mode !== 'write') return;
      this.report(
        'lockdep-recursive',
        `WARNING: possible recursive locking detected: ${task.toString()} is trying to acquire ${cls.toString()} (${mode}) but already holds ${h.cls.toString()} (${h.mode}, taken at step ${h.step})`,
        { evidence: h.seq >= 0 ? [h.seq] : [] },
        `recursive:${cls.id}`,
      );
      return;
    }
    // Add prev -> new for the held locks from the top down to the first non-trylock one.
    for (let i = stack.length - 1; i >= 0; i--) {
      const h = stack[i]!;
      this.addEdge(task, h, cls, mode);
      if (!h.trylock) break;
    }
  }

  private addEdge(task: Task, held: HeldLock, to: LockClass, mode: LockMode): void {
    const label = (held.mode === 'write' ? 0 : 2) + (mode === 'recursive-read' ? 1 : 0);
    const bit = LABEL_BITS[label]!;
    const from = held.cls;
    const out = this.edges[from.id]!;
    let edge = out.get(to.id);
    if (edge !== undefined && (edge.labels & bit) !== 0) return;
    // New dependency: does the graph already lead from `to` back to `from`?
    const newX = held.mode === 'write' ? 'E' : 'S';
    const newY = mode === 'recursive-read' ? 'R' : 'N';
    const path = this.findStrongPath(to, from, newX, newY);
    if (edge === undefined) {
      edge = { to, labels: 0, witness: new Map() };
      out.set(to.id, edge);
    }
    edge.labels |= bit;
    edge.witness.set(bit, { task: task.toString(), step: this.state.step, holdSeq: held.seq });
    if (path !== null) this.reportCycle(task, held, to, mode, path);
  }

  /**
   * Breadth-first search for a strong path start → … → goal whose junctions with the new edge
   * (goal → start, labelled newX/newY) are strong too. Returns the edges with their labels.
   */
  private findStrongPath(
    start: LockClass,
    goal: LockClass,
    newX: 'E' | 'S',
    newY: 'R' | 'N',
  ): { from: LockClass; to: LockClass; bit: number }[] | null {
    // State: (class, y of the edge that reached it); key = id * 2 + (y === 'R').
    const prev = new Map<
      number,
      { key: number; from: LockClass; to: LockClass; bit: number } | null
    >();
    const startKey = start.id * 2 + (newY === 'R' ? 1 : 0);
    prev.set(startKey, null);
    const queue: number[] = [startKey];
    for (let qi = 0; qi < queue.length; qi++) {
      const key = queue[qi]!;
      const node = this.classList[key >> 1]!;
      const lastR = (key & 1) === 1;
      if (node === goal && qi > 0 && !(lastR && newX === 'S')) {
        const path: { from: LockClass; to: LockClass; bit: number }[] = [];
        let k: number | undefined = key;
        while (k !== undefined) {
          const p = prev.get(k);
          if (p === null || p === undefined) break;
          path.unshift({ from: p.from, to: p.to, bit: p.bit });
          k = p.key;
        }
        return path;
      }
      for (const edge of this.edges[node.id]!.values()) {
        for (const bit of [EN, ER, SN, SR]) {
          if ((edge.labels & bit) === 0) continue;
          const x = bit === EN || bit === ER ? 'E' : 'S';
          if (lastR && x === 'S') continue; // -(xR)-> A -(Sy)-> is not a strong junction
          const y = bit === ER || bit === SR ? 1 : 0;
          const nk = edge.to.id * 2 + y;
          if (prev.has(nk)) continue;
          prev.set(nk, { key, from: node, to: edge.to, bit });
          queue.push(nk);
        }
      }
    }
    return null;
  }

  private reportCycle(
    task: Task,
    held: HeldLock,
    to: LockClass,
    mode: LockMode,
    path: { from: LockClass; to: LockClass; bit: number }[],
  ): void {
    const classes = [held.cls, ...path.map((p) => p.to)].map((c) => c.id).sort((a, b) => a - b);
    const key = `cycle:${classes.join(',')}`;
    const existing: ChainLink[] = path.map((p) => {
      const w = this.edges[p.from.id]!.get(p.to.id)!.witness.get(p.bit)!;
      return { from: p.from.toString(), to: p.to.toString(), task: w.task, step: w.step };
    });
    const now: ChainLink = {
      from: held.cls.toString(),
      to: to.toString(),
      task: task.toString(),
      step: this.state.step,
    };
    const evidence: number[] = [];
    for (const p of path) {
      const w = this.edges[p.from.id]!.get(p.to.id)!.witness.get(p.bit)!;
      if (w.holdSeq >= 0) evidence.push(w.holdSeq);
    }
    if (held.seq >= 0) evidence.push(held.seq);
    const fmt = (l: ChainLink): string => `${l.from} -> ${l.to} (${l.task}, step ${l.step})`;
    this.report(
      'lockdep-circular',
      `WARNING: possible circular locking dependency detected: ${task.toString()} is trying to acquire ${to.toString()} (${mode}) while holding ${held.cls.toString()} (${held.mode}); ` +
        `existing dependency chain: ${existing.map(fmt).join(', ')}; new dependency: ${fmt(now)}`,
      {
        evidence,
        details: {
          existing: existing.map((l) => ({ ...l })),
          new: { ...now },
        },
      },
      key,
    );
  }

  private checkExit(id: number, name: string): void {
    const stack = this.heldByTask[id];
    if (stack === undefined || stack.length === 0) return;
    this.report(
      'lockdep-held-at-exit',
      `BUG: ${name}#${id} exited still holding ${stack.length} lock(s): ${stack.map((h) => h.cls.toString()).join(', ')}`,
      { task: { id, name } },
    );
    stack.length = 0;
  }

  private report(
    kind: string,
    message: string,
    extra?: {
      evidence?: number[];
      details?: JsonValue;
      task?: { id: number; name: string };
    },
    dedupe?: string,
  ): void {
    if (dedupe !== undefined) {
      if (this.reported.has(dedupe)) return;
      this.reported.add(dedupe);
    }
    this.oracles.report(LOCKDEP, {
      kind,
      message,
      ...(extra?.evidence !== undefined ? { evidence: extra.evidence } : {}),
      ...(extra?.details !== undefined ? { details: extra.details } : {}),
      ...(extra?.task !== undefined ? { task: extra.task } : {}),
    });
  }
}
