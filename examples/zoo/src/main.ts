/**
 * `pnpm zoo`: one JSON line per variant and per correct counterpart:
 * `{"variant","rule","found","strategy","iterations","minimizedPreemptions"}`.
 * Options: `--iterations N`, `--seeds 1,2,3`, `--only id,id`.
 */
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { runZoo } from './run-zoo.js';
import { ZOO } from './variants.js';

function fail(message: string): never {
  process.stderr.write(`zoo: ${message}\n`);
  process.exit(2);
}
function wholeNumbers(name: string, text: string, min: number, list: boolean): number[] {
  const values = (list ? text.split(',') : [text]).map(Number);
  if (values.some((n) => !Number.isInteger(n) || n < min)) {
    const what = list ? `whole numbers ≥ ${min}, separated by commas` : `a whole number ≥ ${min}`;
    fail(`${name} takes ${what} (got "${text}")`);
  }
  return values;
}
let values: { iterations?: string; seeds?: string; only?: string } = {};
try {
  ({ values } = parseArgs({
    options: {
      iterations: { type: 'string' },
      seeds: { type: 'string' },
      only: { type: 'string' },
    },
  }));
} catch (e) {
  fail((e as Error).message);
}
const { iterations: iterationsArg, seeds: seedsArg, only: onlyArg } = values;
const iterations =
  iterationsArg === undefined
    ? undefined
    : wholeNumbers('--iterations', iterationsArg, 1, false)[0];
const seeds = seedsArg === undefined ? undefined : wholeNumbers('--seeds', seedsArg, 0, true);
const only = onlyArg?.split(',');
const unknown = only?.filter((id) => !ZOO.some((v) => v.id === id)) ?? [];
if (unknown.length > 0)
  fail(
    `--only: no variant ${unknown.join(', ')}; the variants are ${ZOO.map((v) => v.id).join(', ')}`,
  );
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
