/**
 * The observable the event bus hands out: an RxJS `Observable` whose subscribers (and those of
 * every observable piped from it) are called inside a `try`, so that an exception thrown by an
 * oracle's or a model's event handler is reported as a violation of the run instead of being
 * re-thrown by RxJS on a later timer tick (which kills the process after the run said "done").
 * Its own file because it is the one place that knows how RxJS delivers errors.
 */
import { Observable } from 'rxjs';
import type { Observer, Operator, Subscribable, Subscription } from 'rxjs';

/** Called with what a subscriber threw; must not throw itself. */
export type SubscriberErrorHandler = (error: unknown) => void;

/**
 * An observable that guards its subscribers' callbacks (see the file comment). Operators piped
 * from it give guarded observables too (through `lift`), and a subscriber without an `error`
 * callback gets one that reports, so an exception inside an operator (a throwing `map`) is
 * reported as well.
 * @internal
 */
export class GuardedObservable<T> extends Observable<T> {
  /**
   * @param onError where exceptions go.
   * @param inner the observable to follow (none for a lifted one).
   */
  constructor(
    private readonly onError: SubscriberErrorHandler,
    inner?: Subscribable<T>,
  ) {
    super(inner === undefined ? undefined : (sub) => inner.subscribe(sub));
  }

  /** @internal RxJS hook: observables piped from this one are guarded too. */
  override lift<R>(operator?: Operator<T, R>): Observable<R> {
    const o = new GuardedObservable<R>(this.onError);
    o.source = this;
    o.operator = operator;
    return o;
  }

  /** Subscribes with every callback guarded. */
  override subscribe(observerOrNext?: Partial<Observer<T>> | ((value: T) => void)): Subscription;
  /** Subscribes with every callback guarded (the deprecated three-callback form). */
  override subscribe(
    next?: ((value: T) => void) | null,
    error?: ((error: unknown) => void) | null,
    complete?: (() => void) | null,
  ): Subscription;
  override subscribe(
    observerOrNext?: Partial<Observer<T>> | ((value: T) => void) | null,
    error?: ((error: unknown) => void) | null,
    complete?: (() => void) | null,
  ): Subscription {
    const onError = this.onError;
    const guard =
      <A>(fn: (a: A) => void) =>
      (a: A): void => {
        try {
          fn(a);
        } catch (e) {
          onError(e);
        }
      };
    if (typeof observerOrNext === 'function' || observerOrNext == null) {
      const next = observerOrNext ?? undefined;
      return super.subscribe({
        ...(next !== undefined ? { next: guard(next) } : {}),
        error: error != null ? guard(error) : onError,
        ...(complete != null ? { complete: () => guard(complete)(undefined) } : {}),
      });
    }
    const o = observerOrNext;
    return super.subscribe({
      ...(o.next !== undefined ? { next: guard(o.next.bind(o)) } : {}),
      error: o.error !== undefined ? guard(o.error.bind(o)) : onError,
      ...(o.complete !== undefined
        ? { complete: () => guard(o.complete!.bind(o))(undefined) }
        : {}),
    });
  }
}
