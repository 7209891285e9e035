// Issue 23: the seeded fuzz suite over every parser a user feeds — replay files, NDJSON logs
// (in memory and streamed from a file), simulation and campaign options, and the CLIs' flags.
// Properties: no exception other than the documented error types, and no input that changes
// the run's meaning is accepted as matching. CI runs 2,000 inputs per parser (seed 23);
// `pnpm fuzz` runs MMNSIM_FUZZ_RUNS (100,000) per parser and prints the figures.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  ConfigError,
  explore,
  LogFormatError,
  makeReplayFile,
  parseReplayFile,
  readNdjson,
  ReplayDivergenceError,
  replayFile,
  ReplayFileError,
  Simulation,
  verifyNdjsonFile,
} from '@mmnsim/core';
import type { ReplayFile, Scenario } from '@mmnsim/core';
import { parseZooArgs, UsageError, ZOO } from '@mmnsim/zoo';
import { parseDemoArgs } from '../src/demo/args.js';
import { parseReplayArgs } from '../src/replay/args.js';

const RUNS = Number(process.env.MMNSIM_FUZZ_RUNS ?? 2000);
const SEED = 23;
const TIMEOUT = Math.max(60_000, RUNS * 20);
const figures: Record<string, { inputs: number; accepted: number }> = {};
function count(parser: string, accepted: boolean): void {
  const f = (figures[parser] ??= { inputs: 0, accepted: 0 });
  f.inputs++;
  if (accepted) f.accepted++;
}
function check<T extends [unknown, ...unknown[]]>(p: fc.IPropertyWithHooks<T>): void {
  fc.assert(p, { numRuns: RUNS, seed: SEED, endOnFailure: true });
}

/** A two-task scenario with a window bug (as the core replay tests use). */
const window: Scenario = {
  id: 'fuzz-window',
  options: () => ({ cpus: 2 }),
  setup(sim) {
    let open = false;
    sim.spawn('opener', 0, function* () {
      yield* sim.scheduler.preempt();
      open = true;
      yield* sim.scheduler.preempt();
      open = false;
    });
    sim.spawn('checker', 1, function* () {
      for (let i = 0; i < 3; i++) yield* sim.scheduler.preempt();
      if (open) throw new Error('window open');
    });
  },
};
const lookup = (id: string) => (id === window.id ? window : undefined);
const failure = explore(window, { strategy: { kind: 'pct', depth: 2 }, iterations: 200 })
  .failures[0]!;
const file = makeReplayFile(window, failure);
const fileText = JSON.stringify(file);

/** One edit of a text: a byte changed, inserted or deleted, or a slice replaced. */
const textEdit = (text: string): fc.Arbitrary<string> =>
  fc.oneof(
    fc
      .tuple(fc.nat(text.length - 1), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }))
      .map(([i, c]) => text.slice(0, i) + c + text.slice(i + 1)),
    fc
      .tuple(fc.nat(text.length), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }))
      .map(([i, c]) => text.slice(0, i) + c + text.slice(i)),
    fc.nat(text.length - 1).map((i) => text.slice(0, i) + text.slice(i + 1)),
    fc
      .tuple(fc.nat(text.length), fc.nat(40), fc.string({ maxLength: 20 }))
      .map(([i, n, c]) => text.slice(0, i) + c + text.slice(i + n)),
  );

/** The fields of a replay file that say what the run is (the strategy is checked apart). */
function meaning(f: ReplayFile): string {
  const plugins = f.plugins.map((p) => JSON.stringify(p));
  return JSON.stringify([f.scenario, plugins, f.seed, f.schedule, f.finalHash, f.violation]);
}

describe(`fuzz (seed ${SEED}, ${RUNS} inputs per parser)`, () => {
  it(
    'replay files: only ReplayFileError / ReplayDivergenceError; accepted files mean the same run',
    () => {
      const fieldSwap = fc
        .tuple(fc.constantFrom(...Object.keys(file), 'extra'), fc.jsonValue({ maxDepth: 3 }))
        .map(([k, v]) => JSON.stringify({ ...file, [k]: v }));
      const input = fc.oneof(
        textEdit(fileText),
        fieldSwap,
        fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
        fc.string({ maxLength: 60 }),
      );
      check(
        fc.property(input, (text) => {
          let accepted = false;
          try {
            const parsed = parseReplayFile(text);
            replayFile(parsed, lookup);
            accepted = true;
            expect(meaning(parsed)).toBe(meaning(file));
            const s = parsed.strategy;
            const ok =
              s === null ||
              JSON.stringify(s) === JSON.stringify(file.strategy) ||
              (typeof s === 'object' && !Array.isArray(s) && s.kind === 'minimised');
            expect(ok).toBe(true);
          } catch (e) {
            if (!(e instanceof ReplayFileError) && !(e instanceof ReplayDivergenceError)) throw e;
          }
          count('replay file', accepted);
        }),
      );
    },
    TIMEOUT,
  );

  const sim = Simulation.create({ seed: 4, cpus: 2, strategy: 'random' });
  for (const cpu of [0, 1]) {
    sim.spawn(`w${cpu}`, cpu, function* () {
      for (let i = 0; i < 4; i++) yield* sim.scheduler.preempt();
    });
  }
  sim.run();
  const logText = sim.toNdjson({ scenario: 'fuzz' });
  const logEvents = sim.log!.events;
  const dir = mkdtempSync(join(tmpdir(), 'mmnsim-fuzz-'));
  const logPath = join(dir, 'log.ndjson');

  it(
    'NDJSON logs (readNdjson and verifyNdjsonFile): only LogFormatError; accepted logs are a prefix of the run',
    () => {
      const lines = logText.split('\n');
      const lineEdit = fc.oneof(
        fc.tuple(fc.nat(lines.length - 2), fc.nat(lines.length - 2)).map(([a, b]) => {
          const l = [...lines];
          [l[a], l[b]] = [l[b]!, l[a]!];
          return l.join('\n');
        }),
        fc.nat(lines.length - 2).map((a) => lines.filter((_, i) => i !== a).join('\n')),
        fc
          .tuple(fc.nat(lines.length - 1), fc.jsonValue({ maxDepth: 3 }))
          .map(([a, v]) => [...lines.slice(0, a), JSON.stringify(v), ...lines.slice(a)].join('\n')),
      );
      const input = fc.oneof(textEdit(logText), lineEdit, fc.string({ maxLength: 80 }));
      check(
        fc.property(input, (text) => {
          let mem: { hash: string; n: number } | string;
          try {
            const r = readNdjson(text);
            mem = { hash: r.finalHash, n: r.events.length };
            expect(r.header).toEqual(readNdjson(logText).header);
            expect(r.events).toEqual(logEvents.slice(0, r.events.length));
          } catch (e) {
            if (!(e instanceof LogFormatError)) throw e;
            mem = e.message;
          }
          writeFileSync(logPath, text);
          let streamed: { hash: string; n: number } | string;
          try {
            const v = verifyNdjsonFile(logPath, { chunkBytes: 256 });
            streamed = { hash: v.finalHash, n: v.events };
          } catch (e) {
            if (!(e instanceof LogFormatError)) throw e;
            streamed = e.message;
          }
          expect(typeof streamed).toBe(typeof mem);
          if (typeof mem !== 'string') expect(streamed).toEqual(mem);
          count('ndjson log', typeof mem !== 'string');
          count('ndjson log file', typeof streamed !== 'string');
        }),
      );
    },
    TIMEOUT,
  );

  it(
    'simulation options: only ConfigError; accepted options are the documented ones',
    () => {
      const value = fc.oneof(
        fc.anything({ maxDepth: 2 }),
        fc.integer({ min: -2, max: 300 }),
        fc.constantFrom(Number.NaN, Infinity, 1.5, 2 ** 53, '1', true, null, [], {}),
      );
      const keys = fc.constantFrom(
        'seed',
        'cpus',
        'devices',
        'maxSteps',
        'quantumNs',
        'stopOnViolation',
        'lockdep',
        'log',
        'maxStepWork',
        'strategy',
        'plugins',
        'bogus',
      );
      check(
        fc.property(fc.dictionary(keys, value, { maxKeys: 5 }), (extra) => {
          let accepted = false;
          try {
            const s = Simulation.create({ seed: 1, ...extra });
            accepted = true;
            expect(Number.isSafeInteger(s.options.seed) && s.options.seed >= 0).toBe(true);
            expect(s.options.cpus >= 1 && s.options.cpus <= 256).toBe(true);
          } catch (e) {
            if (!(e instanceof ConfigError)) throw e;
          }
          count('simulation options', accepted);
        }),
      );
    },
    TIMEOUT,
  );

  it(
    'campaign options: only ConfigError; accepted campaigns run within their budget',
    () => {
      const small = fc.oneof(
        fc.integer({ min: 1, max: 2 }),
        fc.constantFrom(0, -1, 1.5, Number.NaN, '2', null, 2 ** 60),
      );
      const strategy = fc.oneof(
        fc.constantFrom('random', 'pct', 'portfolio', 'round-robin', 'bogus', 7),
        fc.record({ kind: fc.constantFrom('pct', 'exhaustive', 'random', 'x'), depth: small }),
        fc.record({ kind: fc.constant('exhaustive'), preemptions: small }),
        fc.anything({ maxDepth: 2 }),
      );
      const opts = fc.record(
        {
          iterations: small,
          seed: fc.oneof(fc.nat(100), fc.constantFrom(-1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER)),
          stopOnFirst: fc.oneof(fc.boolean(), fc.constantFrom('yes', 0)),
          strategy,
          timeBudgetMs: fc.constantFrom(undefined, 10, -1, Number.NaN),
          stopOnError: fc.constantFrom(undefined, true, 'x'),
        },
        { requiredKeys: ['iterations'] },
      );
      check(
        fc.property(opts, (o) => {
          let accepted = false;
          try {
            const r = explore(window, o as never);
            accepted = true;
            expect(r.iterations).toBeLessThanOrEqual(o.iterations as number);
          } catch (e) {
            if (!(e instanceof ConfigError)) throw e;
          }
          count('campaign options', accepted);
        }),
      );
    },
    TIMEOUT,
  );

  it(
    'CLI flags (zoo, demo, replay): only UsageError; accepted numbers are the decimal text given',
    () => {
      const ids = ZOO.map((v) => v.id);
      const numberish = fc.oneof(
        fc.nat().map(String),
        fc.constantFrom(
          '',
          '0',
          '1',
          '01',
          '0x10',
          '1e21',
          '1,,2',
          '1,2',
          '-1',
          '9007199254740991',
          '9007199254740992',
          ' 3',
          '3 ',
          '١',
          'NaN',
          '1.0',
          '+2',
        ),
        fc.string({ maxLength: 6 }),
      );
      const flag = fc.constantFrom(
        '--seeds',
        '--seed',
        '--iterations',
        '--schedules',
        '--variant',
        '--only',
        '--stop-at',
        '--tail',
        '--all',
        '--bogus',
        '-x',
      );
      const argv = fc.array(
        fc.oneof(
          flag,
          numberish,
          fc.constantFrom(...ids.slice(0, 2)),
          fc.tuple(flag, numberish).map(([f, n]) => `${f}=${n}`),
        ),
        { maxLength: 6 },
      );
      const numbersIn = (args: string[]): Set<string> => {
        const out = new Set<string>();
        for (const a of args) for (const part of a.split(/[=,]/)) out.add(part);
        return out;
      };
      const plain = (n: number, args: string[]): void => {
        expect(Number.isSafeInteger(n) && n >= 0).toBe(true);
        expect(numbersIn(args).has(String(n))).toBe(true);
      };
      check(
        fc.property(argv, (args) => {
          for (const [name, parse] of [
            ['zoo flags', () => parseZooArgs(args, ids)],
            ['demo flags', () => parseDemoArgs(args, ids)],
            ['replay flags', () => parseReplayArgs(args)],
          ] as const) {
            let accepted = false;
            try {
              const r = parse() as {
                iterations?: number;
                seeds?: number[];
                schedules?: number;
                seed?: number;
                stopAt?: number;
                tail?: number;
              };
              accepted = true;
              if (r.iterations !== undefined) plain(r.iterations, args);
              for (const s of r.seeds ?? []) {
                plain(s, args);
                expect(Number.isSafeInteger(s + (r.iterations ?? 2000) - 1)).toBe(true);
              }
              if (name === 'demo flags') {
                if (args.some((a) => a.startsWith('--schedules'))) plain(r.schedules!, args);
                if (args.some((a) => a.startsWith('--seed'))) plain(r.seed!, args);
                expect(Number.isSafeInteger(r.seed! + Math.max(r.schedules!, 2000) - 1)).toBe(true);
              }
              if (r.stopAt !== undefined) plain(r.stopAt, args);
              if (r.tail !== undefined) plain(r.tail, args);
            } catch (e) {
              if (!(e instanceof UsageError)) throw e;
            }
            count(name, accepted);
          }
        }),
      );
      if (process.env.MMNSIM_FUZZ_RUNS !== undefined)
        process.stderr.write(`fuzz figures (seed ${SEED}): ${JSON.stringify(figures)}\n`);
    },
    TIMEOUT,
  );
});
