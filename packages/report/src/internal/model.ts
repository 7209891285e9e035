/**
 * The data a report embeds: a run's events in a compact columnar form (payload keys stored once
 * per event type), its tasks and lanes, its intervals and violations, and for a campaign the
 * summary and per-iteration series. Its own file: the Node side builds it and the browser script
 * reads it, so the shape is the contract between them.
 */
import type { ExploreReport, JsonValue, LoggedEvent, RunResult } from '@mmnsim/core';
import type { LoadedRun, ReportViolation } from './input.js';
import { pairIntervals } from './intervals.js';

/** One run as the report embeds it. */
export interface RunData {
  /** A title (`'odp-no-read-retry seed 1'`). */
  readonly title: string;
  /** The log header or replay fields. */
  readonly header: { readonly [key: string]: JsonValue };
  /** The command that replays it, when known. */
  readonly replayCommand?: string;
  /** The replayed schedule (task ids per choice), when known. */
  readonly schedule?: readonly number[];
  /** Execution contexts in lane order (CPUs, then devices, then others). */
  readonly contexts: readonly string[];
  /** Tasks: id, name, context. */
  readonly tasks: readonly {
    /** Task id. */
    readonly id: number;
    /** Task name. */
    readonly name: string;
    /** The context it runs on. */
    readonly ctx: string;
  }[];
  /** Event types and their payload keys (`data` values are stored in this key order). */
  readonly types: readonly {
    /** The event type. */
    readonly name: string;
    /** Its payload keys, in the order `data` rows hold the values. */
    readonly keys: readonly string[];
  }[];
  /** The events, column by column. */
  readonly ev: {
    /** Each event's `seq`. */
    readonly seq: readonly number[];
    /** Each event's step. */
    readonly step: readonly number[];
    /** Each event's task id (-1 outside tasks). */
    readonly task: readonly number[];
    /** Each event's index in `types`. */
    readonly type: readonly number[];
    /** Each event's payload values, in its type's key order (a non-object payload: one value). */
    readonly data: readonly (readonly JsonValue[])[];
  };
  /** Intervals on task lanes: `[task, begin index, end index (-1 open), name index, category index]`. */
  readonly intervals: readonly (readonly [number, number, number, number, number])[];
  /** Interval names and categories, indexed by `intervals`. */
  readonly strings: readonly string[];
  /** The violations. */
  readonly violations: readonly ReportViolation[];
}

/** One iteration of a campaign, for the plots. */
export interface IterationRecord {
  /** Iteration index. */
  readonly iteration: number;
  /** The strategy it ran with, as text (`'random'`, `'pct(d=3)'`). */
  readonly strategy: string;
  /** Steps of the run. */
  readonly steps: number;
  /** Violations it found. */
  readonly violations: number;
  /** Wall time since the campaign started, in ms (0 when unknown). */
  readonly atMs: number;
}

/** A campaign as the report embeds it. */
export interface CampaignData {
  /** The campaign report (without its failures' full violation lists). */
  readonly summary: Omit<ExploreReport, 'failures'> & {
    /** How many iterations failed. */
    readonly failures: number;
  };
  /** Per-iteration records, when they were collected. */
  readonly iterations: readonly IterationRecord[];
  /** The distinct violations, each with the index of its minimised run in `runs`. */
  readonly distinct: readonly {
    /** The deduplication key (core's `violationKey`). */
    readonly key: string;
    /** The violation kind. */
    readonly kind: string;
    /** Its first message. */
    readonly message: string;
    /** The first iteration that found it. */
    readonly firstIteration: number;
    /** How many iterations found it. */
    readonly count: number;
    /** Index in {@link ReportData.runs}, or -1 if no minimised replay was given. */
    readonly run: number;
  }[];
}

/** Everything a report file embeds. */
export interface ReportData {
  /** Always `'mmnsim-report'`. */
  readonly format: 'mmnsim-report';
  /** Format version (1). */
  readonly version: 1;
  /** The report's title. */
  readonly title: string;
  /** The runs it shows (one for a replay; one per minimised violation for a campaign). */
  readonly runs: readonly RunData[];
  /** The campaign, for a campaign report. */
  readonly campaign?: CampaignData;
}

/** The strategy of a run result as short text (`'random'`, `'pct(d=3)'`). */
export function strategyLabel(strategy: JsonValue): string {
  if (typeof strategy === 'string') return strategy;
  if (strategy !== null && typeof strategy === 'object' && !Array.isArray(strategy)) {
    const kind = typeof strategy.kind === 'string' ? strategy.kind : JSON.stringify(strategy);
    const depth = typeof strategy.depth === 'number' ? strategy.depth : 3;
    return kind === 'pct' ? `pct(d=${depth})` : kind;
  }
  return JSON.stringify(strategy);
}

/**
 * Collects per-iteration records for a campaign report: pass `onIteration` to `explore`.
 *
 * ## Example
 * ```ts
 * const rec = recordIterations(() => performance.now());
 * const report = explore(scenario, { iterations: 500, onIteration: rec.onIteration });
 * const html = campaignReportHtml({ report, iterations: rec.records, runs: [] });
 * ```
 *
 * @param now a wall clock in ms, for the schedules/s plot (tooling only; optional).
 * @returns the callback and the array it fills.
 */
export function recordIterations(now?: () => number): {
  /** Pass as `explore`'s `onIteration`. */
  readonly onIteration: (iteration: number, result: RunResult) => void;
  /** The records, filled as the campaign runs. */
  readonly records: IterationRecord[];
} {
  const records: IterationRecord[] = [];
  const t0 = now?.() ?? 0;
  return {
    records,
    onIteration(iteration, result) {
      records.push({
        iteration,
        strategy: strategyLabel(result.strategy),
        steps: result.steps,
        violations: result.violations.length,
        atMs: now !== undefined ? now() - t0 : 0,
      });
    },
  };
}

/** Context order: CPUs by number, then device engines, then anything else, by name. */
function contextOrder(a: string, b: string): number {
  const rank = (c: string): number => (/^cpu\d+$/.test(c) ? 0 : c === '-' ? 2 : 1);
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (ra === 0) return Number(a.slice(3)) - Number(b.slice(3));
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Builds the embedded form of one run. */
export function runData(
  run: LoadedRun,
  options: { readonly title: string; readonly replayCommand?: string },
): RunData {
  const events: readonly LoggedEvent[] = run.events;
  const typeIndex = new Map<string, number>();
  const types: { name: string; keys: string[] }[] = [];
  const seq: number[] = [];
  const step: number[] = [];
  const task: number[] = [];
  const type: number[] = [];
  const data: JsonValue[][] = [];
  const tasks = new Map<number, { id: number; name: string; ctx: string }>();
  const contexts = new Set<string>();
  for (const e of events) {
    let ti = typeIndex.get(e.type);
    const d = e.data;
    const isObj = d !== null && typeof d === 'object' && !Array.isArray(d);
    if (ti === undefined) {
      ti = types.length;
      typeIndex.set(e.type, ti);
      types.push({ name: e.type, keys: isObj ? Object.keys(d) : ['value'] });
    }
    const keys = types[ti]!.keys;
    let row: JsonValue[];
    if (isObj) {
      const obj = d;
      // A payload with keys the first event of its type lacked gets them appended.
      for (const k of Object.keys(obj)) if (!keys.includes(k)) keys.push(k);
      row = keys.map((k) => (k in obj ? obj[k]! : null));
    } else row = [d];
    seq.push(e.seq);
    step.push(e.step);
    task.push(e.task);
    type.push(ti);
    data.push(row);
    if (e.type === 'sched.spawn') {
      const s = e.data as { id: number; name: string; on: string };
      tasks.set(s.id, { id: s.id, name: s.name, ctx: s.on });
      contexts.add(s.on);
    } else if (e.type === 'sim.start') {
      const s = e.data as { cpus: number; devices: string[] };
      for (let c = 0; c < s.cpus; c++) contexts.add(`cpu${c}`);
      for (const dev of s.devices) contexts.add(dev);
    }
    if (e.task >= 0 && !tasks.has(e.task)) {
      tasks.set(e.task, { id: e.task, name: `task${e.task}`, ctx: e.ctx });
      contexts.add(e.ctx);
    }
  }
  // Rows of types whose key list grew are padded to the final key list.
  for (let i = 0; i < data.length; i++) {
    const keys = types[type[i]!]!.keys;
    const row = data[i]!;
    while (row.length < keys.length) row.push(null);
  }
  const strings: string[] = [];
  const stringIndex = new Map<string, number>();
  const str = (s: string): number => {
    let i = stringIndex.get(s);
    if (i === undefined) {
      i = strings.length;
      strings.push(s);
      stringIndex.set(s, i);
    }
    return i;
  };
  const intervals: [number, number, number, number, number][] = [];
  for (const iv of pairIntervals(events).intervals) {
    if (iv.track.kind !== 'task') continue;
    intervals.push([iv.track.task, iv.begin, iv.end, str(iv.name), str(iv.cat)]);
  }
  return {
    title: options.title,
    header: run.header,
    ...(options.replayCommand !== undefined ? { replayCommand: options.replayCommand } : {}),
    ...(run.replay !== undefined ? { schedule: run.replay.schedule } : {}),
    contexts: [...contexts].sort(contextOrder),
    tasks: [...tasks.values()].sort((a, b) => a.id - b.id),
    types,
    ev: { seq, step, task, type, data },
    intervals,
    strings,
    violations: run.violations,
  };
}
