/**
 * The `mmnsim` command line (commander): run, explore, replay, minimize, import strace, zoo,
 * schema, plugins (and export and report, from visual.ts). Every command maps errors to the exit codes of `errors.ts` and prints one or
 * two lines (a stack only with --debug). Its own file because it is the only place that touches
 * process.argv, stdout, stderr and the exit status.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import cliProgress from 'cli-progress';
import { Command, CommanderError, Option } from 'commander';
import { stringify } from 'yaml';
import {
  explore,
  formatInterleaving,
  interleaving,
  makeReplayFile,
  minimise,
  parseReplayFile,
  replay,
  ReplayDivergenceError,
  ReplayFileError,
  replayFile,
  runScenario,
} from '@mmnsim/core';
import type {
  CampaignStrategy,
  ExploreReport,
  ReplayFile,
  Scenario,
  StrategySpec,
} from '@mmnsim/core';
import { runZoo, zooScenario } from '@mmnsim/zoo';
import { ATTACH_KINDS } from './attach.js';
import type { AttachKind } from './attach.js';
import { Exit, InputError, UsageError } from './errors.js';
import { scenarioJsonSchema } from './json-schema.js';
import { NumberFlagError, parseDurationMs, parseNumberList, parseWholeNumber } from './numbers.js';
import { ScenarioRunError } from './ops.js';
import { builtinPlugins, pluginFactories, loadPluginModule } from './plugins.js';
import type { FoundPlugin } from './plugins.js';
import { loadScenarioFile, readInput } from './scenario.js';
import type { LoadedScenario } from './scenario.js';
import { importStrace, StraceFormatError } from './strace-import.js';
import {
  CAMPAIGN_FILE,
  registerVisualCommands,
  REPORT_FILE,
  writeCampaignReport,
} from './visual.js';
import { recordIterations } from '@mmnsim/report';
import { z } from 'zod';

/** Where the command writes; tests pass their own. */
export interface MainIo {
  /** Standard output. */
  readonly out: (text: string) => void;
  /** Standard error. */
  readonly err: (text: string) => void;
  /** True if stderr is a terminal (progress bars are drawn only then). */
  readonly tty: boolean;
  /** The environment (NO_COLOR). */
  readonly env: Readonly<Record<string, string | undefined>>;
}

const QUIET = ['sched.switch', 'srcu.*', 'lock.*', 'mm.pt.alloc', 'mm.frame.write', 'mm.vma.*'];
const STRATEGIES = ['pct', 'random', 'round-robin', 'portfolio', 'exhaustive'] as const;

class Done extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

function strategyOf(name: string, depth: number, preemptions: number): CampaignStrategy {
  switch (name) {
    case 'pct':
      return { kind: 'pct', depth };
    case 'random':
      return 'random';
    case 'round-robin':
      return 'round-robin';
    case 'portfolio':
      return 'portfolio';
    case 'exhaustive':
      return { kind: 'exhaustive', preemptions };
  }
  throw new UsageError(`--strategy: "${name}" is not one of ${STRATEGIES.join(', ')}`);
}

function attachList(values: readonly string[] | undefined): AttachKind[] {
  return (values ?? []).map((v) => {
    if (!(ATTACH_KINDS as readonly string[]).includes(v))
      throw new UsageError(`--attach: "${v}" is not one of ${ATTACH_KINDS.join(', ')}`);
    return v as AttachKind;
  });
}

/**
 * Runs the command with `argv` (without `node` and the script) and returns its exit status.
 *
 * ## Example
 * ```ts
 * const code = await main(['explore', 'examples/scenarios/kvm-correct.yaml', '--schedules', '50']);
 * ```
 */
export async function main(argv: readonly string[], io?: Partial<MainIo>): Promise<number> {
  const o: MainIo = {
    out: io?.out ?? ((t) => void process.stdout.write(t)),
    err: io?.err ?? ((t) => void process.stderr.write(t)),
    tty: io?.tty ?? process.stderr.isTTY === true,
    env: io?.env ?? process.env,
  };
  const debug = argv.includes('--debug');
  const color = o.env.NO_COLOR === undefined && o.tty;
  const bold = (s: string): string => (color ? `\u001b[1m${s}\u001b[22m` : s);
  const line = (s = ''): void => o.out(s + '\n');
  const program = new Command('mmnsim');
  program
    .description(
      'Deterministic simulation of the Linux MMU notifier subsystem and its secondary MMUs',
    )
    .option('--debug', 'print stack traces of errors')
    .configureOutput({ writeOut: (s) => o.out(s), writeErr: (s) => o.err(s) })
    .exitOverride()
    .showHelpAfterError(false)
    .addHelpText(
      'after',
      '\nExample:\n  mmnsim explore examples/scenarios/kvm-seq-after-gup.yaml --schedules 500\n\nExit status: 0 clean, 1 violation, 2 bad usage or input, 3 internal error.',
    );

  const exampleHelp = (cmd: Command, ex: string): Command =>
    cmd.addHelpText('after', `\nExample:\n  ${ex}`);
  const count =
    (flag: string, min = 0, max?: number) =>
    (v: string) =>
      parseWholeNumber(flag, v, min, max);

  // --- run --------------------------------------------------------------------------------
  exampleHelp(
    program
      .command('run <scenario>')
      .description('run one schedule of a scenario, print a summary and write its event log')
      .option('--seed <n>', 'the seed', count('--seed'), 1)
      .addOption(
        new Option('--strategy <name>', 'the schedule')
          .choices(['round-robin', 'random', 'pct'])
          .default('round-robin'),
      )
      .option('--log <file>', 'where to write the NDJSON event log (default <id>.ndjson)')
      .option('--attach <kind...>', `attach a subscriber (${ATTACH_KINDS.join(', ')})`)
      .option('--json', 'print the result as JSON on stdout'),
    'mmnsim run examples/scenarios/rdma-odp-correct.yaml --seed 3 --log run.ndjson',
  ).action(
    async (
      path: string,
      opts: { seed: number; strategy: string; log?: string; attach?: string[]; json?: boolean },
    ) => {
      const ls = await loadScenarioFile(path, { attach: attachList(opts.attach) });
      const { sim, result } = runScenario(
        ls.scenario,
        opts.seed,
        (opts.strategy === 'pct' ? { kind: 'pct' } : opts.strategy) as StrategySpec,
        { log: true },
      );
      if (result.error !== undefined) throw result.error;
      const logPath = opts.log ?? `${ls.scenario.id}.ndjson`;
      writeFileSync(logPath, sim.toNdjson({ scenario: ls.scenario.id }));
      const v = result.violations;
      if (opts.json === true)
        line(
          JSON.stringify({
            scenario: ls.scenario.id,
            seed: opts.seed,
            reason: result.reason,
            steps: result.steps,
            events: result.events,
            violations: v.map((x) => ({ kind: x.kind, message: x.message })),
            log: logPath,
          }),
        );
      else {
        line(
          `${bold(ls.scenario.id)}: ${result.reason} after ${result.steps} steps, ${result.events} events, ${result.tasks} tasks`,
        );
        for (const x of v) line(`  violation ${x.kind}: ${x.message}`);
        line(`  log written to ${logPath}`);
      }
      throw new Done(v.length > 0 ? Exit.VIOLATION : Exit.CLEAN);
    },
  );

  // --- explore ----------------------------------------------------------------------------
  exampleHelp(
    program
      .command('explore <scenario>')
      .description(
        "explore a scenario's interleavings; on a violation, minimise it, print it and save replay files",
      )
      .addOption(
        new Option('--strategy <name>', 'how schedules are chosen').choices([...STRATEGIES]),
      )
      .option('--depth <d>', 'PCT depth', count('--depth', 1, 16))
      .option(
        '--preemptions <n>',
        'preemption bound of an exhaustive search',
        count('--preemptions', 0, 16),
      )
      .option('--schedules <n>', 'schedule budget', count('--schedules', 1))
      .option('--time <duration>', 'wall-time budget (30s, 1500ms, 2m)', (v) =>
        parseDurationMs('--time', v),
      )
      .option('--seed <n>', 'seed of the first schedule', count('--seed'))
      .option('--all', 'collect every distinct violation instead of stopping at the first')
      .option('--attach <kind...>', `attach a subscriber (${ATTACH_KINDS.join(', ')})`)
      .option('--out <dir>', 'where logs and replay files go (default mmnsim-out/<id>)')
      .option('--json', 'print the result as JSON on stdout (nothing else there)'),
    'mmnsim explore examples/scenarios/kvm-seq-after-gup.yaml --schedules 500 --out out/',
  ).action(async (path: string, opts: Record<string, unknown>) => {
    const ls = await loadScenarioFile(path, {
      attach: attachList(opts.attach as string[] | undefined),
    });
    const d = ls.file.explore;
    const strategy = strategyOf(
      (opts.strategy as string | undefined) ?? d?.strategy ?? 'pct',
      (opts.depth as number | undefined) ?? d?.depth ?? 3,
      (opts.preemptions as number | undefined) ?? d?.preemptions ?? 2,
    );
    const schedules = (opts.schedules as number | undefined) ?? d?.schedules ?? 200;
    const seed = (opts.seed as number | undefined) ?? d?.seed ?? 1;
    const json = opts.json === true;
    const bar =
      o.tty && !json
        ? new cliProgress.SingleBar(
            {
              format: 'exploring [{bar}] {value}/{total} schedules | violations {violations}',
              stream: process.stderr,
              hideCursor: true,
              clearOnComplete: true,
            },
            cliProgress.Presets.shades_classic,
          )
        : undefined;
    bar?.start(schedules, 0, { violations: 0 });
    const rec = recordIterations(() => performance.now());
    let report: ExploreReport;
    try {
      report = explore(ls.scenario, {
        strategy,
        iterations: schedules,
        seed,
        stopOnFirst: opts.all !== true,
        now: () => performance.now(),
        ...(opts.time !== undefined ? { timeBudgetMs: opts.time as number } : {}),
        onProgress: (p) => bar?.update(p.iterations, { violations: p.distinct }),
        onIteration: rec.onIteration,
      });
    } finally {
      bar?.stop();
    }
    const outDir = (opts.out as string | undefined) ?? join('mmnsim-out', ls.scenario.id);
    const saved = saveFailures(ls, report, outDir);
    // The campaign report: on a violation, or whenever --out names a directory.
    let reportPath: string | null = null;
    if (saved.dir !== null || opts.out !== undefined) {
      mkdirSync(outDir, { recursive: true });
      writeFileSync(join(outDir, CAMPAIGN_FILE), JSON.stringify(report, null, 2) + '\n');
      reportPath = writeCampaignReport(outDir, ls.scenario, path, report, rec.records);
      writeFileSync(
        join(outDir, 'index.json'),
        JSON.stringify(
          {
            scenario: ls.scenario.id,
            scenarioFile: path,
            replays: saved.replays,
            logs: saved.logs,
            campaign: CAMPAIGN_FILE,
            report: REPORT_FILE,
          },
          null,
          2,
        ) + '\n',
      );
    }
    const expected = ls.file.expect;
    const found = report.failures.length > 0;
    const kinds = report.distinct.map((x) => x.kind);
    const asExpected =
      expected === undefined
        ? undefined
        : expected.outcome === 'clean'
          ? !found
          : found &&
            (expected.kinds === undefined || kinds.some((k) => expected.kinds!.includes(k)));
    if (json) {
      line(
        JSON.stringify({
          scenario: report.scenario,
          strategy: report.strategy,
          iterations: report.iterations,
          totalSteps: report.totalSteps,
          maxSteps: report.maxSteps,
          maxTasks: report.maxTasks,
          distinct: report.distinct,
          failures: report.failures.map((f) => ({
            iteration: f.iteration,
            seed: f.seed,
            preemptions: f.preemptions,
            steps: f.steps,
            kinds: f.violations.map((v) => v.kind),
          })),
          pct: report.pct,
          elapsedMs: report.elapsedMs,
          expected: expected ?? null,
          asExpected: asExpected ?? null,
          out: saved,
          report: reportPath,
        }),
      );
    } else {
      line(
        bold(
          `${report.scenario}: ${report.iterations} schedules, ${report.totalSteps} steps (most ${report.maxSteps} per schedule, ${report.maxTasks} tasks), ${Math.round(report.elapsedMs ?? 0)} ms`,
        ),
      );
      for (const g of report.pct)
        line(
          `  PCT depth ${g.depth}: ${g.runs} clean runs; a depth-${g.depth} bug is missed with probability <= ${g.missProbability.toPrecision(3)}`,
        );
      if (!found) line('  no violation found');
      for (const x of report.distinct)
        line(
          `  violation ${x.kind} (${x.count}x, first at schedule ${x.firstIteration}): ${x.message}`,
        );
      if (saved.minimised !== undefined) {
        line();
        line(
          `minimised: ${saved.minimised.before.preemptions} -> ${saved.minimised.after.preemptions} preemptions, ${saved.minimised.before.steps} -> ${saved.minimised.after.steps} steps`,
        );
        line(saved.minimised.interleaving);
      }
      for (const f of saved.replays) line(`  replay: mmnsim replay ${f} --scenario ${path}`);
      if (reportPath !== null) line(`  report: ${reportPath} (open it in a browser)`);
      if (asExpected !== undefined)
        line(
          `  expected ${expected!.outcome}${expected!.kinds !== undefined ? ` (${expected!.kinds.join(', ')})` : ''}: ${asExpected ? 'yes' : 'NO'}`,
        );
    }
    throw new Done(found ? Exit.VIOLATION : Exit.CLEAN);
  });

  // --- replay -----------------------------------------------------------------------------
  exampleHelp(
    program
      .command('replay <file>')
      .description('re-execute a replay file and print the run as an interleaving')
      .option(
        '--scenario <file>',
        'the scenario file the replay was recorded from (zoo ids need none)',
      )
      .option('--stop-at <step>', 'stop before this step', count('--stop-at'))
      .option('--all', 'show every event (lock, SRCU and page-table bookkeeping too)')
      .option('--json', 'print the result as JSON'),
    'mmnsim replay mmnsim-out/kvm-seq-after-gup/violation-0.replay.json --scenario examples/scenarios/kvm-seq-after-gup.yaml',
  ).action(
    async (
      file: string,
      opts: { scenario?: string; stopAt?: number; all?: boolean; json?: boolean },
    ) => {
      const rf = parseReplayFile(readInput(file));
      const sc = await scenarioFor(rf, opts.scenario);
      const { sim, result } = replayFile(
        rf,
        () => sc,
        opts.stopAt !== undefined ? { stopAtStep: opts.stopAt } : {},
      );
      const v = result.violations[0];
      if (opts.json === true)
        line(
          JSON.stringify({
            scenario: rf.scenario,
            reason: result.reason,
            steps: result.steps,
            finalHash: result.reason === 'stopped' ? null : sim.finalHash(),
            violations: result.violations.map((x) => ({ kind: x.kind, message: x.message })),
          }),
        );
      else {
        line(`replay ${rf.scenario}  seed ${rf.seed}  ${rf.schedule.length} choices`);
        line(
          result.reason === 'stopped'
            ? `  stopped at step ${result.steps} (--stop-at)`
            : `  ${result.reason} after ${result.steps} steps; final hash matches the file`,
        );
        if (v !== undefined) line(`  violation ${v.kind}: ${v.message}`);
        line();
        line(
          formatInterleaving(
            interleaving(sim.log!.events, opts.all === true ? {} : { omit: QUIET }),
            opts.all === true ? {} : { maxRun: 12 },
          ),
        );
      }
      throw new Done(v !== undefined ? Exit.VIOLATION : Exit.CLEAN);
    },
  );

  // --- minimize ---------------------------------------------------------------------------
  exampleHelp(
    program
      .command('minimize <replay>')
      .alias('minimise')
      .description(
        'shrink a failing replay file to fewer preemptions and steps; writes <replay>.min.json',
      )
      .option('--scenario <file>', 'the scenario file (zoo ids need none)')
      .option('--max-runs <n>', 'most re-executions', count('--max-runs', 1), 500)
      .option('-o, --output <file>', 'where to write the minimised replay file'),
    'mmnsim minimize violation-0.replay.json --scenario examples/scenarios/kvm-seq-after-gup.yaml',
  ).action(async (file: string, opts: { scenario?: string; maxRuns: number; output?: string }) => {
    const rf = parseReplayFile(readInput(file));
    const sc = await scenarioFor(rf, opts.scenario);
    const run = replay(sc, rf);
    if (run.result.violations.length === 0)
      throw new InputError(
        file,
        { line: 1, col: 1 },
        'schedule',
        'the replay produces no violation: nothing to minimise',
      );
    const m = minimise(
      sc,
      { seed: rf.seed, schedule: rf.schedule, violations: run.result.violations },
      { maxRuns: opts.maxRuns },
    );
    const out = opts.output ?? file.replace(/(\.replay)?\.json$/, '') + '.min.json';
    writeFileSync(
      out,
      JSON.stringify(
        makeReplayFile(sc, { seed: m.seed, schedule: m.schedule, strategy: rf.strategy }),
        null,
        2,
      ) + '\n',
    );
    line(
      `${m.kind}: ${m.before.preemptions} -> ${m.after.preemptions} preemptions, ${m.before.steps} -> ${m.after.steps} steps (${m.runs} runs)`,
    );
    const again = replay(sc, m, { log: true });
    line(formatInterleaving(interleaving(again.sim.log!.events, { omit: QUIET }), { maxRun: 12 }));
    line(`written to ${out}`);
    throw new Done(Exit.VIOLATION);
  });

  // --- import strace ----------------------------------------------------------------------
  const imp = program.command('import').description('import a workload from another tool');
  exampleHelp(
    imp
      .command('strace <trace>')
      .description('turn `strace -f` output (with or without -tt, -ttt, -T) into a scenario file')
      .option('-o, --output <file>', 'where to write the scenario (default: stdout)')
      .option('--strict', 'fail on the first malformed line instead of skipping it')
      .option('--cpus <n>', 'CPUs of the scenario', count('--cpus', 1, 64), 2)
      .option(
        '--attach <kind...>',
        `attach a subscriber in the written scenario (${ATTACH_KINDS.join(', ')})`,
      )
      .option('--json', 'print the import summary as JSON'),
    'strace -f -e trace=memory,process -o trace.txt ls && mmnsim import strace trace.txt -o ls.yaml',
  ).action(
    (
      trace: string,
      opts: { output?: string; strict?: boolean; cpus: number; attach?: string[]; json?: boolean },
    ) => {
      const text = readInput(trace);
      const attach = attachList(opts.attach);
      let res;
      try {
        res = importStrace(text, {
          cpus: opts.cpus,
          strict: opts.strict === true,
          id: basename(opts.output ?? trace).replace(/\.[^.]*$/, ''),
          source: `strace -f of a real program (${basename(trace)})`,
        });
      } catch (e) {
        if (e instanceof StraceFormatError)
          throw new InputError(
            trace,
            { line: e.bad.line, col: e.bad.col },
            `line ${e.bad.line}`,
            e.bad.reason,
          );
        throw e;
      }
      const sc =
        attach.length > 0
          ? {
              ...res.scenario,
              plugins: [
                ...(res.scenario.plugins ?? []),
                ...attach.map((k) => ({ use: `@mmnsim/drivers-${k}` })),
              ],
            }
          : res.scenario;
      const yaml = `# yaml-language-server: $schema=https://mmnsim.dev/schema/scenario.schema.json\n# Imported by \`mmnsim import strace ${basename(trace)}\`: the program's memory-management syscalls, per thread.\n${stringify(sc, { lineWidth: 0 })}`;
      const s = res.summary;
      const summary = [
        `${trace}: ${s.lines} lines, ${Object.values(s.imported).reduce((a, b) => a + b, 0)} syscalls imported (${fmt(s.imported)}), ${s.processes} processes, ${s.tasks} tasks`,
        `  other syscalls (counted, not imported): ${fmt(s.other) || 'none'}`,
        `  skipped: ${fmt(s.skipped) || 'none'}; dropped flags: ${fmt(s.droppedFlags) || 'none'}; signals: ${fmt(s.signals) || 'none'}`,
        ...s.malformed.map(
          (m) => `  ${trace}:${m.line}:${m.col}: skipped a malformed line: ${m.reason}`,
        ),
      ].join('\n');
      if (opts.output !== undefined) writeFileSync(opts.output, yaml);
      else o.out(yaml);
      const sink = opts.output !== undefined ? o.out : o.err;
      sink(opts.json === true ? JSON.stringify(s) + '\n' : summary + '\n');
      throw new Done(Exit.CLEAN);
    },
  );

  // --- zoo --------------------------------------------------------------------------------
  exampleHelp(
    program
      .command('zoo')
      .description('hunt every bug-zoo variant (and check its correct counterpart stays clean)')
      .option('--iterations <n>', 'schedules per seed', count('--iterations', 1), 2000)
      .option('--seeds <list>', 'seeds', (v) => parseNumberList('--seeds', v), [1, 2, 3, 4, 5])
      .option('--only <ids...>', 'only these variants')
      .option('--json', 'print the table as JSON lines'),
    'mmnsim zoo --only kvm-seq-after-gup --seeds 1,2 --iterations 500',
  ).action((opts: { iterations: number; seeds: number[]; only?: string[]; json?: boolean }) => {
    let failed = false;
    runZoo({
      iterations: opts.iterations,
      seeds: opts.seeds,
      ...(opts.only !== undefined ? { only: opts.only } : {}),
      onLine: (l) => {
        // A broken variant must be found; its correct counterpart must stay clean.
        const counterpart = l.variant.endsWith('/correct');
        const ok = counterpart ? !l.found : l.found;
        if (!ok) failed = true;
        const verdict = counterpart ? (ok ? 'clean ' : 'FOUND ') : ok ? 'found ' : 'MISSED';
        line(
          opts.json === true
            ? JSON.stringify(l)
            : `${verdict}  ${l.variant.padEnd(40)} ${l.strategy}  <= ${l.iterations} schedules  ${l.rule}`,
        );
      },
    });
    throw new Done(failed ? Exit.VIOLATION : Exit.CLEAN);
  });

  // --- schema, plugins --------------------------------------------------------------------
  exampleHelp(
    program.command('schema').description('print the scenario file JSON Schema (draft 2020-12)'),
    'mmnsim schema > scenario.schema.json',
  ).action(() => {
    line(JSON.stringify(scenarioJsonSchema(), null, 2));
    throw new Done(Exit.CLEAN);
  });
  exampleHelp(
    program
      .command('plugins [modules...]')
      .description(
        'list the plugins found (built in, or in the given modules): id, requires, options schema',
      )
      .option('--json', 'print them as JSON'),
    'mmnsim plugins ./my-driver-plugin.js --json',
  ).action(async (modules: string[], opts: { json?: boolean }) => {
    const found: FoundPlugin[] = [...builtinPlugins()];
    for (const m of modules)
      found.push(...pluginFactories(m, await loadPluginModule(m, process.cwd())));
    const rows = found.map((f) => ({
      package: f.use,
      export: f.exportName,
      id: f.probe.id,
      requires: f.probe.requires,
      options:
        f.probe.options !== undefined
          ? z.toJSONSchema(f.probe.options.schema, { io: 'input', unrepresentable: 'any' })
          : null,
    }));
    if (opts.json === true) line(JSON.stringify(rows, null, 2));
    else
      for (const r of rows) {
        const props =
          r.options !== null
            ? Object.keys((r.options as { properties?: object }).properties ?? {})
            : [];
        line(
          `${r.id.padEnd(16)} ${r.package} (${r.export})  requires: ${r.requires.join(', ') || 'nothing'}  options: ${props.join(', ') || 'none'}`,
        );
      }
    throw new Done(Exit.CLEAN);
  });

  registerVisualCommands(program, exampleHelp, {
    line,
    done: (code) => {
      throw new Done(code);
    },
  });

  try {
    await program.parseAsync(
      argv.filter((a) => a !== '--debug'),
      { from: 'user' },
    );
    return Exit.CLEAN;
  } catch (e) {
    if (e instanceof Done) return e.code;
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.help' ||
        e.code === 'commander.version'
      )
        return Exit.CLEAN;
      return Exit.USAGE; // commander printed the message
    }
    const usage =
      e instanceof InputError ||
      e instanceof UsageError ||
      e instanceof NumberFlagError ||
      e instanceof ReplayFileError ||
      e instanceof ScenarioRunError;
    if (usage) {
      o.err(`mmnsim: ${(e as Error).message}\n`);
      if (debug) o.err(`${(e as Error).stack}\n`);
      return Exit.USAGE;
    }
    if (e instanceof ReplayDivergenceError) {
      o.err(`mmnsim: ${e.message}\n`);
      return Exit.VIOLATION;
    }
    const err = e as Error;
    o.err(
      `mmnsim: internal error: ${err?.message ?? String(e)}\n${debug ? `${err?.stack}\n` : '  (run with --debug for the stack trace)\n'}`,
    );
    return Exit.INTERNAL;
  }

  async function scenarioFor(rf: ReplayFile, path: string | undefined): Promise<Scenario> {
    if (path !== undefined) return (await loadScenarioFile(path)).scenario;
    const z2 = zooScenario(rf.scenario);
    if (z2 !== undefined) return z2;
    throw new UsageError(
      `the replay file's scenario "${rf.scenario}" is not a zoo scenario: give its file with --scenario`,
    );
  }
}

function fmt(r: Record<string, number>): string {
  return Object.entries(r)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

interface Saved {
  dir: string | null;
  replays: string[];
  logs: string[];
  minimised?: {
    before: { preemptions: number; steps: number };
    after: { preemptions: number; steps: number };
    interleaving: string;
    replay: string;
  };
}

/**
 * Writes, for each distinct violation of a campaign, its replay file and event log into `dir`,
 * the first one minimised too (`explore` then writes `index.json`, the campaign and its report).
 */
function saveFailures(ls: LoadedScenario, report: ExploreReport, dir: string): Saved {
  if (report.failures.length === 0) return { dir: null, replays: [], logs: [] };
  mkdirSync(dir, { recursive: true });
  const replays: string[] = [];
  const logs: string[] = [];
  const seen = new Set<string>();
  const sc = ls.scenario;
  report.failures.forEach((f, i) => {
    const key = f.violations.map((v) => v.kind).join(',');
    if (seen.has(key)) return;
    seen.add(key);
    const rf = makeReplayFile(sc, f);
    const p = join(dir, `violation-${i}.replay.json`);
    writeFileSync(p, JSON.stringify(rf, null, 2) + '\n');
    replays.push(p);
    const lp = join(dir, `violation-${i}.ndjson`);
    writeFileSync(lp, replay(sc, f, { log: true }).sim.toNdjson({ scenario: sc.id }));
    logs.push(lp);
  });
  const first = report.failures[0]!;
  const m = minimise(sc, first);
  const mp = join(dir, 'minimised.replay.json');
  writeFileSync(
    mp,
    JSON.stringify(
      makeReplayFile(sc, { seed: m.seed, schedule: m.schedule, strategy: first.strategy }),
      null,
      2,
    ) + '\n',
  );
  replays.unshift(mp);
  const run = replay(sc, m, { log: true });
  const inter = formatInterleaving(interleaving(run.sim.log!.events, { omit: QUIET, tail: 60 }), {
    maxRun: 12,
  });
  return {
    dir,
    replays,
    logs,
    minimised: { before: m.before, after: m.after, interleaving: inter, replay: mp },
  };
}
