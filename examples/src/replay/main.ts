/**
 * `pnpm replay <file> [--stop-at STEP] [--tail N] [--all]`: re-executes a replay file in this
 * process and prints the run as a readable interleaving (task, step, event).
 *
 * The file's scenario is rebuilt from its id, its plugins and options are checked against the
 * file, the recorded choices are replayed one by one (a choice that no longer fits is reported
 * where it happens) and the final log hash is compared with the recorded one. Exit status: 0 if
 * the replay reproduced the file, 1 if it diverged, 2 if the file cannot be used.
 */
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import {
  formatInterleaving,
  interleaving,
  parseReplayFile,
  ReplayDivergenceError,
  ReplayFileError,
  replayFile,
} from '@mmnsim/core';
import { UsageError } from '@mmnsim/zoo';
import { findScenario, QUIET_EVENTS } from '../scenarios.js';
import { parseReplayArgs } from './args.js';
import type { ReplayArgs } from './args.js';

// `pnpm replay f | head` closes the pipe early: that is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

function fail(code: number, message: string): never {
  process.stderr.write(`replay: ${message}\n`);
  process.exit(code);
}

let args: ReplayArgs;
try {
  args = parseReplayArgs(process.argv.slice(2));
} catch (e) {
  fail(2, e instanceof UsageError ? e.message : String(e));
}
const { path, stopAt, tail, all } = args;

let text: string;
try {
  text = readFileSync(path, 'utf8');
} catch (e) {
  fail(2, `cannot read ${path}: ${(e as Error).message}`);
}

try {
  const file = parseReplayFile(text);
  const { sim, result } = replayFile(
    file,
    findScenario,
    stopAt !== undefined ? { stopAtStep: stopAt } : {},
  );
  const out = (line = ''): void => void process.stdout.write(line + '\n');
  out(
    `replay ${file.scenario}  seed ${file.seed}  ${file.schedule.length} choices  strategy ${JSON.stringify(file.strategy)}`,
  );
  out(`  plugins     ${file.plugins.map((p) => p.id).join(', ')}`);
  if (result.reason === 'stopped') {
    out(
      `  stopped     at step ${result.steps} (--stop-at ${stopAt}); the final hash is not checked`,
    );
  } else {
    out(`  result      ${result.reason} after ${result.steps} steps, ${result.events} events`);
    out(`  final hash  ${sim.finalHash()}  (matches the file)`);
  }
  const v = result.violations[0];
  if (v !== undefined) out(`  violation   ${v.kind}: ${v.message}`);
  out();
  const rows = interleaving(sim.log!.events, {
    ...(all ? {} : { omit: QUIET_EVENTS }),
    ...(tail !== undefined ? { tail } : {}),
  });
  out(formatInterleaving(rows, all ? {} : { maxRun: 12 }));
  if (!all) {
    out();
    out(
      '(lock, SRCU and page-table bookkeeping left out, long runs of one task shortened: --all shows every event)',
    );
  }
} catch (e) {
  if (e instanceof ReplayFileError) fail(2, e.message);
  if (e instanceof ReplayDivergenceError) fail(1, e.message);
  throw e;
}
