import type { RunState } from './run-state.js';

/** A pending timer on the virtual clock; pass it to {@link Clock.cancel}. */
export interface Timer {
  /** Virtual time (ns) at which the timer fires. */
  readonly at: number;
  /** Name shown in events and deadlock reports. */
  readonly name: string;
  /** True once the timer fired or was cancelled. */
  readonly done: boolean;
}

interface TimerEntry extends Timer {
  at: number;
  seq: number;
  done: boolean;
  fn: () => void;
}

/**
 * The virtual clock, in nanoseconds (ARCHITECTURE §3.4).
 *
 * Time moves only when the scheduler says so: each step costs {@link Clock.quantumNs}, and when
 * every task sleeps the scheduler jumps the clock to the earliest timer. Timers fire in
 * (time, creation order) order, outside any task, atomically with respect to tasks — like a
 * timer softirq. Nothing here reads the host's clock, so runs are reproducible.
 *
 * ## Example
 * ```ts
 * const t = sim.clock.addTimer(sim.clock.now + 1_000, 'watchdog', () => fired++);
 * sim.clock.cancel(t);
 * ```
 */
export class Clock {
  private readonly heap: TimerEntry[] = [];
  private nextSeq = 0;

  /**
   * Built by the simulation.
   * @param state the shared run state whose `time` this clock advances.
   * @param quantumNs virtual nanoseconds one scheduler step costs.
   * @internal
   */
  constructor(
    private readonly state: RunState,
    readonly quantumNs: number,
  ) {}

  /**
   * Where an exception thrown by a timer callback goes (the simulation reports a `timer-error`
   * violation and the remaining timers still fire); without a handler it propagates.
   */
  onTimerError: ((error: unknown, timer: string) => void) | null = null;

  /** Current virtual time in ns. */
  get now(): number {
    return this.state.time;
  }

  /** Number of pending timers. */
  get pending(): number {
    return this.heap.length;
  }

  /** Time of the earliest pending timer, or `Infinity` when none is pending. */
  nextAt(): number {
    return this.heap.length === 0 ? Infinity : this.heap[0]!.at;
  }

  /**
   * Arms a timer that calls `fn` once the clock reaches `at` (clamped to now). `fn` runs outside
   * any task and must not block.
   */
  addTimer(at: number, name: string, fn: () => void): Timer {
    const t = this.state.time;
    const entry: TimerEntry = { at: at < t ? t : at, seq: this.nextSeq++, name, done: false, fn };
    this.push(entry);
    return entry;
  }

  /** Cancels a pending timer; returns false if it already fired or was cancelled. */
  cancel(timer: Timer): boolean {
    const entry = timer as TimerEntry;
    if (entry.done) return false;
    entry.done = true;
    const i = this.heap.indexOf(entry);
    if (i >= 0) this.removeAt(i);
    return true;
  }

  /** @internal Advances time by `ns` (the scheduler's per-step quantum). */
  advance(ns: number): void {
    this.state.time += ns;
  }

  /** @internal Jumps to `at` if it is later than now. */
  jumpTo(at: number): void {
    if (at > this.state.time) this.state.time = at;
  }

  /** @internal Fires every timer due at or before now; returns how many fired. */
  runDue(): number {
    let fired = 0;
    const heap = this.heap;
    while (heap.length > 0 && heap[0]!.at <= this.state.time) {
      const entry = this.removeAt(0);
      entry.done = true;
      fired++;
      const handler = this.onTimerError;
      if (handler === null) entry.fn();
      else {
        try {
          entry.fn();
        } catch (e) {
          handler(e, entry.name);
        }
      }
    }
    return fired;
  }

  private less(a: TimerEntry, b: TimerEntry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(e: TimerEntry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private removeAt(i: number): TimerEntry {
    const h = this.heap;
    const out = h[i]!;
    const last = h.pop()!;
    if (i < h.length) {
      h[i] = last;
      // sift down, then up
      let j = i;
      for (;;) {
        const l = 2 * j + 1;
        const r = l + 1;
        let m = j;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === j) break;
        [h[j], h[m]] = [h[m]!, h[j]!];
        j = m;
      }
      while (j > 0) {
        const p = (j - 1) >> 1;
        if (!this.less(h[j]!, h[p]!)) break;
        [h[j], h[p]] = [h[p]!, h[j]!];
        j = p;
      }
    }
    return out;
  }
}
