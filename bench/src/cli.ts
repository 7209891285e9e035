/**
 * Benchmarks of the `mmnsim` command's input side: loading a scenario file (YAML parse, zod
 * validation, reference checks, plugin option checks, compiling and composing the simulation)
 * and importing strace output.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BUILTIN_MODULES,
  checkPluginOptions,
  compileScenario,
  importStrace,
  loadScenarioText,
  pluginFactories,
} from '@mmnsim/cli';
import { Simulation } from '@mmnsim/core';
import { bestRate } from './metric.js';
import type { Metric } from './metric.js';

/** A scenario of 100 tasks on 4 CPUs, each mapping, touching, protecting and unmapping 4 pages. */
function hundredTasks(): string {
  const lines = [
    'cpus: 4',
    'plugins:',
    "  - use: '@mmnsim/mm'",
    '    options: { totalFrames: 4096 }',
    'processes:',
    '  - name: app',
    'tasks:',
  ];
  for (let i = 0; i < 100; i++)
    lines.push(
      `  - name: t${i}`,
      `    cpu: ${i % 4}`,
      '    do:',
      `      - mmap: { len: 4p, prot: [read, write], flags: [private, anonymous], as: b${i} }`,
      `      - touch: { addr: b${i}, len: 4p, value: ${i} }`,
      `      - mprotect: { addr: b${i} + 1p, len: 2p, prot: [read] }`,
      `      - munmap: { addr: b${i}, len: 4p }`,
    );
  return lines.join('\n') + '\n';
}

/** cli.scenario_load_ms and cli.strace_import_lines_per_s. */
export function benchCli(): Metric[] {
  const text = hundredTasks();
  const load = (): void => {
    const { file, doc } = loadScenarioText(text, 'bench.yaml');
    const found = file.plugins.map((p) => pluginFactories(p.use, BUILTIN_MODULES[p.use]!)[0]!);
    checkPluginOptions(file, found, doc);
    const sc = compileScenario(file, found, 'bench');
    const sim = Simulation.create({ ...sc.options(), seed: 1 });
    sc.setup(sim);
  };
  const loadsPerSec = bestRate(1, load, 10);
  const trace = readFileSync(
    join(import.meta.dirname, '../../packages/cli/test/fixtures/strace/python-threads-T.txt'),
    'utf8',
  );
  const big = Array.from({ length: 20 }, () => trace).join('');
  const lines = big.split('\n').length;
  const linesPerSec = bestRate(lines, () => void importStrace(big), 3);
  return [
    {
      name: 'cli.scenario_load_ms',
      value: Math.round((1000 / loadsPerSec) * 100) / 100,
      unit: 'ms',
    },
    { name: 'cli.strace_import_lines_per_s', value: linesPerSec, unit: 'lines/s' },
  ];
}
