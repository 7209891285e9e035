/**
 * `pnpm demo`: compose a small simulation, run it once with its log and schedule, explore it,
 * then find and replay the race in its broken variant.
 */
import 'reflect-metadata';
import { explore, replay, runScenario } from '@mmnsim/core';
import type { LoggedEvent } from '@mmnsim/core';
import { lockDemoScenario } from '../lock-demo/scenario.js';

const SEED = 1;
const out = (line = ''): void => {
  process.stdout.write(line + '\n');
};

function describeEvent(e: LoggedEvent): string {
  const d = e.data as Record<string, unknown>;
  switch (e.type) {
    case 'lock.acquired':
    case 'lock.released':
      return `${e.type} ${String(d.lock)}`;
    case 'lock.contended':
      return `lock.contended ${String(d.lock)} (held by task ${String(d.owner)})`;
    case 'sched.block':
    case 'sched.wake':
      return `${e.type} on ${String(d.on)}`;
    default:
      return e.type;
  }
}

out('mmnsim demo: two workers on two CPUs increment a shared counter under a mutex');
out();

// 1. One run, with its log and schedule.
const scenario = lockDemoScenario();
const { sim, result } = runScenario(scenario, SEED, 'random');
const counts = new Map<string, number>();
for (const e of sim.log!.events) counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
out(`one run (seed ${SEED}, strategy ${JSON.stringify(result.strategy)})`);
out(`  result        ${result.reason}, ${result.violations.length} violations`);
out(`  steps         ${result.steps}   virtual time ${result.time} ns`);
out(`  events        ${result.events}   (${[...counts].map(([t, n]) => `${t} ${n}`).join(', ')})`);
out(`  schedule      [${result.schedule.join(',')}]   (${result.schedule.length} choices)`);
out(`  final hash    ${sim.finalHash().slice(0, 16)}…`);
out('  timeline (lock and scheduler events):');
out('    step  ctx   task        event');
for (const e of sim.log!.events) {
  if (!e.type.startsWith('lock.') && e.type !== 'sched.block' && e.type !== 'sched.wake') continue;
  const task = e.task >= 0 ? `${sim.scheduler.task(e.task)!.name}#${e.task}` : '-';
  out(`    ${String(e.step).padEnd(5)} ${e.ctx.padEnd(5)} ${task.padEnd(11)} ${describeEvent(e)}`);
}
out();

// 2. Exploration of the correct version.
const iterations = 500;
let t0 = performance.now();
const clean = explore(lockDemoScenario({ log: false }), {
  strategy: { kind: 'pct', depth: 2 },
  iterations,
  seed: SEED,
});
let secs = (performance.now() - t0) / 1000;
out(
  `exploration: ${clean.iterations} PCT schedules (depth 2), ${clean.totalSteps} steps, ${clean.failures.length} violations, ${Math.round(clean.iterations / secs)} schedules/s`,
);

// 3. The broken variant: found, then replayed.
const broken = lockDemoScenario({ broken: true, log: false });
t0 = performance.now();
const found = explore(broken, { strategy: { kind: 'pct', depth: 2 }, iterations, seed: SEED });
secs = (performance.now() - t0) / 1000;
const f = found.failures[0];
if (f === undefined) {
  out(`broken variant (no mutex): not found in ${found.iterations} schedules`);
  process.exitCode = 1;
} else {
  out(
    `broken variant (no mutex): '${f.violations[0]!.kind}' found at iteration ${f.iteration} (seed ${f.seed}) in ${secs.toFixed(2)} s`,
  );
  out(`  ${f.violations[0]!.message}`);
  out(`  schedule [${f.schedule.join(',')}]`);
  const logged = lockDemoScenario({ broken: true });
  const again = replay(logged, f);
  const twice = replay(logged, f);
  const same = again.sim.finalHash() === twice.sim.finalHash();
  out(
    `  replayed from seed + schedule: ${again.result.violations[0]?.kind ?? 'no violation'}, log hash ${again.sim.finalHash().slice(0, 16)}… (${same ? 'identical on a second replay' : 'DIFFERENT on a second replay'})`,
  );
  if (!same || again.result.violations.length === 0) process.exitCode = 1;
}
