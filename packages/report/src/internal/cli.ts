/**
 * The `pnpm report` and `pnpm trace` commands, as functions the scripts (and tests) call with
 * their arguments and a scenario registry. Its own file: argument parsing and exit codes are
 * the commands' concern, not the library's.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Scenario } from '@mmnsim/core';
import { runReportHtml, writeFileAtomic } from './html.js';
import { loadRunText, ReportInputError } from './input.js';
import { toChromeTrace } from './trace.js';

/** Where a command writes its messages. */
export interface CommandIo {
  /** Normal output. */
  readonly out: (line: string) => void;
  /** Errors. */
  readonly err: (line: string) => void;
}

/**
 * Runs `report <replay-file|log> -o out.html` or `trace <replay-file|log> -o trace.json`: reads
 * the input strictly (a corrupted or truncated file is refused with its line number), builds
 * the report or trace in memory and only then writes it atomically, so a bad input leaves no
 * output file behind.
 *
 * @param command `'report'` or `'trace'`.
 * @param argv the arguments after the command name.
 * @param scenarios the scenario registry used to re-execute replay files.
 * @param io where messages go.
 * @returns the exit status: 0 written, 1 the input was refused, 2 bad arguments.
 */
export function runCommand(
  command: 'report' | 'trace',
  argv: readonly string[],
  scenarios: (id: string) => Scenario | undefined,
  io: CommandIo,
): number {
  const usage = `usage: pnpm ${command} <replay-file|log.ndjson> -o <${command === 'report' ? 'report.html' : 'trace.json'}> [--title TEXT]`;
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { out: { type: 'string', short: 'o' }, title: { type: 'string' } },
    });
  } catch (e) {
    io.err(`${command}: ${(e as Error).message} (${usage})`);
    return 2;
  }
  const input = parsed.positionals[0];
  const out = parsed.values.out;
  if (input === undefined || parsed.positionals.length > 1 || out === undefined) {
    io.err(`${command}: ${usage}`);
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(input, 'utf8');
  } catch (e) {
    io.err(`${command}: cannot read ${input}: ${(e as Error).message}`);
    return 2;
  }
  try {
    const run = loadRunText(text, scenarios, input);
    const body =
      command === 'report'
        ? runReportHtml(run, {
            ...(parsed.values.title !== undefined ? { title: parsed.values.title } : {}),
            ...(run.replay !== undefined ? { replayCommand: `pnpm replay ${input}` } : {}),
          })
        : JSON.stringify(toChromeTrace(run.events, { header: run.header }));
    writeFileAtomic(out, body);
    io.out(
      `${command}: wrote ${out} (${run.events.length} events, ${run.violations.length} violation${run.violations.length === 1 ? '' : 's'}, ${Math.round(body.length / 1024)} KiB)`,
    );
    return 0;
  } catch (e) {
    if (e instanceof ReportInputError) {
      io.err(`${command}: refused: ${e.message}; nothing written`);
      return 1;
    }
    throw e;
  }
}
