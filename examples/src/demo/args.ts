/**
 * `pnpm demo`'s flags, parsed strictly (see `@mmnsim/zoo`'s `wholeNumber`): its own file so the
 * fuzz suite can call the parser without running the demo.
 */
import { parseFlags, stringFlag, UsageError, wholeNumber } from '@mmnsim/zoo';

/** What `pnpm demo` was asked for. */
export interface DemoArgs {
  /** `--schedules N` (default 500, at most 10^7). */
  readonly schedules: number;
  /** `--seed N` (default 1). */
  readonly seed: number;
  /** `--variant ID` (default kvm-seq-after-gup). */
  readonly variant: string;
}

/** Iterations of the demo's zoo hunt (part 2), which also starts at the seed. */
export const HUNT_ITERATIONS = 2000;

/**
 * Parses the demo's flags. The seed leaves room for every schedule and the hunt: seed +
 * max(schedules, hunt) − 1 stays a safe integer.
 * @throws UsageError naming the flag.
 */
export function parseDemoArgs(args: readonly string[], variants: readonly string[]): DemoArgs {
  const flags = parseFlags(args, {
    schedules: { type: 'string' },
    seed: { type: 'string' },
    variant: { type: 'string' },
  });
  const values = {
    schedules: stringFlag(flags, 'schedules'),
    seed: stringFlag(flags, 'seed'),
    variant: stringFlag(flags, 'variant'),
  };
  const schedules =
    values.schedules === undefined ? 500 : wholeNumber('--schedules', values.schedules, 1, 1e7);
  const room = Number.MAX_SAFE_INTEGER - (Math.max(schedules, HUNT_ITERATIONS) - 1);
  const seed = values.seed === undefined ? 1 : wholeNumber('--seed', values.seed, 0, room);
  const variant = values.variant ?? 'kvm-seq-after-gup';
  if (!variants.includes(variant))
    throw new UsageError(
      `--variant must be one of the zoo's: ${variants.join(', ')} (got ${JSON.stringify(variant)})`,
    );
  return { schedules, seed, variant };
}
