// Issue 23: logs written and read as streams (line by line to a file, with the hash chain), so
// a log's size is not bounded by one string; byte-identical to EventLog.toNdjson.
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import {
  EventLog,
  LogFormatError,
  NdjsonFileWriter,
  readNdjson,
  Simulation,
  verifyNdjsonFile,
} from '@mmnsim/core';
import type { LoggedEvent } from '@mmnsim/core';

const dir = mkdtempSync(join(tmpdir(), 'mmnsim-log-stream-'));

function workload(sim: Simulation): void {
  for (const cpu of [0, 1]) {
    sim.spawn(`w${cpu}`, cpu, function* () {
      for (let i = 0; i < 20; i++) yield* sim.scheduler.preempt();
    });
  }
}

describe('streamed logs', () => {
  it('a simulation with logFile writes exactly what toNdjson() gives, and it verifies', () => {
    const path = join(dir, 'sim.ndjson');
    const sim = Simulation.create({ seed: 5, cpus: 2, strategy: 'random', logFile: path });
    workload(sim);
    sim.run();
    const text = readFileSync(path, 'utf8');
    expect(text).toBe(sim.toNdjson());
    const seen: LoggedEvent[] = [];
    const v = verifyNdjsonFile(path, { onEvent: (e) => seen.push(e), chunkBytes: 97 });
    expect(v.finalHash).toBe(sim.finalHash());
    expect(v.events).toBe(sim.log!.length);
    expect(seen).toEqual(readNdjson(text).events);
    expect(sim.fileLog!.finalHash).toBe(sim.finalHash());
  });

  it('log: false with logFile keeps nothing in memory and still writes the whole log', () => {
    const a = join(dir, 'a.ndjson');
    const sim = Simulation.create({ seed: 5, cpus: 2, strategy: 'random', log: false, logFile: a });
    workload(sim);
    sim.run();
    expect(sim.log).toBeNull();
    const ref = Simulation.create({ seed: 5, cpus: 2, strategy: 'random' });
    workload(ref);
    ref.run();
    expect(readFileSync(a, 'utf8')).toBe(ref.toNdjson());
  });

  it('many events with multi-byte payloads across small read chunks verify in order', () => {
    const path = join(dir, 'big.ndjson');
    const w = new NdjsonFileWriter(path, { seed: 1 }, { bufferChars: 1000 });
    const mem = new EventLog();
    for (let i = 0; i < 20_000; i++) {
      const e: LoggedEvent = {
        seq: i,
        step: i,
        time: i * 100,
        ctx: 'cpu0',
        task: 0,
        type: 'test.ü',
        data: { s: 'ñ€𝄞'.repeat(i % 5), i },
      };
      w.record(e);
      mem.record(e);
    }
    const hash = w.close();
    expect(hash).toBe(mem.finalHash({ seed: 1 }));
    const v = verifyNdjsonFile(path, { chunkBytes: 61 });
    expect(v).toMatchObject({ events: 20_000, finalHash: hash, warnings: [] });
    expect(v.last!.seq).toBe(19_999);
  });

  it('a cut-short file keeps its verified prefix with a warning; tampering names the line', () => {
    const path = join(dir, 'cut.ndjson');
    const sim = Simulation.create({ seed: 2, cpus: 2, logFile: path });
    workload(sim);
    sim.run();
    const text = readFileSync(path, 'utf8');
    const cut = text.slice(0, text.length - 30);
    writeFileSync(path, cut);
    const v = verifyNdjsonFile(path);
    expect(v.warnings).toEqual([expect.stringMatching(/truncated last line ignored/)]);
    expect(v.events).toBe(readNdjson(cut).events.length);
    const lines = text.split('\n');
    lines[3] = lines[3]!.replace('"time":', '"time":1');
    writeFileSync(path, lines.join('\n'));
    expect(() => verifyNdjsonFile(path)).toThrow(LogFormatError);
    expect(() => verifyNdjsonFile(path)).toThrow(/line 4: hash mismatch/);
    writeFileSync(path, text.replace(/\n/g, '\r\n'));
    expect(() => verifyNdjsonFile(path)).toThrow(/line 1: line ends with a carriage return/);
    writeFileSync(path, text);
    appendFileSync(path, '\n\n');
    expect(verifyNdjsonFile(path).finalHash).toBe(sim.finalHash());
    writeFileSync(path, '');
    expect(() => verifyNdjsonFile(path)).toThrow(/line 1: empty log/);
    expect(() => verifyNdjsonFile(join(dir, 'missing.ndjson'))).toThrow(/cannot read .*missing/);
  });
});
