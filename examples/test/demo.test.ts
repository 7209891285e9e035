import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { explore, parseReplayFile } from '@mmnsim/core';
import { demoScenario, newCounters } from '../src/demo/scenario.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('pnpm demo (issue 9)', () => {
  it('the composed simulation (VMM + KVM guest + ODP MR + SVA accelerator + x86 TLB) is clean under PCT and exercises every path', () => {
    const c = newCounters();
    const report = explore(demoScenario(c), {
      strategy: { kind: 'pct', depth: 3 },
      iterations: 100,
      seed: 1,
      stopOnFirst: false,
    });
    expect(report.distinct.map((d) => `${d.kind}: ${d.message}`)).toEqual([]);
    expect(report.iterations).toBe(100);
    expect(report.pct[0]!.runs).toBe(100);
    // The races happened: faults raced invalidations on both secondary MMUs.
    // 101 runs: PCT first runs the scenario once to measure its tasks and steps.
    expect(c.guestAccesses).toBe(101 * 32);
    expect(c.nicRequests).toBe(101 * 8);
    expect(c.svaDma).toBe(101 * 6);
    expect(c.atcHits).toBeGreaterThan(0);
    expect(c.pageRequests).toBeGreaterThan(0);
    expect(c.atsInvalidations).toBeGreaterThan(0);
    expect(c.kvmRetries).toBeGreaterThan(0);
    expect(c.odpCollisions).toBeGreaterThan(0);
  });

  it('runs end to end: summary table, a zoo bug found and minimised, its replay file and command', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'mmnsim-demo-'));
    const r = spawnSync(
      process.execPath,
      [join(root, 'examples', 'dist', 'demo', 'main.js'), '--schedules', '20'],
      { cwd, encoding: 'utf8' },
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/schedules +20 \(PCT depth 3/);
    expect(r.stdout).toMatch(/violations +0\n/);
    expect(r.stdout).toMatch(/PCT guarantee +n = \d+ tasks, k = \d+ steps, d = 3/);
    expect(r.stdout).toContain('found    at schedule');
    expect(r.stdout).toMatch(/! +\d+ +vcpu0@cpu1 +oracle\.violation/);
    expect(r.stdout).toContain('pnpm replay .mmnsim/replays/kvm-seq-after-gup.json');
    const file = parseReplayFile(
      readFileSync(join(cwd, '.mmnsim', 'replays', 'kvm-seq-after-gup.json'), 'utf8'),
    );
    expect(file.scenario).toBe('kvm-seq-after-gup');
    expect(file.violation!.kind).toBe('secondary-mapping-to-freed-frame');
  });
});
