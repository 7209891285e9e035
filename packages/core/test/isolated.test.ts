// Issue 23: the watchdog. A task that never returns to the scheduler (`for (;;) {}` between two
// yields) hangs an in-process run forever; run in a terminable worker it becomes a `hang`
// violation naming the task and the last event, with the streamed log kept. Needs the built
// package (the worker loads dist/), like determinism.test.ts's child process.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { exploreIsolated, readNdjson, runIsolated, verifyNdjsonFile } from '@mmnsim/core';

const here = dirname(fileURLToPath(import.meta.url));
const module = join(here, 'fixtures', 'hang-scenario.mjs');
const dir = mkdtempSync(join(tmpdir(), 'mmnsim-isolated-'));

describe('watchdog: runs in terminable workers', () => {
  it('a task that never yields is a hang naming the task and the last event; the log is kept', async () => {
    const logFile = join(dir, 'hang.ndjson');
    const r = await runIsolated({
      module,
      seed: 1,
      strategy: 'round-robin',
      timeoutMs: 1500,
      logFile,
    });
    expect(r.reason).toBe('hang');
    const v = r.violations[0]!;
    expect(v).toMatchObject({ kind: 'hang', taskName: 'spinner', task: 0, oracle: 'watchdog' });
    expect(v.message).toMatch(/spinner#0 did not reach a scheduling point within 1500 ms/);
    const log = verifyNdjsonFile(logFile);
    expect(r.lastEvent).toEqual(log.last);
    expect(v.evidence).toEqual([log.last!.seq]);
    expect(log.events).toBeGreaterThan(2);
    expect(
      readNdjson(readFileSync(logFile, 'utf8')).events.some((e) => e.type === 'sched.spawn'),
    ).toBe(true);
  }, 30_000);

  it('a campaign keeps going past a hung iteration, which is a failure with its seed', async () => {
    const report = await exploreIsolated({
      module,
      exportName: 'seed3',
      strategy: 'random',
      iterations: 5,
      seed: 1,
      stopOnFirst: false,
      timeoutMs: 1500,
      logDir: dir,
    });
    expect(report.iterations).toBe(5);
    expect(report.failures.map((f) => [f.iteration, f.seed, f.violations[0]!.kind])).toEqual([
      [2, 3, 'hang'],
    ]);
    expect(report.failures[0]!.violations[0]!.taskName).toBe('spinner');
    expect(verifyNdjsonFile(join(dir, 'hang-2.ndjson')).events).toBeGreaterThan(0);
  }, 60_000);

  it('a run that ends is returned as it is', async () => {
    const r = await runIsolated({
      module,
      exportName: 'seed3',
      seed: 1,
      strategy: 'random',
      timeoutMs: 20_000,
      logFile: join(dir, 'ok.ndjson'),
    });
    expect(r.reason).toBe('done');
    expect(r.finalHash).toBe(verifyNdjsonFile(join(dir, 'ok.ndjson')).finalHash);
  }, 30_000);
});
