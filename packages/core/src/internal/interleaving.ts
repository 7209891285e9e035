import type { LoggedEvent } from './events.js';
import type { JsonValue } from './json.js';

/** One line of a readable interleaving: who did what at which step. */
export interface InterleavingRow {
  /** The event's `seq`. */
  readonly seq: number;
  /** Scheduler step. */
  readonly step: number;
  /** Name of the task that was running (`'-'` outside any task). */
  readonly task: string;
  /** Its execution context (`'cpu0'`, `'nic0'`, `'-'`). */
  readonly ctx: string;
  /** Event type. */
  readonly type: string;
  /** The payload as `key=value` pairs (addresses in hex). */
  readonly detail: string;
  /** True if a violation names this event as evidence, or the event is the violation (such rows are never omitted). */
  readonly evidence: boolean;
}

/** Options of {@link interleaving}. */
export interface InterleavingOptions {
  /**
   * Event types left out; an entry ending in `.*` leaves out a whole namespace (`'lock.*'`).
   * Default: `sched.switch`, which the change of task already shows, and `sched.idle`.
   */
  readonly omit?: readonly string[];
  /**
   * Keep only the last `tail` rows up to and including the first violation (default: all). The
   * setup a failing run starts with is rarely the interesting part.
   */
  readonly tail?: number;
}

const DEFAULT_OMIT = ['sched.switch', 'sched.idle'];

function value(v: JsonValue): string {
  if (typeof v === 'number')
    return Number.isInteger(v) && v >= 0x10000 ? `0x${v.toString(16)}` : String(v);
  if (typeof v === 'string') return /^[\w.:/@<>+-]*$/.test(v) && v !== '' ? v : JSON.stringify(v);
  return JSON.stringify(v);
}

function detail(data: JsonValue): string {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return value(data);
  return Object.entries(data)
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(' ');
}

/**
 * Turns a run's logged events into a readable interleaving: one row per event with the step,
 * the running task's name and context, the event type and its payload, marking the events a
 * violation cites as evidence. Task names come from the log's `sched.spawn` events.
 *
 * Use it on the log of a replayed failing schedule to see the race step by step; the demo and
 * `pnpm replay` print it with {@link formatInterleaving}.
 *
 * @example
 * const { sim } = replay(scenario, failure, { log: true });
 * console.log(formatInterleaving(interleaving(sim.log!.events, { tail: 40 })));
 */
export function interleaving(
  events: readonly LoggedEvent[],
  options: InterleavingOptions = {},
): InterleavingRow[] {
  const patterns = options.omit ?? DEFAULT_OMIT;
  const exact = new Set(patterns.filter((p) => !p.endsWith('.*')));
  const prefixes = patterns.filter((p) => p.endsWith('.*')).map((p) => p.slice(0, -1));
  const omitted = (type: string): boolean =>
    exact.has(type) || prefixes.some((p) => type.startsWith(p));
  const names = new Map<number, string>();
  const evidence = new Set<number>();
  let end = events.length;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e.type === 'sched.spawn') {
      const d = e.data as { id: number; name: string };
      names.set(d.id, d.name);
    } else if (e.type === 'oracle.violation') {
      evidence.add(e.seq);
      for (const s of (e.data as { evidence: number[] }).evidence) evidence.add(s);
      if (end === events.length) end = i + 1;
    }
  }
  const rows: InterleavingRow[] = [];
  for (let i = 0; i < end; i++) {
    const e = events[i]!;
    if (omitted(e.type) && !evidence.has(e.seq)) continue; // evidence is always shown
    rows.push({
      seq: e.seq,
      step: e.step,
      task: e.task < 0 ? '-' : (names.get(e.task) ?? `task${e.task}`),
      ctx: e.ctx,
      type: e.type,
      detail: detail(e.data),
      evidence: evidence.has(e.seq),
    });
  }
  return options.tail !== undefined && rows.length > options.tail
    ? rows.slice(rows.length - options.tail)
    : rows;
}

/** Options of {@link formatInterleaving}. */
export interface FormatInterleavingOptions {
  /**
   * A run of more than this many consecutive rows of one task is shortened to its first and
   * last rows (evidence rows are always kept), with a line saying how many were left out.
   * Default: no shortening.
   */
  readonly maxRun?: number;
}

/**
 * Formats rows from {@link interleaving} as a fixed-width table: step, task@context, event,
 * payload. Evidence rows are marked `!`; a short line of dashes separates consecutive rows of
 * different tasks, so every switch between tasks stands out.
 */
export function formatInterleaving(
  rows: readonly InterleavingRow[],
  options: FormatInterleavingOptions = {},
): string {
  const who = rows.map((r) => `${r.task}@${r.ctx}`);
  // Column widths (a loop, not Math.max(...spread): a whole log can have 10^5 rows).
  let wWho = 4;
  let wType = 5;
  let wStep = 4;
  for (let i = 0; i < rows.length; i++) {
    wWho = Math.max(wWho, who[i]!.length);
    wType = Math.max(wType, rows[i]!.type.length);
    wStep = Math.max(wStep, String(rows[i]!.step).length);
  }
  const out = [
    `  ${'step'.padStart(wStep)}  ${'task'.padEnd(wWho)}  ${'event'.padEnd(wType)}  detail`,
  ];
  const line = (i: number): string => {
    const r = rows[i]!;
    const mark = r.evidence ? '!' : ' ';
    const text = `${mark} ${String(r.step).padStart(wStep)}  ${who[i]!.padEnd(wWho)}  ${r.type.padEnd(wType)}  ${r.detail}`;
    return text.trimEnd();
  };
  const maxRun = options.maxRun ?? Infinity;
  const keepEnds = Math.max(1, Math.floor(maxRun / 2));
  for (let start = 0; start < rows.length;) {
    let end = start + 1;
    while (end < rows.length && who[end] === who[start]) end++;
    if (start > 0) out.push(`  ${'-'.repeat(wStep)}`);
    const long = end - start > maxRun;
    let skipped = 0;
    for (let i = start; i < end; i++) {
      const keep = !long || i < start + keepEnds || i >= end - keepEnds || rows[i]!.evidence;
      if (!keep) {
        skipped++;
        continue;
      }
      if (skipped > 0) out.push(`  ${' '.repeat(wStep)}  … ${skipped} more rows of ${who[start]!}`);
      skipped = 0;
      out.push(line(i));
    }
    start = end;
  }
  return out.join('\n');
}
