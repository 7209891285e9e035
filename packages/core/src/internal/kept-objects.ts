import { Script, createContext } from 'node:vm';

/*
 * Why this exists. inversify's planner keeps a `WeakRef` to every plan node it builds for a
 * class, resolved-value or dynamic-value binding. ECMAScript keeps the target of a `WeakRef`
 * created (or dereferenced) during the current job alive until that job ends, and a job only
 * ends when control returns to the event loop. A campaign that creates thousands of
 * simulations in one synchronous call therefore kept every one of them (the plan node holds
 * the binding, the binding caches the singleton, the singleton reaches the whole simulation):
 * about 54 KiB per simulation with the mm plugin, enough to exhaust the heap in a long
 * exploration. V8 empties the kept set at every microtask checkpoint; evaluating an empty
 * script in a context with its own microtask queue (`microtaskMode: 'afterEvaluate'`) runs such
 * a checkpoint synchronously, without running any of the caller's microtasks.
 */
let context: ReturnType<typeof createContext> | undefined;
let script: Script | undefined;

/**
 * Lets the garbage collector reclaim objects that are kept alive only because a `WeakRef` to
 * them was created during the current synchronous job (ECMAScript's "kept during job" set).
 * {@link Simulation.create} calls it before building each simulation, so loops that create many
 * simulations synchronously (campaigns, minimisation, user scripts) hold only the simulations
 * they still reference. Costs about 2 µs.
 *
 * Effect on other code: a `WeakRef` created earlier in the same job may be cleared by the next
 * garbage collection instead of at the end of the job. Code that relies on two `deref()` calls
 * in one job returning the same object should keep a strong reference.
 */
export function releaseKeptObjects(): void {
  context ??= createContext({}, { microtaskMode: 'afterEvaluate' });
  script ??= new Script('0');
  script.runInContext(context);
}
