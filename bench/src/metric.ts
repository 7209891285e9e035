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
