/**
 * Builds the self-contained HTML report: the viewer script (bundled with esbuild, uPlot
 * included), its styles and the report data, all inline, no network. Its own file: the one place
 * that touches esbuild and the file system.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { ExploreReport } from '@mmnsim/core';
import { buildSync } from 'esbuild';
import type { LoadedRun } from './input.js';
import { runData, strategyLabel } from './model.js';
import type { CampaignData, IterationRecord, ReportData, RunData } from './model.js';

let bundle: string | undefined;

/** The viewer's script, bundled once per process (about 100 ms). */
function viewerScript(): string {
  if (bundle !== undefined) return bundle;
  // From src/internal/html.ts (tests) the viewer is src/viewer/main.ts; from dist, dist/viewer/main.js.
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const entry = fileURLToPath(new URL(`../viewer/main${ext}`, import.meta.url));
  const out = buildSync({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'iife',
    minify: true,
    target: 'chrome120',
    platform: 'browser',
    legalComments: 'none',
  });
  bundle = out.outputFiles[0]!.text;
  return bundle;
}

/** uPlot's stylesheet. */
function uplotCss(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve('uplot');
  return readFileSync(main.replace(/uPlot\.cjs\.js$/, 'uPlot.min.css'), 'utf8');
}

const STYLE = `
:root{--bg:#fff;--fg:#1d2330;--mut:#667085;--line:#e4e7ec;--red:#d92d20;--acc:#2e6bd9}
*{box-sizing:border-box}body{margin:0;font:13px/1.4 system-ui,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:10px 16px;border-bottom:1px solid var(--line)}h1{font-size:17px;margin:0 0 4px}h2{font-size:14px;margin:12px 0 6px}
.mut{color:var(--mut)}code,.mono{font:12px/1.35 ui-monospace,monospace}
section{padding:8px 16px}.violation{border-left:4px solid var(--red);background:#fef3f2;padding:6px 10px;margin:6px 0}
.violation b{color:var(--red)}a.cite{color:var(--acc);cursor:pointer;margin-right:8px;text-decoration:underline}
#controls{display:flex;flex-wrap:wrap;gap:12px;align-items:center;margin:6px 0}#controls label{white-space:nowrap}
#timeline-wrap{display:flex;border:1px solid var(--line);max-height:46vh;overflow:auto}
#lane-labels{flex:0 0 170px;position:sticky;left:0;background:#fafbfc;z-index:2;border-right:1px solid var(--line)}
.lane,.group{height:22px;padding:2px 6px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.group{font-weight:600;background:#eef2f6}#timeline-scroll{position:relative;flex:1 0 auto}
#timeline{display:block}#violation-marker{position:absolute;top:0;width:3px;background:var(--red);opacity:.85;pointer-events:none}
#violation-marker span{position:absolute;top:0;left:5px;background:var(--red);color:#fff;font-size:11px;padding:0 4px;white-space:nowrap}
#violation-marker.left span{left:auto;right:5px}
#cursor{position:absolute;top:0;width:2px;background:var(--acc);pointer-events:none}
#scrub{display:flex;gap:10px;align-items:center;margin:8px 0}#scrubber{flex:1}
#panes{display:grid;grid-template-columns:minmax(0,1.1fr) minmax(0,1fr);gap:12px}
#state,#events{border:1px solid var(--line);padding:6px 8px;height:48vh;overflow:auto;contain:strict}
table{border-collapse:collapse;margin:2px 0 8px}td,th{padding:1px 8px 1px 0;text-align:left;vertical-align:top}th{color:var(--mut);font-weight:500}
.ev{cursor:pointer;white-space:nowrap}.ev.cur{background:#e8f0fe}.ev.hit{background:#fff6d6}.ev.viol{color:var(--red);font-weight:600}
.plots{display:flex;flex-wrap:wrap;gap:16px}.plot{border:1px solid var(--line);padding:4px}
.distinct{border:1px solid var(--line);padding:6px 10px;margin:6px 0}.distinct pre{white-space:pre-wrap;margin:4px 0}
button{font:inherit;cursor:pointer}
`;

/** Embeds data as JSON inside a `<script type="application/json">`, safe from `</script>`. */
function jsonForScript(data: ReportData): string {
  return JSON.stringify(data)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!,
  );
}

/** The report file for some data: one HTML document, everything inline. */
export function reportHtml(data: ReportData): string {
  return (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width,initial-scale=1">' +
    `<title>${escapeHtml(data.title)}</title>` +
    `<style>${uplotCss()}${STYLE}</style></head><body><div id="app"></div>` +
    `<script type="application/json" id="report-data">${jsonForScript(data)}</script>` +
    `<script>${viewerScript()}</script></body></html>\n`
  );
}

/** Options of {@link runReportHtml}. */
export interface RunReportOptions {
  /** The title (default: the scenario and seed from the header, or `'mmnsim run'`). */
  readonly title?: string;
  /** The command that replays the run (`mmnsim replay f.json`), shown with the violation. */
  readonly replayCommand?: string;
}

function defaultTitle(run: LoadedRun): string {
  const h = run.header;
  if (typeof h.scenario === 'string') {
    return `${h.scenario}${typeof h.seed === 'number' ? ` · seed ${h.seed}` : ''}`;
  }
  return 'mmnsim run';
}

/**
 * Builds the self-contained HTML report of one run (a replayed replay file or a log): the
 * interleaving as swim lanes grouped by CPU and device, the violation marked with its cited
 * events linked, a step scrubber that shows the projected state (page table and VMAs of each
 * mm, each secondary MMU's mappings, the subscriptions with their seq, the open invalidation
 * windows), filters by subsystem and event type, and search by address.
 *
 * ## Example
 * ```ts
 * const run = loadRunText(readFileSync('bug.replay.json', 'utf8'), zooScenario, 'bug.replay.json');
 * writeFileAtomic('report.html', runReportHtml(run, { replayCommand: 'pnpm replay bug.replay.json' }));
 * ```
 *
 * @param run the run (from {@link loadRunText}, {@link loadLog} or {@link loadReplay}).
 * @param options title and replay command.
 * @returns the HTML text.
 */
export function runReportHtml(run: LoadedRun, options: RunReportOptions = {}): string {
  const title = options.title ?? defaultTitle(run);
  const data: ReportData = {
    format: 'mmnsim-report',
    version: 1,
    title,
    runs: [
      runData(run, {
        title,
        ...(options.replayCommand !== undefined ? { replayCommand: options.replayCommand } : {}),
      }),
    ],
  };
  return reportHtml(data);
}

/** The minimised run of one distinct violation, for {@link campaignReportHtml}. */
export interface CampaignRun {
  /** The distinct violation's key (core's `violationKey`). */
  readonly key: string;
  /** The run, replayed with the log on. */
  readonly run: LoadedRun;
  /** The command that replays it. */
  readonly replayCommand?: string;
}

/** What a campaign report is made of. */
export interface CampaignReportInput {
  /** The campaign (core's `explore`). */
  readonly report: ExploreReport;
  /** Per-iteration records ({@link recordIterations}); without them the plots use the failures only. */
  readonly iterations?: readonly IterationRecord[];
  /**
   * The minimised replays of the distinct violations: the run (replayed with `log: true`) and
   * its replay command; `key` is the distinct violation's key (`violationKey`).
   */
  readonly runs: readonly CampaignRun[];
  /** The title (default: `campaign <scenario>`). */
  readonly title?: string;
}

/**
 * Builds the self-contained HTML report of a campaign: the summary (schedules, steps,
 * strategies, the PCT guarantee), uPlot plots (violations found against schedules per
 * strategy, the steps-per-schedule histogram, schedules/s over the campaign), and every
 * distinct violation with its minimised schedule, its replay command and its run in swim lanes.
 *
 * @param input the campaign report, iteration records and minimised runs.
 * @returns the HTML text.
 */
export function campaignReportHtml(input: CampaignReportInput): string {
  const r = input.report;
  const title = input.title ?? `campaign ${r.scenario}`;
  const runs: RunData[] = [];
  const distinct: CampaignData['distinct'][number][] = [];
  for (const d of r.distinct) {
    const found = input.runs.find((x) => x.key === d.key);
    let run = -1;
    if (found !== undefined) {
      run = runs.length;
      runs.push(
        runData(found.run, {
          title: `${d.kind} (minimised)`,
          ...(found.replayCommand !== undefined ? { replayCommand: found.replayCommand } : {}),
        }),
      );
    }
    distinct.push({ ...d, run });
  }
  const iterations: IterationRecord[] =
    input.iterations !== undefined
      ? [...input.iterations]
      : r.failures.map((f) => ({
          iteration: f.iteration,
          strategy: strategyLabel(f.strategy),
          steps: f.steps,
          violations: f.violations.length,
          atMs: 0,
        }));
  const { failures, ...rest } = r;
  const data: ReportData = {
    format: 'mmnsim-report',
    version: 1,
    title,
    runs,
    campaign: { summary: { ...rest, failures: failures.length }, iterations, distinct },
  };
  return reportHtml(data);
}

/**
 * Writes `text` to `path` so that nothing partial is ever there: into a temporary file beside
 * it, then renamed over it (a crash leaves the old file or none).
 *
 * @param path the file to write.
 * @param text its content.
 */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
