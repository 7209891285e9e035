/**
 * `pnpm report <replay-file|log> -o report.html` and `pnpm trace <replay-file|log> -o trace.json`:
 * the report package's commands with the examples' scenario registry (the bug zoo, the demo,
 * the lock demo), so replay files of any of them can be re-executed and shown.
 */
import 'reflect-metadata';
import { runCommand } from '@mmnsim/report';
import { findScenario } from '../scenarios.js';

const [command, ...rest] = process.argv.slice(2);
if (command !== 'report' && command !== 'trace') {
  process.stderr.write('usage: node examples/dist/report/main.js report|trace <file> -o <out>\n');
  process.exit(2);
}
process.exitCode = runCommand(command, rest, findScenario, {
  out: (line) => void process.stdout.write(line + '\n'),
  err: (line) => void process.stderr.write(line + '\n'),
});
