import { Subject } from 'rxjs';
import type { Observable } from 'rxjs';
import { StepBudgetError } from './errors.js';
import type { AnySimEvent, SimEvent, SimEventMap, SimEventType } from './events.js';
import { GuardedObservable } from './guarded.js';
import type { RunState } from './run-state.js';

/**
 * Told about an exception thrown by a bus subscriber: the error, the event type subscribed to
 * (`'*'` for {@link EventBus.events$}) and the owner given to {@link EventBus.on} (an oracle id).
 */
export type BusErrorHandler = (error: unknown, type: string, owner: string | undefined) => void;

/**
 * A consumer that keeps events without subscribing to the bus: the event log and exporters.
 * A sink is asked once per emission whether it keeps that type, so an event that no sink keeps
 * and no observer wants is never built.
 *
 * Bound as a multi-bound contribution under {@link EventSink}; the bus collects them.
 */
export interface EventSink {
  /** True if this sink records events of `type`. Must be cheap and must not change mid-run. */
  keeps(type: string): boolean;
  /** Records one event. Runs synchronously inside the emitting step; must not throw. */
  record(event: AnySimEvent): void;
}

/**
 * The simulation's event bus (ARCHITECTURE §5).
 *
 * Every state change of the model is emitted here once. Delivery is synchronous, inside the
 * step that emits, in this order: sinks (the log), then `events$` observers, then `on(type)`
 * observers, each in subscription order. Observers must not block; to act later they spawn a
 * task.
 *
 * Hot paths ask {@link EventBus.wants} before building a payload:
 *
 * ```ts
 * if (bus.wants('mm.pte.set')) bus.emit('mm.pte.set', { mm: mm.id, va, pte });
 * ```
 */
export class EventBus {
  private readonly all = new Subject<AnySimEvent>();
  private readonly byType = new Map<string, Subject<AnySimEvent>>();
  private readonly sinks: EventSink[] = [];
  private nextSeq = 0;

  /**
   * Where exceptions thrown by subscribers go; the simulation reports them as `oracle-error` or
   * `subscriber-error` violations. Without a handler they are rethrown (RxJS then reports them
   * asynchronously, as it does for any observable).
   */
  onSubscriberError: BusErrorHandler | null = null;

  /** Every emitted event, in emission order. */
  readonly events$: Observable<AnySimEvent> = this.guarded(this.all, '*', undefined);

  /**
   * Built by the simulation.
   * @param state the run state events are stamped from (step, time, running task).
   * @internal
   */
  constructor(private readonly state: RunState) {}

  /** Adds a sink; it sees every later event whose type it keeps. */
  addSink(sink: EventSink): void {
    if (this.sinks.length >= 30)
      throw new Error('EventBus: at most 30 sinks (sinks: 30 already added)');
    this.sinks.push(sink);
  }

  /** The events of one type, typed by {@link SimEventMap}. */
  on<K extends SimEventType>(type: K, owner?: string): Observable<SimEvent<K>> {
    let subject = this.byType.get(type);
    if (subject === undefined) {
      subject = new Subject<AnySimEvent>();
      this.byType.set(type, subject);
    }
    return this.guarded(subject, type, owner) as unknown as Observable<SimEvent<K>>;
  }

  /**
   * @internal A view of this bus for one owner (an oracle): the same events and emission, but
   * exceptions of the subscriptions made through it are attributed to `owner`.
   */
  forOwner(owner: string): EventBus {
    const view = Object.create(this) as EventBus;
    const define = (key: string, value: unknown): void =>
      void Object.defineProperty(view, key, { value, enumerable: false });
    define('on', (type: SimEventType) => this.on(type, owner));
    define('events$', this.guarded(this.all, '*', owner));
    define('emit', this.emit.bind(this));
    define('wants', this.wants.bind(this));
    define('addSink', this.addSink.bind(this));
    define('complete', this.complete.bind(this));
    return view;
  }

  /** An observable of `subject` whose subscribers' exceptions go to {@link EventBus.onSubscriberError}. */
  private guarded(
    subject: Subject<AnySimEvent>,
    type: string,
    owner: string | undefined,
  ): Observable<AnySimEvent> {
    return new GuardedObservable<AnySimEvent>((e) => {
      const handler = this.onSubscriberError;
      if (handler === null) throw e;
      handler(e, type, owner);
    }, subject);
  }

  /**
   * True if an event of `type` emitted now would reach anyone: a sink that keeps it, an
   * `events$` observer or an `on(type)` observer. Costs a few property reads.
   */
  wants(type: string): boolean {
    if (this.all.observed) return true;
    const typed = this.byType.get(type);
    if (typed !== undefined && typed.observed) return true;
    const sinks = this.sinks;
    for (let i = 0; i < sinks.length; i++) if (sinks[i]!.keeps(type)) return true;
    return false;
  }

  /**
   * Emits one event stamped with the current step, time, context and task. Returns the built
   * event (its `seq` is what violations cite as evidence), or `undefined` when nobody wanted it.
   */
  emit<K extends SimEventType>(type: K, data: SimEventMap[K]): SimEvent<K> | undefined {
    const typed = this.byType.get(type);
    const typedObserved = typed !== undefined && typed.observed;
    const allObserved = this.all.observed;
    const sinks = this.sinks;
    let sinkMask = 0;
    for (let i = 0; i < sinks.length; i++) if (sinks[i]!.keeps(type)) sinkMask |= 1 << i;
    if (!allObserved && !typedObserved && sinkMask === 0) return undefined;
    const s = this.state;
    if (++s.work > s.workLimit && s.task >= 0) {
      s.work = 0;
      throw new StepBudgetError(s.workLimit, s.taskName, s.task, this.nextSeq - 1);
    }
    const event: SimEvent<K> = {
      seq: this.nextSeq++,
      step: s.step,
      time: s.time,
      ctx: s.ctx,
      task: s.task,
      type,
      data,
    };
    const any = event as unknown as AnySimEvent;
    if (sinkMask !== 0) {
      for (let i = 0; i < sinks.length; i++) if ((sinkMask & (1 << i)) !== 0) sinks[i]!.record(any);
    }
    if (allObserved) this.all.next(any);
    if (typedObserved) typed.next(any);
    return event;
  }

  /** Number of events built so far (the next event's `seq`). */
  get emitted(): number {
    return this.nextSeq;
  }

  /** Completes every stream; called when the simulation is disposed. */
  complete(): void {
    this.all.complete();
    for (const s of this.byType.values()) s.complete();
  }
}
