/**
 * `pnpm demo`: the README's main job.
 *
 * 1. A composed simulation — a VMM process with a KVM guest (2 vCPUs) and an RDMA ODP memory
 *    region with NIC traffic, on the x86 TLB model, under a mixed host workload — explored for
 *    500 PCT schedules, with a progress bar and a summary table.
 * 2. A bug-zoo variant found, its failing schedule minimised and printed as a readable
 *    interleaving, saved as a replay file, and the one-line command that replays it.
 *
 * Options: `--schedules N` (default 500), `--seed N` (default 1), `--variant ID` (a zoo variant,
 * default kvm-seq-after-gup).
 */
import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import {
  explore,
  formatInterleaving,
  interleaving,
  makeReplayFile,
  minimise,
  replay,
} from '@mmnsim/core';
import type { ExploreReport } from '@mmnsim/core';
import { UsageError, ZOO } from '@mmnsim/zoo';
import { QUIET_EVENTS } from '../scenarios.js';
import { parseDemoArgs } from './args.js';
import type { DemoArgs } from './args.js';
import { demoScenario, newCounters } from './scenario.js';

function fail(message: string): never {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(2);
}
let args: DemoArgs;
try {
  args = parseDemoArgs(
    process.argv.slice(2),
    ZOO.map((v) => v.id),
  );
} catch (e) {
  fail(e instanceof UsageError ? e.message : String(e));
}
const SCHEDULES = args.schedules;
const SEED = args.seed;
const VARIANT = args.variant;
const variant = ZOO.find((v) => v.id === VARIANT)!;
// The replay file goes to .mmnsim/replays: check now that it can, not after the work is done.
const REPLAY_DIR = join('.mmnsim', 'replays');
try {
  mkdirSync(REPLAY_DIR, { recursive: true });
} catch (e) {
  fail(`cannot create the output directory ${REPLAY_DIR}: ${(e as Error).message}`);
}

const out = (line = ''): void => void process.stdout.write(line + '\n');
const num = (n: number): string => n.toLocaleString('en-US');
const now = (): number => performance.now();

// ---------------------------------------------------------------------------------------------
// 1. The composed simulation, explored.
out('mmnsim demo');
out();
out(
  '1. A VMM process with a KVM guest (2 vCPUs), an RDMA ODP memory region and an SVA accelerator, on x86 TLBs',
);
out(
  '   plugins  mm, x86-tlb, kvm (2 vCPUs on cpu1-2), rdma (mlx5_0: engines on nic0, fault kworker on cpu3),',
);
out(
  '            iommu (dmar0; accel0 bound to the VMM with a PASID: ATS device TLB, page requests)',
);
out(
  '   workload guest loads/stores; NIC RDMA WRITE/READ through the ODP MR; the host faults pages in,',
);
out(
  '            drops one (MADV_DONTNEED), write-protects two and back, forks, breaks COW, unmaps',
);
out(
  '            and re-maps a page under the MR; kswapd reclaims; the accelerator reads and writes',
);
out('            its buffer through its ATC, faulting its last page in with a page request');
out(
  '   oracles  notifier pairing, lifetime and secondary-MMU checks; KVM, RDMA, IOMMU and x86 TLB oracles',
);
out();

const counters = newCounters();
const bar = new cliProgress.SingleBar(
  {
    format:
      '   exploring [{bar}] {value}/{total} PCT schedules | {rate}/s | violations {violations}',
    hideCursor: true,
    clearOnComplete: true,
  },
  cliProgress.Presets.shades_classic,
);
bar.start(SCHEDULES, 0, { rate: 0, violations: 0 });
let events = 0;
const t0 = now();
const report: ExploreReport = explore(demoScenario(counters), {
  strategy: { kind: 'pct', depth: 3 },
  iterations: SCHEDULES,
  seed: SEED,
  stopOnFirst: false,
  now,
  onIteration: (_i, r) => {
    events += r.eventsBuilt;
  },
  onProgress: (p) => {
    const secs = (now() - t0) / 1000;
    bar.update(p.iterations, {
      rate: Math.round(p.iterations / Math.max(secs, 1e-3)),
      violations: p.distinct,
    });
  },
});
bar.stop();
const secs = (report.elapsedMs ?? now() - t0) / 1000;
const violations = report.failures.reduce((n, f) => n + f.violations.length, 0);
const g = report.pct[0];
const rows: [string, string][] = [
  [
    'schedules',
    `${num(report.iterations)} (PCT depth 3, seeds ${SEED}..${SEED + report.iterations - 1})`,
  ],
  ['steps', `${num(report.totalSteps)} (at most ${num(report.maxSteps)} in one schedule)`],
  ['events', `${num(events)} (built for the oracles; the log was off)`],
  [
    'violations',
    `${violations}${report.distinct.length > 0 ? ` (${report.distinct.map((d) => d.kind).join(', ')})` : ''}`,
  ],
  ['schedules/s', `${num(Math.round(report.iterations / secs))} (${secs.toFixed(1)} s)`],
];
if (g !== undefined) {
  rows.push([
    'PCT guarantee',
    `n = ${g.tasks} tasks, k = ${num(g.steps)} steps, d = ${g.depth}: after ${num(g.runs)} clean runs a given depth-3 bug`,
  ]);
  rows.push([
    '',
    `is missed with probability ≤ (1 − 1/(n·k^(d−1)))^R = ${g.missProbability.toFixed(6)}; each run finds it with p ≥ ${(1 / (g.tasks * g.steps ** (g.depth - 1))).toExponential(2)}`,
  ]);
}
rows.push([
  'exercised',
  `${num(counters.guestAccesses)} guest accesses, ${num(counters.kvmFaults)} KVM faults (${num(counters.kvmRetries)} retried after a racing invalidation),`,
]);
rows.push([
  '',
  `${num(counters.nicRequests)} NIC requests, ${num(counters.odpFaults)} ODP faults (${num(counters.odpCollisions)} collided with an invalidation),`,
]);
rows.push([
  '',
  `${num(counters.svaDma)} SVA DMA accesses (${num(counters.atcHits)} ATC hits), ${num(counters.pageRequests)} page requests, ${num(counters.atsInvalidations)} ATS invalidations`,
]);
const w = Math.max(...rows.map(([k]) => k.length));
out(`   ${'─'.repeat(w)}  ${'─'.repeat(60)}`);
for (const [k, v] of rows) out(`   ${k.padEnd(w)}  ${v}`);
out(`   ${'─'.repeat(w)}  ${'─'.repeat(60)}`);
if (report.failures.length > 0) {
  const f = report.failures[0]!;
  out(
    `   first failure: iteration ${f.iteration} (seed ${f.seed}): ${f.violations[0]!.kind}: ${f.violations[0]!.message}`,
  );
  process.exitCode = 1;
}
out();

// ---------------------------------------------------------------------------------------------
// 2. A bug from the zoo: found, minimised, shown, saved.
out(`2. A bug from the zoo: ${variant.id}`);
out(`   rule     ${variant.rule}`);
out(`   spec     ${variant.spec}`);
const broken = variant.scenario(true);
const t1 = now();
const hunt = explore(broken, { strategy: { kind: 'pct', depth: 3 }, iterations: 2000, seed: SEED });
const failure = hunt.failures[0];
if (failure === undefined) {
  out(`   not found in ${num(hunt.iterations)} PCT schedules`);
  process.exitCode = 1;
} else {
  const v = failure.violations[0]!;
  out(
    `   found    at schedule ${failure.iteration + 1} of the campaign (seed ${failure.seed}, ${((now() - t1) / 1000).toFixed(2)} s): ${v.kind}`,
  );
  const m = minimise(broken, failure);
  out(
    `   minimised ${m.before.preemptions} → ${m.after.preemptions} preemptions, ${m.before.steps} → ${m.after.steps} steps, ${m.before.choices} → ${m.after.choices} choices (${m.runs} runs)`,
  );
  const { sim, result } = replay(broken, m, { log: true });
  out(
    `   replayed ${result.violations[0]?.kind ?? 'no violation'} again, log hash ${sim.finalHash().slice(0, 16)}…`,
  );
  out();
  out('   The minimised interleaving (! marks the events the violation cites):');
  const table = formatInterleaving(interleaving(sim.log!.events, { omit: QUIET_EVENTS }), {
    maxRun: 30,
  });
  for (const line of table.split('\n')) out('   ' + line);
  out();
  out(`   ${v.message}`);
  const file = makeReplayFile(broken, {
    seed: m.seed,
    schedule: m.schedule,
    strategy: failure.strategy,
  });
  const path = join(REPLAY_DIR, `${variant.id}.json`);
  try {
    mkdirSync(REPLAY_DIR, { recursive: true });
    writeFileSync(path, JSON.stringify(file, null, 2) + '\n');
  } catch (e) {
    fail(`cannot write the replay file ${path}: ${(e as Error).message}`);
  }
  out();
  out(
    `   saved ${path}; replay it step by step (add --stop-at STEP to stop early, --all for every event):`,
  );
  out();
  out(`     pnpm replay ${path}`);
}
