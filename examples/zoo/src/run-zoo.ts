/** The zoo campaign: every variant and its correct counterpart over seeds 1–5. */
import { huntVariant } from './hunt.js';
import { ZOO } from './variants.js';
import type { ZooVariant } from './variants.js';

/** One line of `pnpm zoo` output. */
export interface ZooLine {
  /** The variant id (`<id>/correct` for the counterpart). */
  readonly variant: string;
  /** The rule the broken form breaks. */
  readonly rule: string;
  /** Found on every seed (broken form), or found on any seed (counterpart: must be false). */
  readonly found: boolean;
  /** The campaign strategy. */
  readonly strategy: string;
  /** For the broken form, the most iterations a seed needed; for the counterpart, the iterations run per seed. */
  readonly iterations: number;
  /** Preemptions of the minimised schedule of seed 1 (broken form), or null. */
  readonly minimizedPreemptions: number | null;
  /** The violation kinds found, per seed (broken form). */
  readonly kinds?: readonly string[];
}

/** Options of {@link runZoo}. */
export interface ZooOptions {
  /** Seeds to hunt with (default 1–5). */
  readonly seeds?: readonly number[];
  /** Schedule budget per seed (default 2,000). */
  readonly iterations?: number;
  /** Only these variants (default all). */
  readonly only?: readonly string[];
  /** Called with each line as soon as it is known. */
  readonly onLine?: (line: ZooLine) => void;
}

/** Hunts every (selected) variant and runs its counterpart on the same budget. */
export function runZoo(options: ZooOptions = {}): ZooLine[] {
  const seeds = options.seeds ?? [1, 2, 3, 4, 5];
  const iterations = options.iterations ?? 2000;
  const strategy = { kind: 'pct', depth: 3 } as const;
  const lines: ZooLine[] = [];
  const emit = (l: ZooLine): void => {
    lines.push(l);
    options.onLine?.(l);
  };
  const variants: readonly ZooVariant[] =
    options.only === undefined ? ZOO : ZOO.filter((v) => options.only!.includes(v.id));
  for (const v of variants) {
    let foundAll = true;
    let most = 0;
    let minimized: number | null = null;
    const kinds: string[] = [];
    for (const seed of seeds) {
      const h = huntVariant(v, {
        broken: true,
        seed,
        iterations,
        strategy,
        minimise: seed === seeds[0],
      });
      foundAll &&= h.found;
      most = Math.max(most, h.iterations);
      kinds.push(h.kind ?? 'none');
      if (h.minimised !== undefined) minimized = h.minimised.after.preemptions;
    }
    emit({
      variant: v.id,
      rule: v.rule,
      found: foundAll,
      strategy: 'pct(d=3)',
      iterations: most,
      minimizedPreemptions: minimized,
      kinds,
    });
    let foundAny = false;
    for (const seed of seeds)
      foundAny ||= huntVariant(v, { broken: false, seed, iterations, strategy }).found;
    emit({
      variant: `${v.id}/correct`,
      rule: v.rule,
      found: foundAny,
      strategy: 'pct(d=3)',
      iterations,
      minimizedPreemptions: null,
    });
  }
  return lines;
}
