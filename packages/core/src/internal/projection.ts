import type { Observable, Subscription } from 'rxjs';
import type { EventBus } from './bus.js';
import type { LoggedEvent, SimEventType } from './events.js';

/**
 * A view of the model built by folding events (ARCHITECTURE §4): page tables per mm, frame
 * states, each device's translations, each CPU's TLB.
 *
 * A projection sees {@link LoggedEvent}s, whose `type` is a plain string and whose `data` is
 * plain JSON, so a viewer can fold a saved log without loading the plugins that emitted it. It
 * narrows on `event.type`, casts `data` to the payload type it knows, and ignores the types it
 * does not know.
 *
 * What must hold: folding a run's log gives exactly the live model's state at the end of the run
 * (tests check this on randomised workloads). `apply` must be deterministic, must not throw for
 * events it does not care about, and must never modify the event or its payload (the log keeps
 * them by reference). It may update `state` in place and return it, or return a new state.
 *
 * ## Example
 *
 * ```ts
 * const spawned: Projection<Map<number, string>> = {
 *   name: 'tasks',
 *   init: () => new Map(),
 *   apply(state, event) {
 *     if (event.type === 'sched.spawn') {
 *       const data = event.data as SimEventMap['sched.spawn'];
 *       state.set(data.id, data.name);
 *     }
 *     return state;
 *   },
 * };
 * const tasks = fold(spawned, readNdjson(text).events);
 * ```
 *
 * @typeParam S the type of the view.
 */
export interface Projection<S> {
  /** A short name for the view, for diagnostics and viewers (for example `'frames'`). */
  readonly name: string;

  /**
   * Builds the state before any event: the view of an empty run.
   *
   * @returns a fresh state; each call must return a new value that shares nothing mutable with
   *   earlier ones, because `apply` may update it in place.
   */
  init(): S;

  /**
   * Folds one event into the state.
   *
   * @param state the state after every earlier event.
   * @param event the next event; must not be modified.
   * @returns the state after `event`: `state` itself, updated in place, or a new value.
   */
  apply(state: S, event: LoggedEvent): S;
}

/**
 * Folds events into a projection's view, starting from `init()`: the view after all of them.
 *
 * Use it on a finished run's `log.events`, or on the events `readNdjson` read back from a
 * saved log, to get the view at any point (fold a prefix to travel back in time).
 *
 * @param projection the view to build.
 * @param events the events to fold, in log order.
 * @returns the state after the last event (`init()` if there is none).
 */
export function fold<S>(projection: Projection<S>, events: Iterable<LoggedEvent>): S {
  let state = projection.init();
  for (const event of events) state = projection.apply(state, event);
  return state;
}

/** What {@link LiveProjection} may be told when it is built. */
export interface LiveProjectionOptions {
  /**
   * The event types the projection needs. When given, the projection subscribes to
   * `bus.on(type)` for each type only, so the bus keeps skipping the construction of other
   * events; when omitted, it subscribes to `bus.events$`, which makes the bus build every event.
   */
  readonly types?: readonly string[];
}

/**
 * Keeps a projection's state up to date while a simulation runs, from the events of an
 * {@link EventBus}.
 *
 * Events are delivered synchronously inside the emitting step, so `state` is current as soon as
 * `emit` returns. The projection starts from `init()` when it is built and sees only the events
 * emitted after that; build it before the run starts, or fold the events logged so far with
 * {@link fold} instead.
 *
 * If `apply` throws, the live projection stops following the bus and `state` rethrows that
 * error, so the failure surfaces in the caller instead of being reported later by RxJS.
 *
 * ## Example
 *
 * ```ts
 * const frames = new LiveProjection(frameProjection, bus, {
 *   types: ['mm.frame.alloc', 'mm.frame.free'],
 * });
 * // ... run the simulation ...
 * expect(frames.state).toEqual(fold(frameProjection, log.events));
 * frames.dispose();
 * ```
 *
 * @typeParam S the type of the view.
 */
export class LiveProjection<S> {
  /** The projection this object keeps up to date. */
  readonly projection: Projection<S>;
  private current: S;
  private failure: { readonly error: unknown } | undefined;
  private readonly subscriptions: Subscription[] = [];
  private isDisposed = false;

  /**
   * Starts following the bus at once.
   *
   * @param projection the view to keep up to date; its `init()` gives the starting state.
   * @param bus the bus to follow.
   * @param options `types` restricts the subscription to the listed event types (recommended:
   *   it lets the bus skip building events nobody needs). Duplicates are ignored.
   */
  constructor(projection: Projection<S>, bus: EventBus, options?: LiveProjectionOptions) {
    this.projection = projection;
    this.current = projection.init();
    const types = options?.types;
    const sources: Observable<LoggedEvent>[] =
      types === undefined
        ? [bus.events$]
        : [...new Set(types)].map(
            (type) => bus.on(type as SimEventType) as unknown as Observable<LoggedEvent>,
          );
    for (const source of sources) {
      this.subscriptions.push(source.subscribe((event) => this.onEvent(event)));
    }
  }

  /**
   * The state after every event seen so far.
   *
   * @throws the error `apply` threw, if it ever did.
   */
  get state(): S {
    if (this.failure !== undefined) throw this.failure.error;
    return this.current;
  }

  /** True once {@link LiveProjection.dispose} was called or `apply` threw. */
  get disposed(): boolean {
    return this.isDisposed;
  }

  /**
   * Stops following the bus. The state stays as it was; later events are not applied. Safe to
   * call more than once.
   */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    for (const subscription of this.subscriptions) subscription.unsubscribe();
    this.subscriptions.length = 0;
  }

  /** Applies one event from the bus, or records the failure and stops on a throw. */
  private onEvent(event: LoggedEvent): void {
    if (this.isDisposed) return;
    try {
      this.current = this.projection.apply(this.current, event);
    } catch (error) {
      this.failure = { error };
      this.dispose();
    }
  }
}
