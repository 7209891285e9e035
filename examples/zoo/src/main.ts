/**
 * `pnpm zoo`: one JSON line per variant and per correct counterpart:
 * `{"variant","rule","found","strategy","iterations","minimizedPreemptions"}`.
 * Options: `--iterations N`, `--seeds 1,2,3`, `--only id,id`.
 */
import 'reflect-metadata';
import { parseZooArgs, UsageError } from './args.js';
import type { ZooArgs } from './args.js';
import { runZoo } from './run-zoo.js';
import { ZOO } from './variants.js';

function fail(message: string): never {
  process.stderr.write(`zoo: ${message}\n`);
  process.exit(2);
}
let args: ZooArgs = {};
try {
  args = parseZooArgs(
    process.argv.slice(2),
    ZOO.map((v) => v.id),
  );
} catch (e) {
  fail(e instanceof UsageError ? e.message : String(e));
}
const { iterations, seeds, only } = args;
const t0 = performance.now();
const lines = runZoo({
  ...(iterations !== undefined ? { iterations } : {}),
  ...(seeds !== undefined ? { seeds } : {}),
  ...(only !== undefined ? { only } : {}),
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
