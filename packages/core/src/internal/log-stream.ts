/**
 * Event logs as files, written and verified line by line in bounded memory: the in-memory
 * {@link EventLog} keeps every event and builds one string, which fails at a few million events;
 * a 10^7-event log goes through these instead. Same format and hash chain as
 * `EventLog.toNdjson` / `readNdjson` (the line checks are shared), synchronous file calls only,
 * so simulation code stays free of Promises. Its own file because it is the only part of the
 * log that touches the file system.
 */
import { Buffer } from 'node:buffer';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import type { EventSink } from './bus.js';
import type { AnySimEvent, LoggedEvent } from './events.js';
import {
  canonicalEventJson,
  chainHash,
  eventLineOf,
  genesisHash,
  headerLineOf,
  isBlank,
  LineVerifier,
  LogFormatError,
} from './log.js';
import type { LogHeader, LogHeaderFields } from './log.js';

/** Options of {@link NdjsonFileWriter}. */
export interface NdjsonFileWriterOptions {
  /** Which event types the file records (default every type); see `EventLogOptions.keep`. */
  readonly keep?: (type: string) => boolean;
  /** Characters buffered before a write to the file (default 1 MiB). */
  readonly bufferChars?: number;
}

/**
 * An event sink that writes each event to an NDJSON file as it is emitted, extending the hash
 * chain line by line: memory stays bounded by the write buffer whatever the run's length. The
 * file is byte-identical to `EventLog.toNdjson(header)` of the same events.
 *
 * `flush()` pushes the buffer to the file (a run killed after a flush keeps every line up to
 * it); `close()` flushes, closes the file and returns the final hash. A simulation given
 * `logFile` makes one and closes it at the end of `run()`.
 *
 * @example
 * const w = new NdjsonFileWriter('/tmp/run.ndjson', sim.header());
 * sim.bus.addSink(w);
 * sim.run();
 * const hash = w.close();
 * verifyNdjsonFile('/tmp/run.ndjson').finalHash === hash; // true
 */
export class NdjsonFileWriter implements EventSink {
  private fd: number | null;
  private hash: string;
  private chunks: string[] = [];
  private buffered = 0;
  private written = 0;
  private readonly keepType: ((type: string) => boolean) | undefined;
  private readonly limit: number;

  /**
   * Creates (or truncates) `path` and writes the header line.
   * @param path the file to write.
   * @param header the header fields (as for `EventLog.toNdjson`).
   * @throws Error if `header` uses a reserved key, or the file cannot be opened (the error
   *   names the path).
   */
  constructor(
    readonly path: string,
    header: LogHeaderFields = {},
    options: NdjsonFileWriterOptions = {},
  ) {
    const headerLine = headerLineOf(header);
    this.keepType = options.keep;
    this.limit = options.bufferChars ?? 1 << 20;
    try {
      this.fd = openSync(path, 'w');
    } catch (e) {
      throw new Error(
        `NdjsonFileWriter: cannot write the log file ${path}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    this.hash = genesisHash(headerLine);
    this.push(headerLine + '\n');
  }

  /** See `EventSink.keeps`. */
  keeps(type: string): boolean {
    const keep = this.keepType;
    return keep === undefined || keep(type);
  }

  /**
   * Appends one event: its canonical line with the next chain hash.
   * @throws Error if the payload is not JSON data, or the file is closed.
   */
  record(event: AnySimEvent | LoggedEvent): void {
    const canonical = canonicalEventJson(event);
    this.hash = chainHash(this.hash, canonical);
    this.written++;
    this.push(eventLineOf(canonical, this.hash) + '\n');
  }

  /** Events written so far. */
  get count(): number {
    return this.written;
  }

  /** The chain hash of the last line written (the genesis hash before any event). */
  get finalHash(): string {
    return this.hash;
  }

  /** Writes the buffered lines to the file. */
  flush(): void {
    if (this.buffered === 0) return;
    if (this.fd === null) throw new Error(`NdjsonFileWriter: ${this.path} is closed`);
    const text = this.chunks.length === 1 ? this.chunks[0]! : this.chunks.join('');
    this.chunks = [];
    this.buffered = 0;
    writeSync(this.fd, text);
  }

  /** Flushes and closes the file (idempotent); returns the final hash. */
  close(): string {
    if (this.fd !== null) {
      this.flush();
      closeSync(this.fd);
      this.fd = null;
    }
    return this.hash;
  }

  private push(line: string): void {
    if (this.fd === null) throw new Error(`NdjsonFileWriter: ${this.path} is closed`);
    this.chunks.push(line);
    this.buffered += line.length;
    if (this.buffered >= this.limit) this.flush();
  }
}

/** What {@link verifyNdjsonFile} returns. */
export interface VerifiedLogFile {
  /** The header line. */
  readonly header: LogHeader;
  /** Number of verified events. */
  readonly events: number;
  /** Problems tolerated (a truncated last line), as `readNdjson` reports them. */
  readonly warnings: string[];
  /** The hash of the last verified line. */
  readonly finalHash: string;
  /** The last verified event, or null for a log without events. */
  readonly last: LoggedEvent | null;
}

/**
 * Reads and verifies an NDJSON log file line by line, in bounded memory (one read buffer and
 * one line at a time), with exactly the checks of `readNdjson` (a BOM is skipped, CRLF is an
 * error, a truncated unterminated last line is dropped with a warning, blank lines only at the
 * end). `onEvent` sees each verified event in order.
 *
 * @throws LogFormatError naming the line for any problem, or Error naming the path if the file
 *   cannot be read.
 */
export function verifyNdjsonFile(
  path: string,
  options: { readonly onEvent?: (event: LoggedEvent) => void; readonly chunkBytes?: number } = {},
): VerifiedLogFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new Error(`verifyNdjsonFile: cannot read ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const onEvent = options.onEvent;
  const buf = Buffer.allocUnsafe(options.chunkBytes ?? 1 << 20);
  const decoder = new StringDecoder('utf8');
  let verifier: LineVerifier | null = null;
  let pending = '';
  let lineNo = 0;
  let events = 0;
  let firstBlank = 0;
  let last: LoggedEvent | null = null;
  let first = true;
  const warnings: string[] = [];

  const complete = (line: string): void => {
    lineNo++;
    if (line.endsWith('\r')) {
      throw new LogFormatError(
        lineNo,
        'line ends with a carriage return (CRLF line endings): mmnsim logs use "\\n" only; convert the file back (dos2unix)',
      );
    }
    if (verifier === null) {
      verifier = new LineVerifier(line);
      return;
    }
    if (isBlank(line)) {
      if (firstBlank === 0) firstBlank = lineNo;
      return;
    }
    if (firstBlank !== 0)
      throw new LogFormatError(firstBlank, 'blank line inside the log (expected an event line)');
    const e = verifier.line(lineNo, line, false)!;
    events++;
    last = e;
    onEvent?.(e);
  };

  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      let text = decoder.write(buf.subarray(0, n));
      if (first) {
        if (text.startsWith('\uFEFF')) text = text.slice(1);
        first = false;
      }
      let from = 0;
      for (;;) {
        const nl = text.indexOf('\n', from);
        if (nl < 0) break;
        const line = pending + text.slice(from, nl);
        pending = '';
        complete(line);
        from = nl + 1;
      }
      pending += text.slice(from);
    }
    pending += decoder.end();
  } finally {
    closeSync(fd);
  }
  if (verifier === null) {
    if (pending === '' || isBlank(pending)) {
      throw new LogFormatError(
        1,
        lineNo === 0 && pending === ''
          ? 'empty log: expected a header line'
          : 'missing header: expected {"format":"mmnsim-log","version":1,...}',
      );
    }
    verifier = new LineVerifier(pending);
    lineNo = 1;
  } else if (pending !== '' && !isBlank(pending)) {
    lineNo++;
    if (firstBlank !== 0)
      throw new LogFormatError(firstBlank, 'blank line inside the log (expected an event line)');
    if (pending.endsWith('\r')) {
      throw new LogFormatError(
        lineNo,
        'line ends with a carriage return (CRLF line endings): mmnsim logs use "\\n" only; convert the file back (dos2unix)',
      );
    }
    const e = (verifier as LineVerifier).line(lineNo, pending, true);
    if (e === null) {
      warnings.push(
        `line ${lineNo}: truncated last line ignored (${Buffer.byteLength(pending, 'utf8')} bytes)`,
      );
    } else {
      events++;
      last = e;
      onEvent?.(e);
    }
  }
  const v: LineVerifier = verifier;
  return { header: v.header, events, warnings, finalHash: v.hash, last };
}
