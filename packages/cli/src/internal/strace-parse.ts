/**
 * Reading `strace -f` output into syscall records: optional pid prefixes (`1234 ` or
 * `[pid 1234] `), `-t`/`-tt`/`-ttt` timestamps, `-T` durations, `<unfinished ...>` /
 * `<... name resumed>` pairs joined into one record, signals (`--- SIGCHLD {...} ---`) and exits
 * (`+++ exited with 0 +++`, `+++ killed by SIGKILL +++`). Its own file because the line grammar
 * is independent of what the importer makes of the calls.
 */

/** One completed system call of the trace. */
export interface SyscallRecord {
  /** Line of the trace it ended on (1-based). */
  readonly line: number;
  /** The calling thread's id (0 when the trace has no pid prefix). */
  readonly pid: number;
  /** The syscall name. */
  readonly name: string;
  /** The raw argument text, split at top-level commas (empty when not asked for). */
  readonly args: readonly string[];
  /** The raw return value (`0x7f..`, `0`, `-1`, `?`). */
  readonly ret: string;
  /** The errno name when the call failed (`ENOMEM`). */
  readonly errno?: string;
}

/** Something in the trace that is not a syscall. */
export type TraceEvent = SyscallEvent | ExitEvent | SignalEvent;

/** A completed syscall of the trace. */
export interface SyscallEvent {
  /** Always `'syscall'`. */
  readonly type: 'syscall';
  /** The call. */
  readonly call: SyscallRecord;
}

/** A thread exited (`+++ exited with N +++`, `+++ killed by SIG +++`, or its exit never returned). */
export interface ExitEvent {
  /** Always `'exit'`. */
  readonly type: 'exit';
  /** Its line. */
  readonly line: number;
  /** The thread. */
  readonly pid: number;
  /** How (`exited with 0`). */
  readonly how: string;
}

/** A signal was delivered (`--- SIGCHLD {...} ---`). */
export interface SignalEvent {
  /** Always `'signal'`. */
  readonly type: 'signal';
  /** Its line. */
  readonly line: number;
  /** The thread. */
  readonly pid: number;
  /** The signal's name. */
  readonly signal: string;
}

/** A line that could not be read, with its number and why. */
export interface MalformedLine {
  /** 1-based line number. */
  readonly line: number;
  /** Column where reading stopped (1-based). */
  readonly col: number;
  /** Why. */
  readonly reason: string;
  /** The line's text (cut to 120 characters). */
  readonly text: string;
}

const PREFIX = /^(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(?:(\d{2}:\d{2}:\d{2}(?:\.\d+)?|\d+\.\d+)\s+)?/;
const RESULT = /^\s*=\s*(\S+)(?:\s+([A-Z][A-Z0-9_]*)(?:\s+\(.*\))?)?(?:\s+<\d+\.\d+>)?\s*$/;

/** Splits `a, {b, c}, [d, e], "f,g"` at top-level commas. */
export function splitArgs(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = false;
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quote) {
      if (c === 92)
        i++; // backslash
      else if (c === 34) quote = false;
      continue;
    }
    if (c === 34) quote = true;
    else if (c === 40 || c === 91 || c === 123) depth++;
    else if (c === 41 || c === 93 || c === 125) depth--;
    else if (c === 44 && depth === 0) {
      out.push(text.slice(from, i).trim());
      from = i + 1;
    }
  }
  const last = text.slice(from).trim();
  if (last !== '' || out.length > 0) out.push(last);
  return out;
}

/** Index of the `)` closing the `(` at `open`, or -1 (quotes and nesting respected). */
function closing(text: string, open: number): number {
  let depth = 0;
  let quote = false;
  for (let i = open; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quote) {
      if (c === 92) i++;
      else if (c === 34) quote = false;
      continue;
    }
    if (c === 34) quote = true;
    else if (c === 40 || c === 91 || c === 123) depth++;
    else if (c === 41 || c === 93 || c === 125) {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/** What {@link parseStrace} returns. */
export interface ParsedTrace {
  /** Syscalls, signals and exits in trace order (a split call at its resumed line). */
  readonly events: TraceEvent[];
  /** Lines that could not be read. */
  readonly malformed: MalformedLine[];
  /** Lines read. */
  readonly lines: number;
}

/**
 * Parses strace output. Malformed lines (a truncated call, an unknown shape, a `resumed` with no
 * matching `unfinished`) are collected with their line and column, not thrown.
 */
export function parseStrace(
  text: string,
  options: {
    /** Which calls need their arguments split (default all; the others get `args: []`). */
    readonly splitArgsOf?: (name: string) => boolean;
  } = {},
): ParsedTrace {
  const wantArgs = options.splitArgsOf ?? (() => true);
  const events: TraceEvent[] = [];
  const malformed: MalformedLine[] = [];
  const pending = new Map<number, { name: string; head: string }>();
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const bad = (line: number, col: number, reason: string, t: string): void => {
    malformed.push({ line, col, reason, text: t.length > 120 ? t.slice(0, 117) + '...' : t });
  };
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n]!;
    const lineNo = n + 1;
    if (raw.trim() === '') continue;
    const pm = PREFIX.exec(raw)!;
    const pid = Number(pm[1] ?? pm[2] ?? 0);
    const at = pm[0].length;
    const rest = raw.slice(at);
    if (rest.startsWith('+++ ')) {
      const m = /^\+\+\+ (exited with \d+|killed by \S+(?: \(core dumped\))?) \+\+\+\s*$/.exec(
        rest,
      );
      if (m === null) bad(lineNo, at + 1, 'an unreadable exit line', raw);
      else events.push({ type: 'exit', line: lineNo, pid, how: m[1]! });
      continue;
    }
    if (rest.startsWith('--- ')) {
      const m = /^--- (SIG[A-Z0-9]+|\{.*\})\b.*---\s*$/.exec(rest);
      if (m === null) bad(lineNo, at + 1, 'an unreadable signal line', raw);
      else events.push({ type: 'signal', line: lineNo, pid, signal: m[1]! });
      continue;
    }
    let name: string;
    let full: string;
    const resumed = rest.charCodeAt(0) === 60 ? /^<\.\.\. ([a-z_0-9]+) resumed>/.exec(rest) : null;
    if (resumed !== null) {
      const p = pending.get(pid);
      if (p === undefined || p.name !== resumed[1]) {
        bad(
          lineNo,
          at + 1,
          `"${resumed[1]} resumed" without a matching "<unfinished ...>" of pid ${pid}`,
          raw,
        );
        continue;
      }
      pending.delete(pid);
      name = p.name;
      full = p.head + rest.slice(resumed[0].length);
    } else {
      const m = /^([a-z_][a-z_0-9]*)\(/.exec(rest);
      if (m === null) {
        bad(lineNo, at + 1, 'not a syscall, signal or exit line', raw);
        continue;
      }
      name = m[1]!;
      full = rest;
      const trimmed = full.trimEnd();
      if (trimmed.endsWith('<unfinished ...>')) {
        if (pending.has(pid)) bad(lineNo, at + 1, `pid ${pid} has two unfinished calls`, raw);
        pending.set(pid, { name, head: trimmed.slice(0, -'<unfinished ...>'.length).trimEnd() });
        continue;
      }
    }
    const open = full.indexOf('(');
    const close = closing(full, open);
    if (close < 0) {
      bad(lineNo, at + full.length + 1, `truncated ${name} call: no closing ")"`, raw);
      continue;
    }
    const r = RESULT.exec(full.slice(close + 1));
    if (r === null) {
      bad(lineNo, at + close + 2, `${name}: no "= <result>" after the arguments`, raw);
      continue;
    }
    events.push({
      type: 'syscall',
      call: {
        line: lineNo,
        pid,
        name,
        args: wantArgs(name) ? splitArgs(full.slice(open + 1, close)) : [],
        ret: r[1]!,
        ...(r[2] !== undefined ? { errno: r[2] } : {}),
      },
    });
  }
  for (const [pid, p] of pending) {
    // A call still unfinished at the end of the trace (the program was killed, or exit_group).
    if (p.name !== 'exit_group' && p.name !== 'exit')
      bad(lines.length, 1, `pid ${pid}'s ${p.name} never resumed before the trace ended`, p.head);
    else events.push({ type: 'exit', line: lines.length, pid, how: p.name });
  }
  return { events, malformed, lines: lines.length };
}
