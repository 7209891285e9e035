import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { EventBus } from '../src/internal/bus.js';
import type { LoggedEvent } from '../src/internal/events.js';
import { EventLog, LogFormatError, readNdjson } from '../src/internal/log.js';
import type { LogHeaderFields } from '../src/internal/log.js';
import { RunState } from '../src/internal/run-state.js';

const header: LogHeaderFields = { seed: 42, strategy: 'random', scenario: 'toy', plugins: ['a'] };

/** Runs a small hand-written "simulation" that emits core events into a log. */
function sampleLog(options?: { keep?: (type: string) => boolean }): {
  bus: EventBus;
  log: EventLog;
} {
  const state = new RunState();
  const bus = new EventBus(state);
  const log = new EventLog(options);
  bus.addSink(log);
  bus.emit('sim.start', { seed: 42, cpus: 2, devices: ['nic0'] });
  state.ctx = 'cpu0';
  state.task = 0;
  state.step = 1;
  bus.emit('sched.spawn', { id: 1, name: 'worker', on: 'cpu1' });
  bus.emit('sched.spawn', { id: 2, name: 'dma «ünï» \u2028 "q"', on: 'nic0' });
  state.step = 2;
  state.time = 1500;
  bus.emit('sched.sleep', { until: 3000 });
  state.ctx = 'cpu1';
  state.task = 1;
  state.step = 3;
  bus.emit('sched.switch', { from: 0, to: 1 });
  bus.emit('sched.block', { on: 'mmap_lock' });
  state.ctx = '-';
  state.task = -1;
  bus.emit('sched.idle', { from: 1500, to: 3000 });
  state.time = 3000;
  bus.emit('sched.wake', { id: 1, on: 'mmap_lock' });
  bus.emit('oracle.violation', {
    kind: 'stale-tlb',
    message: 'pfn 7 mapped after free',
    evidence: [3, 5],
    oracle: 'tlb',
  });
  bus.emit('sim.end', { reason: 'done', steps: 3, time: 3000 });
  return { bus, log };
}

/** Splits NDJSON text into its lines (without newlines). */
function linesOf(text: string): string[] {
  return text.split('\n');
}

/** Expects `fn` to throw a LogFormatError at `line` whose message matches `pattern`. */
function expectFormatError(fn: () => unknown, line: number, pattern: RegExp): LogFormatError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(LogFormatError);
  const error = caught as LogFormatError;
  expect(error.name).toBe('LogFormatError');
  expect(error.line).toBe(line);
  expect(error.message).toMatch(new RegExp(`^line ${line}: `));
  expect(error.message).toMatch(pattern);
  return error;
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

describe('EventLog', () => {
  it('records every event the bus emits, by reference and in order', () => {
    const state = new RunState();
    const bus = new EventBus(state);
    const log = new EventLog();
    bus.addSink(log);
    const first = bus.emit('sched.spawn', { id: 1, name: 'a', on: 'cpu0' });
    const second = bus.emit('sched.exit', { id: 1, name: 'a' });
    expect(log.length).toBe(2);
    expect(log.events[0]).toBe(first);
    expect(log.events[1]).toBe(second);
    expect(log.events.map((e) => e.seq)).toEqual([0, 1]);
  });

  it('writes a header line, one line per event in the fixed field order, each ending in a newline', () => {
    const { log } = sampleLog();
    const text = log.toNdjson(header);
    expect(text.endsWith('\n')).toBe(true);
    const lines = linesOf(text);
    expect(lines).toHaveLength(log.length + 2);
    expect(lines[lines.length - 1]).toBe('');
    expect(lines[0]).toBe(
      '{"format":"mmnsim-log","version":1,"seed":42,"strategy":"random","scenario":"toy","plugins":["a"]}',
    );
    expect(lines[2]).toMatch(
      /^\{"seq":1,"step":1,"time":0,"ctx":"cpu0","task":0,"type":"sched.spawn","data":\{"id":1,"name":"worker","on":"cpu1"\},"hash":"[0-9a-f]{64}"\}$/,
    );
  });

  it('chains hashes as documented: genesis over the header line, then over the previous hash and the line without its hash', () => {
    const { log } = sampleLog();
    const lines = linesOf(log.toNdjson(header));
    let hash = sha256('mmnsim-log/1\n' + lines[0]);
    for (const line of lines.slice(1, -1)) {
      const at = line.lastIndexOf(',"hash":"');
      const canonical = line.slice(0, at) + '}';
      hash = sha256(hash + '\n' + canonical);
      expect(line.slice(at)).toBe(`,"hash":"${hash}"}`);
    }
    expect(log.finalHash(header)).toBe(hash);
  });

  it('round-trips: reading the written text gives equal events, the header and the same final hash', () => {
    const { log } = sampleLog();
    const text = log.toNdjson(header);
    const read = readNdjson(text);
    expect(read.events).toEqual(log.events);
    expect(read.header).toEqual({ format: 'mmnsim-log', version: 1, ...header });
    expect(read.warnings).toEqual([]);
    expect(read.finalHash).toBe(log.finalHash(header));
    expect(read.finalHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('writes events read back to byte-identical text', () => {
    const { log } = sampleLog();
    const text = log.toNdjson(header);
    const copy = new EventLog();
    for (const event of readNdjson(text).events) copy.record(event);
    expect(copy.toNdjson(header)).toBe(text);
  });

  it('serialises the same events twice to byte-identical text', () => {
    const a = sampleLog().log;
    const b = sampleLog().log;
    expect(a.toNdjson(header)).toBe(b.toNdjson(header));
    expect(a.toNdjson(header)).toBe(a.toNdjson(header));
    expect(a.finalHash(header)).toBe(b.finalHash(header));
  });

  it('gives the genesis hash as the final hash of an empty log, and it depends on the header', () => {
    const log = new EventLog();
    const text = log.toNdjson();
    expect(text).toBe('{"format":"mmnsim-log","version":1}\n');
    expect(log.finalHash()).toBe(sha256('mmnsim-log/1\n{"format":"mmnsim-log","version":1}'));
    expect(readNdjson(text)).toEqual({
      header: { format: 'mmnsim-log', version: 1 },
      events: [],
      warnings: [],
      finalHash: log.finalHash(),
    });
    expect(log.finalHash({ seed: 1 })).not.toBe(log.finalHash({ seed: 2 }));
  });

  it('keeps finalHash current as events are added after an earlier call', () => {
    const state = new RunState();
    const bus = new EventBus(state);
    const log = new EventLog();
    bus.addSink(log);
    bus.emit('sched.spawn', { id: 1, name: 'a', on: 'cpu0' });
    const early = log.finalHash(header);
    bus.emit('sched.exit', { id: 1, name: 'a' });
    const late = log.finalHash(header);
    expect(late).not.toBe(early);
    expect(late).toBe(readNdjson(log.toNdjson(header)).finalHash);
    expect(log.finalHash()).toBe(readNdjson(log.toNdjson()).finalHash);
  });

  it('rejects header fields that use the reserved keys format and version', () => {
    const log = new EventLog();
    expect(() => log.toNdjson({ version: 2 })).toThrow(/"version" is reserved/);
    expect(() => log.finalHash({ format: 'x' })).toThrow(/"format" is reserved/);
  });

  it('with a keep filter records only the kept types, and the bus does not build events nobody wants', () => {
    const state = new RunState();
    const bus = new EventBus(state);
    const log = new EventLog({ keep: (type) => type.startsWith('sched.') });
    bus.addSink(log);
    expect(log.keeps('sched.spawn')).toBe(true);
    expect(log.keeps('oracle.violation')).toBe(false);
    expect(bus.wants('oracle.violation')).toBe(false);
    expect(bus.wants('sched.spawn')).toBe(true);
    const dropped = bus.emit('oracle.violation', {
      kind: 'k',
      message: 'm',
      evidence: [],
      oracle: 'o',
    });
    expect(dropped).toBeUndefined();
    bus.emit('sched.spawn', { id: 1, name: 'a', on: 'cpu0' });
    bus.emit('sim.end', { reason: 'done', steps: 0, time: 0 });
    expect(log.events.map((e) => e.type)).toEqual(['sched.spawn']);
  });

  it('ofType gives the recorded events of one type, in order', () => {
    const { log } = sampleLog();
    const spawns = log.ofType('sched.spawn');
    expect(spawns.map((e) => e.data.name)).toEqual(['worker', 'dma «ünï» \u2028 "q"']);
    expect(spawns.map((e) => e.seq)).toEqual(
      log.events.filter((e) => e.type === 'sched.spawn').map((e) => e.seq),
    );
    expect(log.ofType('srcu.flip')).toEqual([]);
  });

  it('keeps every type by default', () => {
    const log = new EventLog();
    expect(log.keeps('anything.at.all')).toBe(true);
  });
});

describe('readNdjson', () => {
  it('rejects a corrupted middle line (one character changed inside data) with its line number and "hash mismatch"', () => {
    const { log } = sampleLog();
    const lines = linesOf(log.toNdjson(header));
    // Line 3 of the file (index 2) is the spawn of task 1, named "worker".
    expect(lines[2]).toContain('"name":"worker"');
    lines[2] = lines[2]!.replace('"name":"worker"', '"name":"workes"');
    const error = expectFormatError(() => readNdjson(lines.join('\n')), 3, /hash mismatch/);
    expect(error.message).toMatch(
      /^line 3: hash mismatch \(corrupted or tampered line\): expected [0-9a-f]{64}, found [0-9a-f]{64}$/,
    );
  });

  it('rejects a changed number inside data at the right line', () => {
    const { log } = sampleLog();
    const lines = linesOf(log.toNdjson(header));
    expect(lines[4]).toContain('"until":3000');
    lines[4] = lines[4]!.replace('"until":3000', '"until":3001');
    expectFormatError(() => readNdjson(lines.join('\n')), 5, /hash mismatch/);
  });

  it('rejects invalid JSON in a middle line with its line number', () => {
    const { log } = sampleLog();
    const lines = linesOf(log.toNdjson(header));
    expect(lines[4]).toContain('"step":');
    lines[4] = lines[4]!.replace('"step":', '"step"');
    expectFormatError(() => readNdjson(lines.join('\n')), 5, /invalid JSON/);
  });

  it('rejects a log with a middle line removed, at the line after the gap (the chain breaks)', () => {
    const { log } = sampleLog();
    const lines = linesOf(log.toNdjson(header));
    lines.splice(4, 1);
    expectFormatError(() => readNdjson(lines.join('\n')), 5, /hash mismatch/);
  });

  it('rejects two lines swapped: the chain breaks at the first of them', () => {
    const { log } = sampleLog();
    const lines = linesOf(log.toNdjson(header));
    [lines[3], lines[4]] = [lines[4]!, lines[3]!];
    expectFormatError(() => readNdjson(lines.join('\n')), 4, /hash mismatch/);
  });

  it('rejects a repeated line, naming the line where seq stops increasing', () => {
    const { log } = sampleLog();
    const lines = linesOf(log.toNdjson(header));
    lines.splice(4, 0, lines[3]!);
    expectFormatError(
      () => readNdjson(lines.join('\n')),
      5,
      /field "seq" must be greater than the previous line's seq 2, found 2/,
    );
  });

  it('drops a truncated last line with one warning naming the line, and keeps the events before it', () => {
    const { log } = sampleLog();
    const text = log.toNdjson(header);
    const lines = linesOf(text);
    const lastLine = lines[lines.length - 2]!;
    const cut = text.length - 1 - Math.floor(lastLine.length / 2);
    const truncated = text.slice(0, cut);
    const read = readNdjson(truncated);
    expect(read.events).toEqual(log.events.slice(0, -1));
    const lastLineNo = lines.length - 1;
    const fragmentBytes = Buffer.byteLength(truncated.slice(truncated.lastIndexOf('\n') + 1));
    expect(read.warnings).toEqual([
      `line ${lastLineNo}: truncated last line ignored (${fragmentBytes} bytes)`,
    ]);
    const shorter = new EventLog();
    for (const event of log.events.slice(0, -1)) shorter.record(event);
    expect(read.finalHash).toBe(shorter.finalHash(header));
  });

  it('accepts a complete last line without its trailing newline, with no warning', () => {
    const { log } = sampleLog();
    const text = log.toNdjson(header);
    const read = readNdjson(text.slice(0, -1));
    expect(read.events).toEqual(log.events);
    expect(read.warnings).toEqual([]);
    expect(read.finalHash).toBe(log.finalHash(header));
  });

  it('accepts blank lines after the last event', () => {
    const { log } = sampleLog();
    const read = readNdjson(log.toNdjson(header) + '\n\n');
    expect(read.events).toEqual(log.events);
    expect(read.warnings).toEqual([]);
  });

  it('rejects a blank line between events', () => {
    const { log } = sampleLog();
    const lines = linesOf(log.toNdjson(header));
    lines.splice(3, 0, '');
    expectFormatError(() => readNdjson(lines.join('\n')), 4, /blank line/);
  });

  it('rejects an invalid line even when it is the last one, if it ends with a newline', () => {
    const { log } = sampleLog();
    const text = log.toNdjson(header);
    const truncatedThenTerminated = text.slice(0, -10) + '\n';
    expectFormatError(
      () => readNdjson(truncatedThenTerminated),
      linesOf(text).length - 1,
      /invalid JSON/,
    );
  });

  it('rejects a tampered last line that is valid JSON even without its trailing newline', () => {
    const { log } = sampleLog();
    const text = log.toNdjson(header).slice(0, -1).replace('"reason":"done"', '"reason":"gone"');
    expectFormatError(() => readNdjson(text), linesOf(text).length, /hash mismatch/);
  });

  it('rejects an empty text at line 1', () => {
    expectFormatError(() => readNdjson(''), 1, /empty log/);
  });

  it('rejects a missing or invalid header at line 1', () => {
    const { log } = sampleLog();
    const lines = linesOf(log.toNdjson(header));
    expectFormatError(() => readNdjson(lines.slice(1).join('\n')), 1, /field "format" missing/);
    expectFormatError(() => readNdjson('\n' + lines.slice(1).join('\n')), 1, /missing header/);
    expectFormatError(() => readNdjson('{"format":"mmnsim-lo'), 1, /invalid header: invalid JSON/);
    expectFormatError(() => readNdjson('[1,2]\n'), 1, /expected a JSON object, found array/);
    expectFormatError(
      () => readNdjson('{"format":"other","version":1}\n'),
      1,
      /field "format" must be "mmnsim-log", found "other"/,
    );
    expectFormatError(
      () => readNdjson('{"format":"mmnsim-log"}\n'),
      1,
      /field "version" missing \(expected 1\)/,
    );
  });

  it('rejects a header of another version at line 1, naming the supported version', () => {
    expectFormatError(
      () => readNdjson('{"format":"mmnsim-log","version":2}\n'),
      1,
      /unsupported log version 2 \(this reader supports version 1\)/,
    );
  });

  it('names the field and the expected type when a field is missing or of the wrong type', () => {
    const { log } = sampleLog();
    const lines = linesOf(log.toNdjson(header));
    const broken = (edit: (line: string) => string): string => {
      const copy = [...lines];
      copy[2] = edit(copy[2]!);
      return copy.join('\n');
    };
    expectFormatError(
      () => readNdjson(broken((l) => l.replace('"step":1,', ''))),
      3,
      /field "step" missing \(expected a number\)/,
    );
    expectFormatError(
      () => readNdjson(broken((l) => l.replace('"time":0', '"time":"0"'))),
      3,
      /field "time" must be a number, found string "0"/,
    );
    expectFormatError(
      () => readNdjson(broken((l) => l.replace('"ctx":"cpu0"', '"ctx":0'))),
      3,
      /field "ctx" must be a string, found number 0/,
    );
    expectFormatError(
      () => readNdjson(broken((l) => l.replace(/,"data":\{[^}]*\}/, ''))),
      3,
      /field "data" missing/,
    );
    expectFormatError(
      () => readNdjson(broken((l) => l.replace(/"hash":"[0-9a-f]{64}"/, '"hash":"abc"'))),
      3,
      /field "hash" must be 64 lowercase hex digits/,
    );
    expectFormatError(
      () => readNdjson(broken((l) => l.replace(/,"hash":"[0-9a-f]{64}"/, ''))),
      3,
      /field "hash" missing/,
    );
    expectFormatError(
      () => readNdjson(broken((l) => l.replace('{"seq"', '{"extra":1,"seq"'))),
      3,
      /unexpected field "extra"/,
    );
    expectFormatError(() => readNdjson(broken(() => '42')), 3, /expected a JSON object/);
  });

  it('rejects a line whose hash is valid over non-canonical bytes', () => {
    // A writer that reorders fields but chains hashes correctly is still rejected, so that
    // writing the events read back always reproduces the same bytes.
    const headerLine = '{"format":"mmnsim-log","version":1}';
    const genesis = sha256('mmnsim-log/1\n' + headerLine);
    const canonical = '{"step":0,"seq":0,"time":0,"ctx":"-","task":-1,"type":"t","data":null}';
    const hash = sha256(genesis + '\n' + canonical);
    const text = `${headerLine}\n${canonical.slice(0, -1)},"hash":"${hash}"}\n`;
    expectFormatError(() => readNdjson(text), 2, /not in canonical form/);
  });

  it('reads events of types no plugin declares, as plain JSON', () => {
    const log = new EventLog();
    const event: LoggedEvent = {
      seq: 3,
      step: 1,
      time: 10,
      ctx: 'iommu0',
      task: 4,
      type: 'mydev.tlb.fill',
      data: { va: 4096, pfn: 7, flags: [true, null, 'rw'] },
    };
    log.record(event);
    expect(readNdjson(log.toNdjson()).events).toEqual([event]);
  });
});

describe('RunResult event counts', () => {
  it('events counts what the log kept, eventsBuilt what anyone wanted (with the log off, the observers)', async () => {
    const { Mutex, Simulation } = await import('@mmnsim/core');
    const run = (log: boolean, observe: boolean) => {
      const sim = Simulation.create({ seed: 1, cpus: 1, log });
      if (observe) sim.bus.on('lock.acquired').subscribe(() => undefined);
      const m = new Mutex(sim.kernel, 'm');
      sim.spawn('t', 0, function* () {
        for (let i = 0; i < 3; i++) {
          yield* m.lock();
          m.unlock();
        }
      });
      return sim.run();
    };
    const logged = run(true, false);
    expect(logged.events).toBeGreaterThan(6);
    expect(logged.eventsBuilt).toBe(logged.events);
    // With the log off, the core's own observers (lockdep watches task exits) still get theirs;
    // an observer of lock.acquired adds exactly the three acquisitions.
    const bare = run(false, false);
    const observed = run(false, true);
    expect(observed.events).toBe(0);
    expect(bare.eventsBuilt).toBeLessThan(logged.eventsBuilt);
    expect(observed.eventsBuilt - bare.eventsBuilt).toBe(3);
  });
});
