/**
 * See the race: a Chrome trace-event export of an mmnsim log (for the Perfetto UI and
 * `chrome://tracing`) and a self-contained HTML report of a run or a campaign — swim lanes, the
 * violation and its cited events, a step scrubber over the projected state, filters, search and
 * campaign plots. Tooling, not simulation code: it reads and writes files.
 *
 * @packageDocumentation
 */
export { CHROMIUM_MISSING, CHROMIUM_PATH, chromiumLaunchOptions } from './internal/browser.js';
export type { ChromiumLaunchOptions } from './internal/browser.js';
export { minimisedRuns } from './internal/campaign.js';
export type { MinimisedRunsOptions } from './internal/campaign.js';
export { runCommand } from './internal/cli.js';
export type { CommandIo } from './internal/cli.js';
export { counterUpdates, newCounterState } from './internal/counters.js';
export type { CounterState, CounterUpdate } from './internal/counters.js';
export { campaignReportHtml, reportHtml, runReportHtml, writeFileAtomic } from './internal/html.js';
export type { CampaignReportInput, CampaignRun, RunReportOptions } from './internal/html.js';
export {
  loadLog,
  loadReplay,
  loadRunText,
  ReportInputError,
  violationsOf,
} from './internal/input.js';
export type { LoadedRun, ReportViolation } from './internal/input.js';
export { pairIntervals } from './internal/intervals.js';
export type { Interval, IntervalTrack, Pairing } from './internal/intervals.js';
export { recordIterations, runData, strategyLabel } from './internal/model.js';
export type { CampaignData, IterationRecord, ReportData, RunData } from './internal/model.js';
export { cloneState, reportStateProjection } from './internal/state.js';
export type {
  ReportState,
  StateItree,
  StateMapping,
  StateMm,
  StateSubscription,
  StateVma,
  StateWindow,
} from './internal/state.js';
export { toChromeTrace } from './internal/trace.js';
export type { ChromeTrace, ChromeTraceOptions, TraceEvent } from './internal/trace.js';
