import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { PctStrategy } from './pct.js';
import { RandomStrategy } from './random.js';
import { ReplayStrategy } from './replay.js';
import { RoundRobinStrategy } from './round-robin.js';
import type { Strategy } from './strategy.js';

/**
 * A built-in strategy described as data: `'round-robin'`, `'random'`, `'pct'` (depth 3), or an
 * object such as `{ kind: 'pct', depth: 2, steps: 400 }` or `{ kind: 'replay', schedule }`.
 */
export type StrategySpec =
  | 'round-robin'
  | 'random'
  | 'pct'
  | {
      /** Round-robin. */
      readonly kind: 'round-robin';
    }
  | {
      /** Seeded random walk. */
      readonly kind: 'random';
    }
  | {
      /** PCT. */
      readonly kind: 'pct';
      /** Bug depth d (1..64, default 3). */
      readonly depth?: number | undefined;
      /** Expected steps of one run, k (default: the step budget). */
      readonly steps?: number | undefined;
    }
  | {
      /** Replay of a recorded schedule. */
      readonly kind: 'replay';
      /** Task id chosen at each choice point. */
      readonly schedule: readonly number[];
    };

/** Schema of a {@link StrategySpec} (in options, scenario and replay files). */
export const StrategySpecSchema: z.ZodType<StrategySpec> = z.union([
  z.enum(['round-robin', 'random', 'pct']),
  z.strictObject({ kind: z.literal('round-robin') }),
  z.strictObject({ kind: z.literal('random') }),
  z.strictObject({
    kind: z.literal('pct'),
    depth: z.number().int().min(1).max(64).optional(),
    steps: z.number().int().min(1).optional(),
  }),
  z.strictObject({ kind: z.literal('replay'), schedule: z.array(z.number().int().min(0)) }),
]);

/** True if `s` is a strategy object rather than a spec. */
export function isStrategy(s: unknown): s is Strategy {
  return (
    typeof s === 'object' && s !== null && typeof (s as { pick?: unknown }).pick === 'function'
  );
}

/**
 * Builds a fresh strategy from a spec (every run needs its own instance: strategies keep
 * per-run state).
 * @throws ConfigError naming the field and the allowed values for a malformed spec.
 */
export function createStrategy(spec: StrategySpec): Strategy {
  const parsed = StrategySpecSchema.safeParse(spec);
  if (!parsed.success) {
    throw new ConfigError(
      `strategy: ${JSON.stringify(spec)} is not a strategy; allowed are 'round-robin', 'random', 'pct', { kind: 'pct', depth?: 1..64, steps?: >= 1 }, { kind: 'replay', schedule: number[] } or an object implementing Strategy`,
    );
  }
  const s = parsed.data;
  const kind = typeof s === 'string' ? s : s.kind;
  switch (kind) {
    case 'round-robin':
      return new RoundRobinStrategy();
    case 'random':
      return new RandomStrategy();
    case 'pct': {
      const o: { depth?: number | undefined; steps?: number | undefined } =
        typeof s === 'object' && s.kind === 'pct' ? s : {};
      return new PctStrategy({
        ...(o.depth !== undefined ? { depth: o.depth } : {}),
        ...(o.steps !== undefined ? { steps: o.steps } : {}),
      });
    }
    case 'replay':
      return new ReplayStrategy(
        typeof s === 'object' && s.kind === 'replay' ? [...s.schedule] : [],
      );
  }
}
