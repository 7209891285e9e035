// Issue 23: every field of a replay file that describes the run is checked on replay (the
// violation, the strategy, the plugins by value), deep nesting is a format error, a BOM is
// accepted; NDJSON logs give a clear error for CRLF and deep `data`.
import { describe, expect, it } from '@jest/globals';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import * as core from '@mmnsim/core';
import {
  definePlugin,
  explore,
  LogFormatError,
  makeReplayFile,
  minimise,
  parseReplayFile,
  readNdjson,
  ReplayDivergenceError,
  replayFile,
  ReplayFileError,
  serviceId,
  Simulation,
} from '@mmnsim/core';
import type { ReplayFile, Scenario } from '@mmnsim/core';
// @ts-expect-error -- plain ESM fixture shared with a child process
import { windowScenario } from './fixtures/replay-scenario.mjs';

const window = (windowScenario as (c: typeof core) => Scenario)(core);
const lookup = (id: string) => (id === window.id ? window : undefined);
const failure = explore(window, { strategy: { kind: 'pct', depth: 2 }, iterations: 300 })
  .failures[0]!;
const file = makeReplayFile(window, failure);

/** Replays `text`: 'ok' with the run's meaning, or the error's class and field. */
function outcome(text: string, scenarios = lookup): string {
  try {
    const f = parseReplayFile(text);
    const { result, sim } = replayFile(f, scenarios);
    return `ok ${sim.finalHash()} ${result.violations[0]?.kind ?? '-'}`;
  } catch (e) {
    if (e instanceof ReplayFileError) return `ReplayFileError ${e.field}`;
    if (e instanceof ReplayDivergenceError) return 'ReplayDivergenceError';
    throw e;
  }
}

describe('replay files: every field is checked', () => {
  it('the file of a PCT failure keeps its strategy, and it is re-derived on replay', () => {
    expect(file.strategy).toEqual(failure.strategy);
    expect(outcome(JSON.stringify(file))).toBe(`ok ${file.finalHash} bug`);
  });

  it('a file that invents, drops or rewords the violation does not match; the error names it', () => {
    const { violation: _v, ...none } = file;
    expect(outcome(JSON.stringify(none))).toBe('ReplayFileError violation');
    const other = { ...file, violation: { kind: 'deadlock', message: file.violation!.message } };
    expect(outcome(JSON.stringify(other))).toBe('ReplayFileError violation');
    const worded = { ...file, violation: { kind: 'bug', message: 'something else' } };
    expect(() => replayFile(worded, lookup)).toThrow(/"violation": the replayed run gives/);
  });

  it('a strategy that does not give the schedule, or is not a strategy, is rejected', () => {
    const s = failure.strategy as { depth: number; steps: number };
    const edited = { ...file, strategy: { kind: 'pct', depth: s.depth, steps: s.steps + 7 } };
    expect(() => replayFile(edited as ReplayFile, lookup)).toThrow(
      /"strategy": .* gives another schedule/,
    );
    expect(outcome(JSON.stringify({ ...file, strategy: 'nonsense' }))).toBe(
      'ReplayFileError strategy',
    );
    expect(outcome(JSON.stringify({ ...file, strategy: null }))).toBe(`ok ${file.finalHash} bug`);
  });

  it('a minimised schedule is recorded as { kind: "minimised", from } and replays', () => {
    const random = explore(window, { strategy: 'random', iterations: 300, seed: 11 }).failures[0]!;
    const m = minimise(window, random);
    expect(m.schedule).not.toEqual(random.schedule);
    const f = makeReplayFile(window, { ...m, strategy: random.strategy });
    expect(f.strategy).toEqual({ kind: 'minimised', from: { kind: 'random' } });
    expect(outcome(JSON.stringify(f))).toBe(`ok ${f.finalHash} bug`);
  });

  it('no single-byte edit that changes the file’s meaning is accepted as matching', () => {
    const text = JSON.stringify(file);
    const meaning = core.replayFile(parseReplayFile(text), lookup);
    const base = `ok ${meaning.sim.finalHash()} bug`;
    let accepted = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      const to = /[0-9]/.test(c)
        ? String((Number(c) + 1) % 10)
        : /[a-y]/.test(c)
          ? String.fromCharCode(c.charCodeAt(0) + 1)
          : c === '"'
            ? "'"
            : 'z';
      const edited = text.slice(0, i) + to + text.slice(i + 1);
      let parsed: ReplayFile;
      try {
        parsed = parseReplayFile(edited);
      } catch (e) {
        expect(e).toBeInstanceOf(ReplayFileError);
        continue;
      }
      const got = outcome(edited);
      if (got.startsWith('ok')) {
        accepted++;
        // Accepted only if it still says the same thing.
        expect(got).toBe(base);
        expect(parsed).toEqual(file);
      }
    }
    expect(accepted).toBe(0);
  });

  it('plugin options compare by value: key order does not matter', () => {
    const Opts = serviceId<{ a: number; b: string }>('@test/opts:Opts');
    const plugin = definePlugin({
      id: 'opts',
      schema: z.strictObject({ a: z.number(), b: z.string() }),
      token: Opts,
      module: new ContainerModule(() => {}),
    });
    const withPlugin: Scenario = {
      ...window,
      id: 'window-plugin',
      options: () => ({ ...window.options(), plugins: [plugin({ a: 1, b: 'x' })] }),
    };
    const f = makeReplayFile(withPlugin, failure);
    const reordered = { ...f, plugins: [{ id: 'opts', options: { b: 'x', a: 1 } }] };
    const find = (id: string) => (id === withPlugin.id ? withPlugin : undefined);
    expect(outcome(JSON.stringify(reordered), find)).toBe(`ok ${f.finalHash} bug`);
    const changed = { ...f, plugins: [{ id: 'opts', options: { b: 'y', a: 1 } }] };
    expect(outcome(JSON.stringify(changed), find)).toBe('ReplayFileError plugins');
  });

  it('deep nesting is a format error naming the field; a BOM is accepted', () => {
    const deep = JSON.stringify(file).replace(
      /"strategy":\{[^}]*\}/,
      `"strategy":${'['.repeat(100_000)}${']'.repeat(100_000)}`,
    );
    expect(() => parseReplayFile(deep)).toThrow(/"strategy": nested deeper than 64 levels/);
    expect(outcome('\uFEFF' + JSON.stringify(file))).toBe(`ok ${file.finalHash} bug`);
  });
});

describe('NDJSON logs: CRLF, BOM and deep nesting', () => {
  const sim = Simulation.create({ seed: 3, cpus: 2 });
  sim.spawn('a', 0, function* () {
    yield* sim.scheduler.preempt();
  });
  sim.run();
  const text = sim.toNdjson();

  it('CRLF line endings get a clear message naming the line', () => {
    expect(() => readNdjson(text.replace(/\n/g, '\r\n'))).toThrow(
      /line 1: line ends with a carriage return \(CRLF line endings\)/,
    );
  });

  it('a byte-order mark is accepted', () => {
    expect(readNdjson('\uFEFF' + text).finalHash).toBe(sim.finalHash());
  });

  it('data nested 10^5 deep is a LogFormatError, not a RangeError', () => {
    const lines = text.split('\n');
    lines[2] = lines[2]!.replace(
      /"data":\{.*\},"hash"/,
      `"data":${'['.repeat(1e5)}${']'.repeat(1e5)},"hash"`,
    );
    const bad = lines.join('\n');
    expect(() => readNdjson(bad)).toThrow(LogFormatError);
    expect(() => readNdjson(bad)).toThrow(/line 3: field "data" nested deeper than 64 levels/);
  });
});
