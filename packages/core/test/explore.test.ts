import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import * as core from '@mmnsim/core';
import {
  explore,
  KernelBug,
  makeReplayFile,
  minimise,
  parseReplayFile,
  pctGuarantee,
  replay,
  ReplayDivergenceError,
  replayFile,
  ReplayFileError,
} from '@mmnsim/core';
import type { Scenario } from '@mmnsim/core';
// @ts-expect-error -- plain ESM fixture shared with a child process
import { windowScenario } from './fixtures/replay-scenario.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const window = (windowScenario as (c: typeof core) => Scenario)(core);

/** Two tasks on two CPUs with `a` and `b` slices (a − 1 and b − 1 preemption points). */
function twoTasks(a: number, b: number): Scenario {
  return {
    id: `two-tasks-${a}-${b}`,
    options: () => ({ cpus: 2, log: false }),
    setup(sim) {
      for (const [name, n, cpu] of [
        ['A', a, 0],
        ['B', b, 1],
      ] as const) {
        sim.spawn(name, cpu, function* () {
          for (let i = 0; i < n - 1; i++) yield* sim.scheduler.preempt();
        });
      }
    },
  };
}

/**
 * Independent count of the interleavings of two always-runnable tasks with `a` and `b` slices
 * that have at most `bound` preemptions (a switch away from a task that still has slices).
 */
function countInterleavings(a: number, b: number, bound: number): number {
  const go = (ra: number, rb: number, prev: 'A' | 'B' | null, pre: number): number => {
    if (pre > bound) return 0;
    if (ra === 0 && rb === 0) return 1;
    let n = 0;
    for (const next of ['A', 'B'] as const) {
      const left = next === 'A' ? ra : rb;
      if (left === 0) continue;
      const prevLeft = prev === 'A' ? ra : prev === 'B' ? rb : 0;
      const preempts = prev !== null && prev !== next && prevLeft > 0 ? 1 : 0;
      n += go(next === 'A' ? ra - 1 : ra, next === 'B' ? rb - 1 : rb, next, pre + preempts);
    }
    return n;
  };
  return go(a, b, null, 0);
}

describe('bounded-exhaustive exploration (issue 9)', () => {
  it.each([0, 1, 2])(
    'enumerates exactly the interleavings with at most %i preemptions, then reports the space exhausted',
    (bound) => {
      const schedules = new Set<string>();
      const report = explore(twoTasks(3, 4), {
        strategy: { kind: 'exhaustive', preemptions: bound },
        iterations: 10_000,
        stopOnFirst: false,
        onIteration: (_i, r) => {
          expect(r.preemptions).toBeLessThanOrEqual(bound);
          schedules.add(r.schedule.join(','));
        },
      });
      const expected = countInterleavings(3, 4, bound);
      expect(report.iterations).toBe(expected);
      expect(schedules.size).toBe(expected); // all distinct
      expect(report.exhausted).toBe(true);
    },
  );

  it('stops at the iteration budget without claiming exhaustion', () => {
    const report = explore(twoTasks(3, 4), {
      strategy: { kind: 'exhaustive', preemptions: 2 },
      iterations: 5,
    });
    expect(report.iterations).toBe(5);
    expect(report.exhausted).toBe(false);
  });

  it('finds the depth-2 window bug with one preemption, not with none', () => {
    expect(
      explore(window, { strategy: { kind: 'exhaustive', preemptions: 0 }, iterations: 1000 })
        .failures,
    ).toHaveLength(0);
    const r = explore(window, {
      strategy: { kind: 'exhaustive', preemptions: 1 },
      iterations: 1000,
    });
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]!.preemptions).toBe(1);
  });
});

describe('campaign reports (issue 9)', () => {
  it('computes the PCT guarantee from the measured tasks, steps and clean runs', () => {
    const report = explore(twoTasks(5, 5), { strategy: { kind: 'pct', depth: 2 }, iterations: 50 });
    expect(report.pct).toHaveLength(1);
    const g = report.pct[0]!;
    expect(g).toMatchObject({ depth: 2, tasks: 2, steps: report.maxSteps, runs: 50 });
    expect(g.missProbability).toBeCloseTo((1 - 1 / (2 * report.maxSteps)) ** 50, 12);
    expect(pctGuarantee(3, 4, 100, 0).missProbability).toBe(1);
  });

  it('the portfolio alternates random and PCT depth 2 and 3', () => {
    const kinds: string[] = [];
    explore(twoTasks(3, 3), {
      strategy: 'portfolio',
      iterations: 6,
      onIteration: (_i, r) => kinds.push(JSON.stringify(r.strategy)),
    });
    expect(kinds[0]).toBe('{"kind":"random"}');
    expect(kinds[1]).toContain('"depth":2');
    expect(kinds[2]).toContain('"depth":3');
    expect(kinds[3]).toBe('{"kind":"random"}');
  });

  it('collects distinct violations once per kind and location when not stopping at the first', () => {
    const report = explore(window, { strategy: 'random', iterations: 300, stopOnFirst: false });
    expect(report.failures.length).toBeGreaterThan(1);
    expect(report.distinct).toHaveLength(1);
    expect(report.distinct[0]).toMatchObject({
      kind: 'bug',
      firstIteration: report.failures[0]!.iteration,
      count: report.failures.length,
    });
  });

  it('reports progress and honours a wall-time budget given as a clock', () => {
    let t = 0;
    const seen: number[] = [];
    const report = explore(twoTasks(3, 3), {
      strategy: 'random',
      iterations: 100,
      now: () => (t += 10),
      timeBudgetMs: 45,
      onProgress: (p) => seen.push(p.iterations),
    });
    expect(report.iterations).toBeLessThan(100);
    expect(seen).toEqual(Array.from({ length: report.iterations }, (_, i) => i + 1));
  });
});

describe('minimisation (issue 9)', () => {
  it('shrinks a random failing schedule to one preemption that still fails the same way', () => {
    const report = explore(window, { strategy: 'random', iterations: 300, seed: 11 });
    const f = report.failures[0]!;
    const m = minimise(window, f);
    expect(m.kind).toBe('bug');
    expect(m.after.preemptions).toBeLessThanOrEqual(m.before.preemptions);
    expect(m.after.preemptions).toBe(1);
    const again = replay(window, { seed: m.seed, schedule: m.schedule });
    expect(again.result.violations[0]!.kind).toBe('bug');
  });
});

describe('replay files (issue 9)', () => {
  const failure = explore(window, { strategy: { kind: 'pct', depth: 2 }, iterations: 300 })
    .failures[0]!;
  const file = makeReplayFile(window, failure);
  const lookup = (id: string) => (id === window.id ? window : undefined);

  it('round-trips through JSON and replays to the same final hash and violation', () => {
    const parsed = parseReplayFile(JSON.stringify(file));
    expect(parsed).toEqual(file);
    const { sim, result } = replayFile(parsed, lookup);
    expect(sim.finalHash()).toBe(file.finalHash);
    expect(result.violations[0]!.kind).toBe(file.violation!.kind);
  });

  it('replays in a fresh Node process to the same final hash', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mmnsim-replay-'));
    const path = join(dir, 'run.json');
    writeFileSync(path, JSON.stringify(file));
    const out = execFileSync(process.execPath, [join(here, 'fixtures', 'replay-child.mjs'), path], {
      encoding: 'utf8',
    });
    expect(JSON.parse(out)).toEqual({ hash: file.finalHash, kind: 'bug' });
  });

  it('can stop at a step for inspection', () => {
    const { result, sim } = replayFile(file, lookup, { stopAtStep: 3 });
    expect(result.reason).toBe('stopped');
    expect(result.steps).toBe(3);
    expect(sim.scheduler.tasks.length).toBe(2);
  });

  it('a malformed file is an error naming the field', () => {
    expect(() => parseReplayFile('{')).toThrow(ReplayFileError);
    expect(() => parseReplayFile(JSON.stringify({ ...file, schedule: [0, -1] }))).toThrow(
      /"schedule.1"/,
    );
    expect(() => parseReplayFile(JSON.stringify({ ...file, seed: 'x' }))).toThrow(/"seed"/);
    expect(() => parseReplayFile(JSON.stringify({ ...file, extra: 1 }))).toThrow(/"extra"/);
    expect(() => parseReplayFile(JSON.stringify({ ...file, finalHash: 'abc' }))).toThrow(
      /"finalHash": a 64-digit hex sha256/,
    );
  });

  it('a tampered file is rejected naming what does not match', () => {
    expect(() => replayFile({ ...file, scenario: 'nope' }, lookup)).toThrow(
      /"scenario": no scenario "nope"/,
    );
    expect(() => replayFile({ ...file, plugins: [{ id: 'mm', options: null }] }, lookup)).toThrow(
      /"plugins"/,
    );
    expect(() => replayFile({ ...file, finalHash: 'f'.repeat(64) }, lookup)).toThrow(
      /"finalHash": the replayed log ends in/,
    );
  });

  it('a diverging replay says at which choice, rather than running something else', () => {
    const bad = { ...file, schedule: [7, ...file.schedule.slice(1)] };
    expect(() => replayFile(bad, lookup)).toThrow(ReplayDivergenceError);
    expect(() => replayFile(bad, lookup)).toThrow(/replay diverged at choice 0/);
  });

  it('a KernelBug in the scenario is what the file records', () => {
    expect(file.violation!.message).toContain(new KernelBug('checker saw the window open').message);
  });
});
