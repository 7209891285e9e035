/**
 * `pnpm gart`: the GART alias-caching hazard of the `->release` comment in
 * `include/linux/mmu_notifier.h`, found, minimised and printed. Options: `--seed N` (default 1),
 * `--schedules N` for the correct composition (default 500).
 */
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { runGartExample } from './example.js';

function fail(message: string): never {
  process.stderr.write(`gart: ${message}\n`);
  process.exit(2);
}
let values: { seed?: string; schedules?: string } = {};
try {
  ({ values } = parseArgs({
    options: { seed: { type: 'string' }, schedules: { type: 'string' } },
  }));
} catch (e) {
  fail(`${(e as Error).message}; allowed: --seed N, --schedules N`);
}
const num = (name: string, v: string | undefined, dflt: number, min: number): number => {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min)
    fail(`--${name} must be an integer >= ${min} (got ${v})`);
  return n;
};
const seed = num('seed', values.seed, 1, 0);
const schedules = num('schedules', values.schedules, 500, 1);
const r = runGartExample((l) => process.stdout.write(l + '\n'), { seed, schedules });
if (r.correct.violations > 0 || r.corruption === null) process.exitCode = 1;
