import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { EventSink } from './bus.js';
import type { AnySimEvent, LoggedEvent, SimEvent, SimEventType } from './events.js';
import type { JsonValue } from './json.js';
import { MAX_JSON_DEPTH, tooDeep } from './json-depth.js';

/**
 * Caller-provided metadata written into a log's header line: the seed, the strategy, the
 * scenario id, the plugin ids and anything else a reader needs to make sense of the run.
 *
 * Values must be plain JSON. The keys `format` and `version` are reserved for the log format
 * itself and are rejected by {@link EventLog.toNdjson}.
 */
export type LogHeaderFields = { readonly [key: string]: JsonValue };

/**
 * The header of an NDJSON event log as {@link readNdjson} returns it: the format marker, the
 * format version, and the caller's {@link LogHeaderFields}.
 */
export interface LogHeader {
  /** Always `'mmnsim-log'`: marks the text as an mmnsim event log. */
  readonly format: 'mmnsim-log';
  /** Version of the log format; this module reads and writes version 1 only. */
  readonly version: 1;
  /** The caller's metadata fields, as written by {@link EventLog.toNdjson}. */
  readonly [key: string]: JsonValue;
}

/**
 * Thrown by {@link readNdjson} when a log cannot be trusted: a missing or invalid header, a line
 * that is not valid JSON or lacks a field, a broken sequence, or a hash that does not match.
 *
 * The message always starts with `line N:` and names the field and what was expected, so a user
 * can open the file at that line.
 */
export class LogFormatError extends Error {
  /** The 1-based line number in the NDJSON text where the problem was found. */
  readonly line: number;

  /**
   * @param line the 1-based line number of the offending line.
   * @param detail what is wrong with it; the message becomes `line N: detail`.
   */
  constructor(line: number, detail: string) {
    super(`line ${line}: ${detail}`);
    this.name = 'LogFormatError';
    this.line = line;
  }
}

/** What {@link EventLog} may be told when it is built. */
export interface EventLogOptions {
  /**
   * Decides which event types the log records; by default it records every type. Must be
   * pure and cheap: the bus asks it on every emission, and the answer must not change mid-run.
   */
  readonly keep?: (type: string) => boolean;
}

/** The format marker written in every header line. */
const FORMAT = 'mmnsim-log';
/** The only format version this module writes and reads. */
const VERSION = 1;
/** Prefix hashed in front of the header line to start the chain (the genesis hash). */
const GENESIS_PREFIX = 'mmnsim-log/1\n';
/** A lowercase hex SHA-256 digest. */
const HEX64 = /^[0-9a-f]{64}$/;

/** SHA-256 of the UTF-8 bytes of `text`, as lowercase hex. */
function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The genesis hash of a chain whose header line (without its newline) is `headerLine`. */
/** @internal */
export function genesisHash(headerLine: string): string {
  return sha256(GENESIS_PREFIX + headerLine);
}

/** The hash of an event line, given the previous hash and the line's canonical JSON. */
/** @internal */
export function chainHash(previous: string, canonical: string): string {
  return sha256(previous + '\n' + canonical);
}

/**
 * The header line (without its newline) for the given caller fields: `format` and `version`
 * first, then the fields in their own order.
 */
/** @internal */
export function headerLineOf(fields: LogHeaderFields | undefined): string {
  if (fields !== undefined) {
    for (const reserved of ['format', 'version']) {
      if (Object.prototype.hasOwnProperty.call(fields, reserved)) {
        throw new Error(
          `EventLog: header field "${reserved}" is reserved for the log format; rename it`,
        );
      }
    }
  }
  return JSON.stringify({ format: FORMAT, version: VERSION, ...fields });
}

/**
 * The canonical JSON of one event: its seven fields in the fixed order seq, step, time, ctx,
 * task, type, data, each serialised by `JSON.stringify`, with no whitespace.
 */
/** `JSON.stringify` of a number (`String` gives the same text for every finite one). */
function num(n: number): string {
  return typeof n === 'number' && Number.isFinite(n) ? String(n) : String(JSON.stringify(n));
}

/** @internal */
export function canonicalEventJson(event: LoggedEvent): string {
  const data = JSON.stringify(event.data) as string | undefined;
  if (data === undefined) {
    throw new Error(
      `EventLog: event seq ${event.seq} (${event.type}) has a payload that is not JSON data`,
    );
  }
  return (
    '{"seq":' +
    num(event.seq) +
    ',"step":' +
    num(event.step) +
    ',"time":' +
    num(event.time) +
    ',"ctx":' +
    JSON.stringify(event.ctx) +
    ',"task":' +
    num(event.task) +
    ',"type":' +
    JSON.stringify(event.type) +
    ',"data":' +
    data +
    '}'
  );
}

/** The full event line (without its newline): the canonical JSON with the hash appended. */
/** @internal */
export function eventLineOf(canonical: string, hash: string): string {
  return canonical.slice(0, -1) + ',"hash":"' + hash + '"}';
}

/**
 * The append-only event log of a run (ARCHITECTURE §4): a sink on the `EventBus` that keeps
 * every event it is given, by reference, in emission order, and writes them as NDJSON with a
 * SHA-256 hash chain.
 *
 * Recording is a single array push, because it runs inside every emission; serialising and
 * hashing happen only when {@link EventLog.toNdjson} or {@link EventLog.finalHash} is called.
 * Events are kept by reference, so their payloads must not be changed after emission (the bus
 * contract already demands this).
 *
 * The same events always serialise to byte-identical text, in any process: fields are written
 * in a fixed order by `JSON.stringify`, and nothing depends on the clock or the host.
 *
 * ## Format
 *
 * Line 1 is the header `{"format":"mmnsim-log","version":1, ...fields}`. Each later line is one
 * event, `{"seq":…,"step":…,"time":…,"ctx":…,"task":…,"type":…,"data":…,"hash":"…"}`, and every
 * line ends with `"\n"`. With `H` the header line and `C_i` the canonical JSON of event `i` (its
 * line without the `,"hash":"…"` member, i.e. the bytes before `,"hash"` followed by `}`):
 *
 * - `hash_0 = sha256("mmnsim-log/1\n" + H)`
 * - `hash_i = sha256(hash_{i-1} + "\n" + C_i)`
 *
 * where `sha256` hashes the UTF-8 bytes of its argument and yields lowercase hex, and line `i`
 * (the event after the header) stores `hash_i`. The last hash seals the whole log.
 *
 * ## Example
 *
 * ```ts
 * const log = new EventLog({ keep: (type) => !type.startsWith('sched.') });
 * bus.addSink(log);
 * // ... run the simulation ...
 * const text = log.toNdjson({ seed: 42, strategy: 'random' });
 * const { events, finalHash } = readNdjson(text);
 * // events deep-equals log.events, finalHash === log.finalHash({ seed: 42, strategy: 'random' })
 * ```
 */
export class EventLog implements EventSink {
  private readonly list: LoggedEvent[] = [];
  private readonly keepType: ((type: string) => boolean) | undefined;
  /** Chain state of the last finalHash() call, to extend instead of rehashing everything. */
  private cache: { headerLine: string; count: number; hash: string } | undefined;

  /**
   * @param options `keep` selects the event types to record (default: every type).
   */
  constructor(options?: EventLogOptions) {
    this.keepType = options?.keep;
  }

  /**
   * True if this log records events of `type`. The bus asks this on each emission, so an event
   * that no sink keeps and nobody observes is never built.
   *
   * @param type a namespaced event type such as `'sched.spawn'`.
   * @returns whether the `keep` option (if any) accepts the type.
   */
  keeps(type: string): boolean {
    const keep = this.keepType;
    return keep === undefined || keep(type);
  }

  /**
   * Appends one event, by reference. O(1); never throws. The bus calls this only for types the
   * log keeps; a direct caller is trusted to give events in strictly increasing `seq` order.
   *
   * @param event the event as the bus built it (or a {@link LoggedEvent} read back from a log).
   */
  record(event: AnySimEvent | LoggedEvent): void {
    this.list.push(event);
  }

  /** The recorded events in recording order. A live view: it grows as the run goes on. */
  get events(): readonly LoggedEvent[] {
    return this.list;
  }

  /**
   * The recorded events of one type, in order, typed by their payload. Events read back from
   * NDJSON are plain JSON; their payloads are trusted to match the type's declaration.
   *
   * @example
   * for (const e of sim.log!.ofType('sched.spawn')) console.log(e.step, e.data.name);
   */
  ofType<K extends SimEventType>(type: K): SimEvent<K>[] {
    const out: SimEvent<K>[] = [];
    for (const e of this.list) if (e.type === type) out.push(e as unknown as SimEvent<K>);
    return out;
  }

  /** Number of recorded events. */
  get length(): number {
    return this.list.length;
  }

  /**
   * Serialises the log as NDJSON with its hash chain (see the class documentation for the
   * format). Deterministic: the same header fields and events give byte-identical text.
   *
   * @param header metadata for the header line (seed, strategy, scenario, plugin ids …); must be
   *   plain JSON and must not use the reserved keys `format` and `version`.
   * @returns the whole log, one line per event after the header, each line ending with `"\n"`.
   * @throws Error if `header` uses a reserved key or an event's payload is not JSON data.
   */
  toNdjson(header?: LogHeaderFields): string {
    const headerLine = headerLineOf(header);
    const events = this.list;
    const lines: string[] = new Array<string>(events.length + 2);
    lines[0] = headerLine;
    let hash = genesisHash(headerLine);
    for (let i = 0; i < events.length; i++) {
      const canonical = canonicalEventJson(events[i]!);
      hash = chainHash(hash, canonical);
      lines[i + 1] = eventLineOf(canonical, hash);
    }
    lines[events.length + 1] = '';
    this.cache = { headerLine, count: events.length, hash };
    return lines.join('\n');
  }

  /**
   * The hash of the last line of the chain: what `readNdjson(log.toNdjson(header)).finalHash`
   * returns, computed without building the text. For an empty log it is the genesis hash, which
   * depends only on the header. Pass the same `header` as to {@link EventLog.toNdjson}.
   *
   * Repeated calls with the same header extend the previous computation instead of rehashing
   * every event.
   *
   * @param header the header fields the log is (or would be) written with.
   * @returns the final chain hash as 64 lowercase hex digits.
   * @throws Error under the same conditions as {@link EventLog.toNdjson}.
   */
  finalHash(header?: LogHeaderFields): string {
    const headerLine = headerLineOf(header);
    const events = this.list;
    let from = 0;
    let hash: string;
    const cache = this.cache;
    if (cache !== undefined && cache.headerLine === headerLine && cache.count <= events.length) {
      from = cache.count;
      hash = cache.hash;
    } else {
      hash = genesisHash(headerLine);
    }
    for (let i = from; i < events.length; i++) {
      hash = chainHash(hash, canonicalEventJson(events[i]!));
    }
    this.cache = { headerLine, count: events.length, hash };
    return hash;
  }
}

/** What {@link readNdjson} returns: the parsed, verified contents of an NDJSON log. */
export interface ReadLog {
  /** The header line: format, version and the writer's metadata fields. */
  readonly header: LogHeader;
  /** The events of every complete, verified line, in file order, without their hashes. */
  readonly events: LoggedEvent[];
  /** Problems that were tolerated, such as a truncated last line; empty for a clean log. */
  readonly warnings: string[];
  /** The hash of the last verified line, or the genesis hash if the log has no events. */
  readonly finalHash: string;
}

/** `typeof`-style name of a parsed JSON value, for error messages. */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** A short rendering of a parsed JSON value for error messages. */
function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? text.slice(0, 37) + '...' : text;
}

/** Parses a JSON object, or explains why it is not one (as the `detail` of an error). */
function parseObject(line: string): { value: Record<string, unknown> } | { problem: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (error) {
    return { problem: `invalid JSON (${error instanceof Error ? error.message : String(error)})` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { problem: `expected a JSON object, found ${kindOf(parsed)}` };
  }
  const deep = tooDeep(parsed);
  if (deep !== null) {
    return {
      problem: `field "${deep.split('.')[0]}" nested deeper than ${MAX_JSON_DEPTH} levels (at ${deep})`,
    };
  }
  return { value: parsed as Record<string, unknown> };
}

/** @internal True for lines made only of whitespace (including the empty line). */
export function isBlank(line: string): boolean {
  return line.trim() === '';
}

/** Reads and checks the header line; throws a {@link LogFormatError} at line 1. */
function readHeader(line: string): LogHeader {
  if (isBlank(line)) {
    throw new LogFormatError(1, 'missing header: expected {"format":"mmnsim-log","version":1,...}');
  }
  const parsed = parseObject(line);
  if ('problem' in parsed) throw new LogFormatError(1, `invalid header: ${parsed.problem}`);
  const header = parsed.value;
  if (!('format' in header)) {
    throw new LogFormatError(1, 'invalid header: field "format" missing (expected "mmnsim-log")');
  }
  if (header.format !== FORMAT) {
    throw new LogFormatError(
      1,
      `invalid header: field "format" must be "mmnsim-log", found ${shown(header.format)}`,
    );
  }
  if (!('version' in header)) {
    throw new LogFormatError(1, `invalid header: field "version" missing (expected ${VERSION})`);
  }
  if (header.version !== VERSION) {
    throw new LogFormatError(
      1,
      `unsupported log version ${shown(header.version)} (this reader supports version ${VERSION})`,
    );
  }
  return header as unknown as LogHeader;
}

/** The fields of an event line, with the JSON type each must have, in canonical order. */
const EVENT_FIELDS: readonly (readonly [string, 'number' | 'string' | 'json'])[] = [
  ['seq', 'number'],
  ['step', 'number'],
  ['time', 'number'],
  ['ctx', 'string'],
  ['task', 'number'],
  ['type', 'string'],
  ['data', 'json'],
];

/** Names of every field an event line may have. */
const LINE_FIELDS = new Set(['seq', 'step', 'time', 'ctx', 'task', 'type', 'data', 'hash']);

/**
 * Checks the shape of a parsed event line and returns the event and its stored hash, or the
 * detail of what is wrong.
 */
function checkEventFields(
  value: Record<string, unknown>,
): { event: LoggedEvent; hash: string } | { problem: string } {
  for (const [name, kind] of EVENT_FIELDS) {
    if (!(name in value)) {
      return {
        problem: `field "${name}" missing (expected ${kind === 'json' ? 'a JSON value' : 'a ' + kind})`,
      };
    }
    if (kind !== 'json' && typeof value[name] !== kind) {
      return {
        problem: `field "${name}" must be a ${kind}, found ${kindOf(value[name])} ${shown(value[name])}`,
      };
    }
  }
  if (!('hash' in value)) {
    return { problem: 'field "hash" missing (expected 64 lowercase hex digits)' };
  }
  const hash = value.hash;
  if (typeof hash !== 'string' || !HEX64.test(hash)) {
    return {
      problem: `field "hash" must be 64 lowercase hex digits, found ${kindOf(hash)} ${shown(hash)}`,
    };
  }
  for (const key of Object.keys(value)) {
    if (!LINE_FIELDS.has(key)) {
      return {
        problem: `unexpected field "${key}" (event lines have seq, step, time, ctx, task, type, data, hash)`,
      };
    }
  }
  const event: LoggedEvent = {
    seq: value.seq as number,
    step: value.step as number,
    time: value.time as number,
    ctx: value.ctx as string,
    task: value.task as number,
    type: value.type as string,
    data: value.data as JsonValue,
  };
  return { event, hash };
}

/**
 * @internal Checks an NDJSON log one line at a time (the header first, then each event line):
 * fields, types, increasing `seq`, canonical form and the hash chain. {@link readNdjson} and the
 * streaming reader share it.
 */
export class LineVerifier {
  /** The header line, parsed. */
  readonly header: LogHeader;
  /** The hash of the last verified line (the genesis hash before the first event). */
  hash: string;
  private previousSeq: number | undefined;

  /** @param headerLine line 1 of the log. @throws LogFormatError at line 1. */
  constructor(headerLine: string) {
    this.header = readHeader(headerLine);
    this.hash = genesisHash(headerLine);
  }

  /**
   * Verifies one event line and returns its event; or null when the line is not JSON and
   * `mayBeTruncated` (the unterminated last line of a log cut short).
   * @throws LogFormatError naming `lineNo` and the field.
   */
  line(lineNo: number, line: string, mayBeTruncated: boolean): LoggedEvent | null {
    const parsed = parseObject(line);
    if ('problem' in parsed) {
      if (mayBeTruncated) return null;
      throw new LogFormatError(lineNo, parsed.problem);
    }
    const checked = checkEventFields(parsed.value);
    if ('problem' in checked) throw new LogFormatError(lineNo, checked.problem);
    const { event, hash: found } = checked;
    const previousSeq = this.previousSeq;
    if (previousSeq !== undefined && !(event.seq > previousSeq)) {
      throw new LogFormatError(
        lineNo,
        `field "seq" must be greater than the previous line's seq ${previousSeq}, found ${event.seq}`,
      );
    }
    const suffix = ',"hash":"' + found + '"}';
    if (!line.endsWith(suffix)) {
      throw new LogFormatError(
        lineNo,
        'field "hash" must be the last field of the line, written as ,"hash":"<64 hex digits>"}',
      );
    }
    const canonical = line.slice(0, line.length - suffix.length) + '}';
    const expected = chainHash(this.hash, canonical);
    if (expected !== found) {
      throw new LogFormatError(
        lineNo,
        `hash mismatch (corrupted or tampered line): expected ${expected}, found ${found}`,
      );
    }
    if (canonicalEventJson(event) !== canonical) {
      throw new LogFormatError(
        lineNo,
        'line not in canonical form (expected the fields seq, step, time, ctx, task, type, data, ' +
          'hash in this order, serialised as JSON.stringify does, without whitespace)',
      );
    }
    this.hash = found;
    this.previousSeq = event.seq;
    return event;
  }
}

/**
 * Reads an NDJSON event log written by {@link EventLog.toNdjson} and verifies it line by line:
 * the header, each line's fields and their types, strictly increasing `seq`, and the hash chain.
 *
 * Any problem throws a {@link LogFormatError} naming the 1-based line, the field and what was
 * expected, except one: a last line that does not end with `"\n"` and is not valid JSON is taken
 * to be a write cut short (a crash mid-write) and is dropped with the warning
 * `line N: truncated last line ignored (M bytes)`. A complete, valid last line without the
 * trailing newline is accepted silently, and so are blank lines after the last event; blank
 * lines between events are an error.
 *
 * The hash chain detects a changed, inserted, removed or reordered line anywhere before the last
 * line. It cannot tell a log whose last lines were removed from a shorter run: compare
 * `finalHash` with a hash recorded elsewhere to detect that.
 *
 * Each event line must be in canonical form (the fields in the order seq, step, time, ctx, task,
 * type, data, hash, serialised as `JSON.stringify` does), so that writing the events read back
 * gives the same bytes and the same hashes.
 *
 * @param text the whole NDJSON text.
 * @returns the header, the verified events (without their hashes), the warnings, and the hash
 *   of the last verified line (the genesis hash if there is no event).
 * @throws LogFormatError if the log is empty, its header is missing, invalid or of another
 *   version, or any line but a truncated last one is invalid.
 */
export function readNdjson(text: string): ReadLog {
  if (typeof text !== 'string')
    throw new LogFormatError(1, `expected the log's text, got ${typeof text}`);
  // A UTF-8 byte-order mark (some editors write one) is not part of the log.
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  if (text === '') throw new LogFormatError(1, 'empty log: expected a header line');
  const lines = text.split('\n');
  const cr = lines.findIndex((l, i) => l.endsWith('\r') && (i < lines.length - 1 || l !== ''));
  if (cr >= 0) {
    throw new LogFormatError(
      cr + 1,
      'line ends with a carriage return (CRLF line endings): mmnsim logs use "\\n" only; convert the file back (dos2unix)',
    );
  }
  // After a final "\n", split yields one empty string that is not a line.
  let lastTerminated = text.endsWith('\n');
  if (lastTerminated) lines.pop();
  // Blank lines after the last event are tolerated; a line followed by them was terminated.
  while (lines.length > 1 && isBlank(lines[lines.length - 1]!)) {
    lines.pop();
    lastTerminated = true;
  }

  const verifier = new LineVerifier(lines[0]!);
  const events: LoggedEvent[] = [];
  const warnings: string[] = [];

  for (let i = 1; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!;
    if (isBlank(line)) {
      throw new LogFormatError(lineNo, 'blank line inside the log (expected an event line)');
    }
    const event = verifier.line(lineNo, line, i === lines.length - 1 && !lastTerminated);
    if (event === null) {
      const bytes = Buffer.byteLength(line, 'utf8');
      warnings.push(`line ${lineNo}: truncated last line ignored (${bytes} bytes)`);
      break;
    }
    events.push(event);
  }

  return { header: verifier.header, events, warnings, finalHash: verifier.hash };
}
