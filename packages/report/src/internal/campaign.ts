/**
 * The minimised runs a campaign report shows: for each distinct violation, its first failing
 * schedule minimised, saved as a replay file and re-executed with the log on. Its own file: it
 * is the bridge from core's exploration API to the report's inputs.
 */
import { makeReplayFile, minimise, replay, violationKey } from '@mmnsim/core';
import type { ExploreReport, ReplayFile, Scenario } from '@mmnsim/core';
import type { CampaignRun } from './html.js';
import { violationsOf } from './input.js';

/** Options of {@link minimisedRuns}. */
export interface MinimisedRunsOptions {
  /** The replay command shown for each run (default: none). */
  readonly replayCommand?: (file: ReplayFile, index: number) => string;
  /** Bound on the re-executions one minimisation may take (core's default: 500). */
  readonly maxRuns?: number;
}

/**
 * For each distinct violation of a campaign: its first failing iteration, minimised (core's
 * `minimise`, which keeps the failure's first violation kind), turned into a replay file and
 * replayed with the log on — the `runs` of {@link campaignReportHtml}.
 *
 * ## Example
 * ```ts
 * const rec = recordIterations(() => performance.now());
 * const report = explore(scenario, { iterations: 500, stopOnFirst: false, onIteration: rec.onIteration });
 * const html = campaignReportHtml({ report, iterations: rec.records, runs: minimisedRuns(scenario, report) });
 * ```
 *
 * @param scenario the campaign's scenario.
 * @param report what `explore` returned.
 * @param options replay command and minimisation bound.
 * @returns one run per distinct violation that a failure still reproduces.
 */
export function minimisedRuns(
  scenario: Scenario,
  report: ExploreReport,
  options: MinimisedRunsOptions = {},
): CampaignRun[] {
  const out: CampaignRun[] = [];
  report.distinct.forEach((d, index) => {
    const failure = report.failures.find((f) =>
      f.violations.some((v) => violationKey(v) === d.key),
    );
    if (failure === undefined) return;
    const m = minimise(
      scenario,
      failure,
      options.maxRuns !== undefined ? { maxRuns: options.maxRuns } : {},
    );
    const file = makeReplayFile(scenario, {
      seed: m.seed,
      schedule: m.schedule,
      strategy: failure.strategy,
    });
    const { sim } = replay(scenario, file, { log: true });
    const events = sim.log!.events;
    out.push({
      key: d.key,
      run: {
        header: { scenario: file.scenario, seed: file.seed, strategy: file.strategy },
        events,
        violations: violationsOf(events),
        replay: file,
      },
      ...(options.replayCommand !== undefined
        ? { replayCommand: options.replayCommand(file, index) }
        : {}),
    });
  });
  return out;
}
