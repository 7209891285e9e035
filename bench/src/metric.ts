import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** One benchmark figure, printed as one JSON line. */
export interface Metric {
  name: string;
  value: number;
  unit: string;
}

/**
 * Runs `fn` (which does `ops` operations) `rounds` times after one warm-up round and returns
 * the best rate in operations per second. Best-of-N rejects rounds slowed by GC or the other
 * core's load.
 */
export function bestRate(ops: number, fn: () => void, rounds = 5): number {
  fn();
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    fn();
    const secs = (performance.now() - t0) / 1000;
    best = Math.max(best, ops / secs);
  }
  return Math.round(best);
}

/** A full garbage collection: `global.gc` under `node --expose-gc`, else enabled at run time. */
export function collector(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) return g;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
