/**
 * What the watchdog's parent and its worker share: the job message, the layout of the shared
 * memory the worker writes the running task into, and turning a strategy's JSON back into a
 * strategy. Its own file so the parent can use it without loading the worker entry point.
 */
import type { ExploreOptions } from './explore.js';
import type { JsonValue } from './json.js';
import { DfsStrategy } from './strategy/dfs.js';
import { createStrategy } from './strategy/spec.js';
import type { StrategySpec } from './strategy/spec.js';
import type { Strategy } from './strategy/strategy.js';

/** @internal What the parent sends. */
export interface WorkerJob {
  readonly module: string;
  readonly exportName: string;
  readonly shared: SharedArrayBuffer;
  readonly run?: {
    readonly seed: number;
    readonly strategy: JsonValue;
    readonly logFile?: string;
  };
  readonly explore?: Omit<
    ExploreOptions,
    'onIteration' | 'onProgress' | 'now' | 'onIterationStart'
  >;
}

/** @internal Layout of the shared Int32Array: step, task, last seq, name length, name bytes. */
export const SHARED = { step: 0, task: 1, seq: 2, nameLen: 3, name: 16, nameBytes: 256 } as const;

/** @internal A strategy from its JSON form: a spec or an exhaustive prefix. */
export function strategyFromJson(s: JsonValue): Strategy {
  if (
    typeof s === 'object' &&
    s !== null &&
    !Array.isArray(s) &&
    s.kind === 'exhaustive' &&
    Array.isArray(s.prefix)
  )
    return new DfsStrategy(s.prefix as number[]);
  return createStrategy(s as StrategySpec);
}
