/**
 * The worker side of `runIsolated` / `exploreIsolated`: loads the scenario module, runs one
 * simulation or one campaign, and records in shared memory which task of which step is running,
 * so the parent can name it if it has to terminate this worker. Its own file because it is a
 * worker entry point (it runs on load); it is execution machinery, not simulation code.
 */
/* eslint-disable no-restricted-syntax -- loading the scenario module is an async import in the
   worker, outside any simulation. */
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { describeThrown } from './describe-error.js';
import { explore } from './explore.js';
import type { Scenario } from './explore.js';
import { Simulation } from './simulation.js';
import { stepObserver } from './step-observer.js';
import { SHARED, strategyFromJson } from './isolated-shared.js';
import type { WorkerJob } from './isolated-shared.js';

async function main(job: WorkerJob): Promise<void> {
  const port = parentPort!;
  const i32 = new Int32Array(job.shared);
  const bytes = new Uint8Array(job.shared, SHARED.name * 4, SHARED.nameBytes);
  const enc = new TextEncoder();
  let lastTask = -1;
  let current: Simulation | null = null;
  stepObserver.fn = (step, task, name, seq) => {
    Atomics.store(i32, SHARED.step, step);
    Atomics.store(i32, SHARED.seq, seq);
    if (task !== lastTask) {
      lastTask = task;
      const r = enc.encodeInto(name, bytes);
      Atomics.store(i32, SHARED.nameLen, r.written);
      Atomics.store(i32, SHARED.task, task);
    }
    current?.fileLog?.flush();
  };
  const url = /^[a-z]+:/.test(job.module) ? job.module : pathToFileURL(job.module).href;
  const mod = (await import(url)) as Record<string, unknown>;
  const exported = mod[job.exportName];
  const scenario = (typeof exported === 'function' ? (exported as () => Scenario)() : exported) as
    Scenario | undefined;
  if (scenario === undefined || typeof scenario.setup !== 'function')
    throw new Error(`${job.module} exports no scenario "${job.exportName}"`);
  port.postMessage({ type: 'ready' });
  if (job.run !== undefined) {
    const r = job.run;
    const sim = Simulation.create({
      ...scenario.options(),
      seed: r.seed,
      strategy: strategyFromJson(r.strategy),
      ...(r.logFile !== undefined ? { logFile: r.logFile } : {}),
    });
    current = sim;
    try {
      scenario.setup(sim);
    } catch (e) {
      sim.failSetup(e);
    }
    const result = sim.run();
    const { error, ...plain } = result;
    port.postMessage({
      type: 'done',
      result: { ...plain, ...(error !== undefined ? { error: error.message } : {}) },
      finalHash: sim.fileLog?.finalHash ?? null,
    });
    return;
  }
  const report = explore(scenario, {
    ...job.explore!,
    onIterationStart: (iteration, seed, strategy) =>
      port.postMessage({ type: 'start', iteration, seed, strategy }),
    onIteration: (iteration, r) => {
      const failed = r.violations.length > 0 || r.error !== undefined;
      port.postMessage({
        type: 'iteration',
        iteration,
        steps: r.steps,
        tasks: r.tasks,
        ...(failed
          ? {
              failure: {
                iteration,
                seed: r.seed,
                strategy: r.strategy,
                schedule: [...r.schedule],
                preemptions: r.preemptions,
                steps: r.steps,
                violations: r.violations,
              },
            }
          : {}),
      });
    },
  });
  port.postMessage({ type: 'report', report });
}

main(workerData as WorkerJob).catch((e: unknown) => {
  const d = describeThrown(e);
  parentPort!.postMessage({ type: 'fail', message: `${d.name}: ${d.message}` });
});
