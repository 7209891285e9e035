/**
 * `mmnsim export` (a log or replay file as Chrome trace-event JSON, for the Perfetto UI and
 * chrome://tracing) and `mmnsim report` (the self-contained HTML report of a run, or of a
 * campaign directory written by `explore --out`), and the campaign report that `explore` writes.
 * Its own file: the commands are thin bridges from the CLI's scenario loading to
 * `@mmnsim/report`, and keep main.ts to the simulation commands.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import type { ExploreReport, Scenario } from '@mmnsim/core';
import {
  campaignReportHtml,
  loadRunText,
  minimisedRuns,
  ReportInputError,
  runReportHtml,
  toChromeTrace,
  writeFileAtomic,
} from '@mmnsim/report';
import type { IterationRecord } from '@mmnsim/report';
import { zooScenario } from '@mmnsim/zoo';
import { InputError, UsageError } from './errors.js';
import { loadScenarioFile } from './scenario.js';

/** The campaign files `explore --out` writes beside the replay files. */
export const CAMPAIGN_FILE = 'campaign.json';
/** The campaign report's file name in an `--out` directory. */
export const REPORT_FILE = 'report.html';

/** What the commands need from main.ts. */
export interface VisualIo {
  /** Prints one line on stdout. */
  readonly line: (s?: string) => void;
  /** Ends the command with an exit status (main.ts's `Done`). */
  readonly done: (code: number) => never;
}

/** A resolver of scenario ids: the scenario file given with --scenario, then the zoo. */
async function resolver(path: string | undefined): Promise<(id: string) => Scenario | undefined> {
  const own = path !== undefined ? (await loadScenarioFile(path)).scenario : undefined;
  return (id) => (own !== undefined && own.id === id ? own : zooScenario(id));
}

/** Reads a run (log or replay file) strictly; a refusal is bad input naming the line. */
function loadRun(file: string, scenarios: (id: string) => Scenario | undefined) {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${file}: cannot read: ${(e as Error).message}`);
  }
  try {
    return loadRunText(text, scenarios, file);
  } catch (e) {
    if (e instanceof ReportInputError)
      throw new InputError(file, { line: e.line, col: 1 }, '(file)', e.message);
    throw e;
  }
}

/**
 * Builds the campaign report of an exploration and writes it atomically to `<dir>/report.html`:
 * the summary, the plots (from `iterations` when the campaign recorded them) and every distinct
 * violation minimised and replayed.
 *
 * @param dir the `--out` directory (it exists).
 * @param scenario the campaign's scenario.
 * @param scenarioPath the scenario file, for the replay commands shown.
 * @param report what `explore` returned.
 * @param iterations per-iteration records, or none.
 * @returns the report's path.
 */
export function writeCampaignReport(
  dir: string,
  scenario: Scenario,
  scenarioPath: string,
  report: ExploreReport,
  iterations?: readonly IterationRecord[],
): string {
  const runs = minimisedRuns(scenario, report, {
    replayCommand: () =>
      `mmnsim replay ${join(dir, 'minimised.replay.json')} --scenario ${scenarioPath}`,
  });
  const html = campaignReportHtml({
    report,
    runs,
    ...(iterations !== undefined ? { iterations } : {}),
  });
  const out = join(dir, REPORT_FILE);
  writeFileAtomic(out, html);
  return out;
}

/**
 * Adds `export` and `report` to the program.
 *
 * @param program the `mmnsim` command.
 * @param exampleHelp adds an example to a command's help.
 * @param io where the commands print and how they end.
 */
export function registerVisualCommands(
  program: Command,
  exampleHelp: (cmd: Command, ex: string) => Command,
  io: VisualIo,
): void {
  exampleHelp(
    program
      .command('export <file>')
      .description(
        'write a log or replay file as Chrome trace-event JSON (open it in the Perfetto UI or chrome://tracing)',
      )
      .addOption(
        new Option('--format <name>', 'output format').choices(['chrome']).default('chrome'),
      )
      .requiredOption('-o, --output <file>', 'where to write the trace')
      .option(
        '--scenario <file>',
        'the scenario file a replay file was recorded from (zoo ids need none)',
      ),
    'mmnsim export mmnsim-out/odp/minimised.replay.json --scenario examples/scenarios/odp-no-read-retry.yaml -o trace.json',
  ).action(async (file: string, opts: { output: string; scenario?: string }) => {
    const run = loadRun(file, await resolver(opts.scenario));
    const body = JSON.stringify(toChromeTrace(run.events, { header: run.header }));
    writeFileAtomic(opts.output, body);
    io.line(
      `wrote ${opts.output} (${run.events.length} events, ${run.violations.length} violations)`,
    );
    io.done(0);
  });

  exampleHelp(
    program
      .command('report <file-or-dir>')
      .description(
        'write the self-contained HTML report of a log or replay file, or of a campaign directory written by explore --out',
      )
      .requiredOption('-o, --output <file>', 'where to write the report')
      .option(
        '--scenario <file>',
        'the scenario file a replay file was recorded from (zoo ids need none)',
      )
      .option('--title <text>', 'the report title'),
    'mmnsim report mmnsim-out/odp-no-read-retry -o report.html',
  ).action(async (target: string, opts: { output: string; scenario?: string; title?: string }) => {
    if (existsSync(target) && statSync(target).isDirectory()) {
      const indexPath = join(target, 'index.json');
      const campaignPath = join(target, CAMPAIGN_FILE);
      if (!existsSync(campaignPath))
        throw new UsageError(
          `${target}: not a campaign directory (no ${CAMPAIGN_FILE}; explore --out writes one)`,
        );
      let report: ExploreReport;
      let scenarioFile: string | undefined = opts.scenario;
      try {
        report = JSON.parse(readFileSync(campaignPath, 'utf8')) as ExploreReport;
        if (scenarioFile === undefined && existsSync(indexPath)) {
          const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { scenarioFile?: unknown };
          if (typeof index.scenarioFile === 'string') scenarioFile = index.scenarioFile;
        }
      } catch (e) {
        throw new InputError(campaignPath, { line: 1, col: 1 }, '(file)', (e as Error).message);
      }
      const scenarios = await resolver(scenarioFile);
      const sc = scenarios(report.scenario);
      if (sc === undefined)
        throw new UsageError(
          `the campaign's scenario "${report.scenario}" is not a zoo scenario: give its file with --scenario`,
        );
      const html = campaignReportHtml({
        report,
        runs: minimisedRuns(sc, report),
        ...(opts.title !== undefined ? { title: opts.title } : {}),
      });
      writeFileAtomic(opts.output, html);
      io.line(
        `wrote ${opts.output} (campaign ${report.scenario}, ${report.distinct.length} distinct violations)`,
      );
      io.done(0);
    }
    const run = loadRun(target, await resolver(opts.scenario));
    const html = runReportHtml(run, {
      ...(opts.title !== undefined ? { title: opts.title } : {}),
      ...(run.replay !== undefined
        ? {
            replayCommand: `mmnsim replay ${target}${opts.scenario !== undefined ? ` --scenario ${opts.scenario}` : ''}`,
          }
        : {}),
    });
    writeFileAtomic(opts.output, html);
    io.line(
      `wrote ${opts.output} (${run.events.length} events, ${run.violations.length} violations)`,
    );
    io.done(0);
  });
}
