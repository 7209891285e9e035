/**
 * Reading what the report and the trace export are made from: an NDJSON log or a replay file,
 * checked strictly (a truncated line is refused here, where the log reader only warns), with
 * errors that name the line. Its own file: the tools and the CLI share one loader.
 */
import {
  LogFormatError,
  parseReplayFile,
  readNdjson,
  ReplayDivergenceError,
  ReplayFileError,
  replayFile,
} from '@mmnsim/core';
import type { JsonValue, LoggedEvent, ReplayFile, Scenario, Violation } from '@mmnsim/core';

/**
 * Thrown when an input cannot be used: a corrupted or truncated log, a malformed replay file, a
 * replay whose final hash does not match. The message starts with `<source>: line N:`.
 */
export class ReportInputError extends Error {
  /** Always `'ReportInputError'`. */
  override readonly name = 'ReportInputError';

  /**
   * @param source the file name (or `'input'`).
   * @param line the 1-based line of the problem.
   * @param detail what is wrong.
   */
  constructor(
    readonly source: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${source}: line ${line}: ${detail}`);
  }
}

/** A violation as the report shows it: from the log's `oracle.violation` event or a run result. */
export interface ReportViolation {
  /** The violation kind (`'secondary-use-after-free'` …). */
  readonly kind: string;
  /** What broke. */
  readonly message: string;
  /** The `seq` of the events that prove it. */
  readonly evidence: readonly number[];
  /** The reporting oracle. */
  readonly oracle: string;
  /** The `seq` of the `oracle.violation` event, or -1 if the log has none. */
  readonly seq: number;
  /** The step it was reported at. */
  readonly step: number;
  /** The task that was running. */
  readonly task: number;
}

/** A run ready to be exported or reported: its events and violations, and where they came from. */
export interface LoadedRun {
  /** The log header (for a replay: the replay file's scenario, seed and strategy). */
  readonly header: { readonly [key: string]: JsonValue };
  /** The events, in log order. */
  readonly events: readonly LoggedEvent[];
  /** The violations, in order. */
  readonly violations: readonly ReportViolation[];
  /** The replay file, when the input was one. */
  readonly replay?: ReplayFile;
}

/** The violations a log records as `oracle.violation` events. */
export function violationsOf(events: readonly LoggedEvent[]): ReportViolation[] {
  const out: ReportViolation[] = [];
  for (const e of events) {
    if (e.type !== 'oracle.violation') continue;
    const d = e.data as { kind: string; message: string; evidence: number[]; oracle: string };
    out.push({
      kind: d.kind,
      message: d.message,
      evidence: d.evidence,
      oracle: d.oracle,
      seq: e.seq,
      step: e.step,
      task: e.task,
    });
  }
  return out;
}

/** Adds the run result's violations the log does not record (a log that filtered them out). */
function mergeViolations(
  fromLog: ReportViolation[],
  fromRun: readonly Violation[],
): ReportViolation[] {
  const out = [...fromLog];
  for (const v of fromRun) {
    if (out.some((o) => o.kind === v.kind && o.step === v.step)) continue;
    out.push({
      kind: v.kind,
      message: v.message,
      evidence: v.evidence,
      oracle: v.oracle,
      seq: -1,
      step: v.step,
      task: v.task,
    });
  }
  return out;
}

/**
 * Reads an NDJSON log strictly: everything {@link readNdjson} checks (header, fields, seq order,
 * the hash chain), and a truncated last line is an error too, since a report or trace of a
 * partial log would show a run that never ended that way.
 *
 * @param text the log's text.
 * @param source the file name, for messages.
 * @throws ReportInputError naming the line.
 */
export function loadLog(text: string, source = 'input'): LoadedRun {
  let read;
  try {
    read = readNdjson(text);
  } catch (e) {
    if (e instanceof LogFormatError) {
      throw new ReportInputError(source, e.line, e.message.replace(/^line \d+: /, ''));
    }
    throw e;
  }
  const warning = read.warnings[0];
  if (warning !== undefined) {
    const m = /^line (\d+): (.*)$/.exec(warning);
    throw new ReportInputError(
      source,
      m !== null ? Number(m[1]) : 1,
      `${m !== null ? m[2]! : warning}; refusing a truncated log (the run's end is missing)`,
    );
  }
  return { header: read.header, events: read.events, violations: violationsOf(read.events) };
}

/** The 1-based line of `offset` in `text`. */
function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** The line where `"field"` (the first path segment) appears, or 1. */
function lineOfField(text: string, field: string): number {
  const name = field.split('.')[0]!;
  const at = text.indexOf(`"${name}"`);
  return at < 0 ? 1 : lineAt(text, at);
}

/** The line a `JSON.parse` error points at (its position, or the end for a cut-off text). */
function lineOfJsonError(text: string, message: string): number {
  const pos = /position (\d+)/.exec(message);
  if (pos !== null) return lineAt(text, Number(pos[1]));
  const lc = /line (\d+)/.exec(message);
  if (lc !== null) return Number(lc[1]);
  // A text cut off mid-file ends on the line it was cut in (even inside its indentation).
  return lineAt(text, text.length);
}

/**
 * Reads and re-executes a replay file (`core`'s `replayFile`: scenario and plugins checked, the
 * schedule replayed, the final hash compared), returning the replayed run's log.
 *
 * @param text the replay file's text.
 * @param scenarios looks up the scenario the file names (the zoo's `zooScenario`, the CLI's
 *   registry).
 * @param source the file name, for messages.
 * @throws ReportInputError naming the line of the bad field (a truncated file: its last line; a
 *   final hash that does not match: the `finalHash` line).
 */
export function loadReplay(
  text: string,
  scenarios: (id: string) => Scenario | undefined,
  source = 'input',
): LoadedRun {
  let file: ReplayFile;
  try {
    file = parseReplayFile(text);
  } catch (e) {
    if (e instanceof ReplayFileError) {
      const line =
        e.field === '(file)' ? lineOfJsonError(text, e.message) : lineOfField(text, e.field);
      throw new ReportInputError(source, line, e.message);
    }
    throw e;
  }
  try {
    const { sim, result } = replayFile(file, scenarios);
    const events = sim.log!.events;
    return {
      header: {
        scenario: file.scenario,
        seed: file.seed,
        strategy: file.strategy,
        finalHash: file.finalHash,
      },
      events,
      violations: mergeViolations(violationsOf(events), result.violations),
      replay: file,
    };
  } catch (e) {
    if (e instanceof ReplayFileError) {
      throw new ReportInputError(source, lineOfField(text, e.field), e.message);
    }
    if (e instanceof ReplayDivergenceError) {
      throw new ReportInputError(source, lineOfField(text, 'schedule'), e.message);
    }
    throw e;
  }
}

/**
 * Reads a log or a replay file, telling them apart by the first line (`{"format":"mmnsim-log"`
 * starts a log).
 *
 * @param text the file's text.
 * @param scenarios the scenario registry (needed for replay files only).
 * @param source the file name, for messages.
 * @throws ReportInputError naming the line.
 */
export function loadRunText(
  text: string,
  scenarios: ((id: string) => Scenario | undefined) | undefined,
  source = 'input',
): LoadedRun {
  const first = text.slice(0, Math.max(0, text.indexOf('\n'))) || text;
  if (/"format"\s*:\s*"mmnsim-log"/.test(first)) return loadLog(text, source);
  if (/"format"\s*:\s*"mmnsim-replay"/.test(text.slice(0, 200))) {
    if (scenarios === undefined) {
      throw new ReportInputError(
        source,
        1,
        'a replay file needs a scenario registry to re-execute it',
      );
    }
    return loadReplay(text, scenarios, source);
  }
  return loadLog(text, source);
}
