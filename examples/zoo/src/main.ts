/**
 * `pnpm zoo`: one JSON line per variant and per correct counterpart:
 * `{"variant","rule","found","strategy","iterations","minimizedPreemptions"}`.
 * Options: `--iterations N`, `--seeds 1,2,3`, `--only id,id`.
 */
import 'reflect-metadata';
import { runZoo } from './run-zoo.js';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const iterations = arg('--iterations');
const seeds = arg('--seeds');
const only = arg('--only');
const t0 = performance.now();
const lines = runZoo({
  ...(iterations !== undefined ? { iterations: Number(iterations) } : {}),
  ...(seeds !== undefined ? { seeds: seeds.split(',').map(Number) } : {}),
  ...(only !== undefined ? { only: only.split(',') } : {}),
  onLine: (l) => {
    const { kinds: _k, ...shown } = l;
    process.stdout.write(JSON.stringify(shown) + '\n');
  },
});
const bad = lines.filter((l) => (l.variant.endsWith('/correct') ? l.found : !l.found));
process.stderr.write(
  `zoo: ${lines.length / 2} variants, ${bad.length === 0 ? 'all found, every counterpart clean' : `${bad.length} unexpected: ${bad.map((l) => l.variant).join(', ')}`} (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`,
);
if (bad.length > 0) process.exitCode = 1;
