/** Running a zoo variant: find it, minimise it, and run its correct counterpart. */
import { explore, minimise } from '@mmnsim/core';
import type { CampaignStrategy, ExploreFailure, MinimisedSchedule } from '@mmnsim/core';
import type { ZooVariant } from './variants.js';

/** What hunting one variant with one seed gave. */
export interface HuntResult {
  /** True if a failure with one of the variant's expected kinds was found. */
  readonly found: boolean;
  /** Iterations run (to the first such failure, or the whole budget). */
  readonly iterations: number;
  /** The failure, if found. */
  readonly failure?: ExploreFailure;
  /** The violation kind found. */
  readonly kind?: string;
  /** The minimised schedule, if found and minimisation was asked for. */
  readonly minimised?: MinimisedSchedule;
}

/**
 * Explores the broken (or correct) form of `variant` with `strategy` for up to `iterations`
 * schedules from `seed`; a failure counts only if its first violation names the variant's rule.
 */
export function huntVariant(
  variant: ZooVariant,
  options: {
    readonly broken: boolean;
    readonly seed: number;
    readonly iterations: number;
    readonly strategy?: CampaignStrategy;
    readonly minimise?: boolean;
  },
): HuntResult {
  const scenario = variant.scenario(options.broken);
  const report = explore(scenario, {
    strategy: options.strategy ?? { kind: 'pct', depth: 3 },
    iterations: options.iterations,
    seed: options.seed,
  });
  const failure = report.failures[0];
  if (failure === undefined) return { found: false, iterations: report.iterations };
  const kind = failure.violations[0]!.kind;
  // For a counterpart any violation counts as found (it must have none).
  const found = !options.broken || variant.expected.includes(kind);
  const minimised = found && options.minimise === true ? minimise(scenario, failure) : undefined;
  return {
    found,
    iterations: report.iterations,
    failure,
    kind,
    ...(minimised !== undefined ? { minimised } : {}),
  };
}
