import { describe, expect, it } from '@jest/globals';
import { explore, formatInterleaving, interleaving, replay } from '@mmnsim/core';
import type { JsonValue, LoggedEvent, Scenario } from '@mmnsim/core';
import * as core from '@mmnsim/core';
// @ts-expect-error -- plain ESM fixture shared with a child process
import { windowScenario } from './fixtures/replay-scenario.mjs';

let seq = 0;
function ev(step: number, task: number, ctx: string, type: string, data: JsonValue): LoggedEvent {
  return { seq: seq++, step, time: step * 10, ctx, task, type, data };
}

/** A hand-made log: two tasks, a lock, a violation citing two events, then more events. */
function log(): LoggedEvent[] {
  seq = 0;
  return [
    ev(0, -1, '-', 'sched.spawn', { id: 0, name: 'fault', on: 'cpu0' }),
    ev(0, -1, '-', 'sched.spawn', { id: 1, name: 'munmap', on: 'cpu1' }),
    ev(1, 0, 'cpu0', 'lock.acquired', { lock: 'umem_mutex' }),
    ev(1, 0, 'cpu0', 'smmu.map', { mmu: 'odp', va: 0x40001000, pfn: 7 }),
    ev(2, 1, 'cpu1', 'sched.switch', { from: 0, to: 1 }),
    ev(2, 1, 'cpu1', 'mm.frame.free', { pfn: 7 }),
    ev(3, 1, 'cpu1', 'oracle.violation', {
      kind: 'secondary-mapping-to-freed-frame',
      message: 'frame 7 freed while mapped',
      evidence: [3, 5],
      oracle: 'secondary-mmu',
    }),
    ev(4, 0, 'cpu0', 'lock.released', { lock: 'umem_mutex' }),
  ];
}

describe('readable interleavings of a run (issue 9: task, step, event)', () => {
  it('names tasks from their spawn events, shows the payload, and stops at the first violation', () => {
    const rows = interleaving(log());
    expect(rows.map((r) => [r.step, r.task, r.type])).toEqual([
      [0, '-', 'sched.spawn'],
      [0, '-', 'sched.spawn'],
      [1, 'fault', 'lock.acquired'],
      [1, 'fault', 'smmu.map'],
      [2, 'munmap', 'mm.frame.free'],
      [3, 'munmap', 'oracle.violation'],
    ]);
    expect(rows[3]!.detail).toBe('mmu=odp va=0x40001000 pfn=7');
    expect(rows[2]!.detail).toBe('lock=umem_mutex');
  });

  it('marks the violation and its evidence, and never omits them', () => {
    const rows = interleaving(log(), {
      omit: ['smmu.*', 'mm.frame.free', 'lock.*', 'sched.switch'],
    });
    expect(rows.map((r) => [r.type, r.evidence])).toEqual([
      ['sched.spawn', false],
      ['sched.spawn', false],
      ['smmu.map', true],
      ['mm.frame.free', true],
      ['oracle.violation', true],
    ]);
  });

  it('keeps only the last rows when asked', () => {
    expect(interleaving(log(), { tail: 2 }).map((r) => r.type)).toEqual([
      'mm.frame.free',
      'oracle.violation',
    ]);
  });

  it('formats a table with evidence marked and a divider at every change of task', () => {
    const text = formatInterleaving(interleaving(log(), { omit: ['sched.*'] }));
    expect(text.split('\n').map((l) => l.replace(/ +/g, ' ').trimEnd())).toEqual([
      ' step task event detail',
      ' 1 fault@cpu0 lock.acquired lock=umem_mutex',
      '! 1 fault@cpu0 smmu.map mmu=odp va=0x40001000 pfn=7',
      ' ----',
      '! 2 munmap@cpu1 mm.frame.free pfn=7',
      '! 3 munmap@cpu1 oracle.violation kind=secondary-mapping-to-freed-frame message="frame 7 freed while mapped" evidence=[3,5] oracle=secondary-mmu',
    ]);
  });

  it('shortens long runs of one task to their ends, keeping evidence', () => {
    seq = 0;
    const events = [
      ev(0, -1, '-', 'sched.spawn', { id: 0, name: 'a', on: 'cpu0' }),
      ...Array.from({ length: 10 }, (_, i) => ev(1 + i, 0, 'cpu0', 'x.step', { i })),
      ev(11, 0, 'cpu0', 'oracle.violation', {
        kind: 'k',
        message: 'm',
        evidence: [5],
        oracle: 'o',
      }),
    ];
    const text = formatInterleaving(interleaving(events), { maxRun: 4 });
    const lines = text.split('\n').map((l) => l.replace(/ +/g, ' ').trim());
    expect(lines.slice(3)).toEqual([
      '1 a@cpu0 x.step i=0',
      '2 a@cpu0 x.step i=1',
      '… 2 more rows of a@cpu0',
      '! 5 a@cpu0 x.step i=4',
      '… 4 more rows of a@cpu0',
      '10 a@cpu0 x.step i=9',
      '! 11 a@cpu0 oracle.violation kind=k message=m evidence=[5] oracle=o',
    ]);
  });

  it('on a replayed failing schedule, shows the task that broke the rule at the end', () => {
    const scenario = (windowScenario as (c: typeof core) => Scenario)(core);
    const report = explore(scenario, {
      strategy: { kind: 'pct', depth: 2 },
      iterations: 500,
      seed: 1,
    });
    const failure = report.failures[0]!;
    const { sim } = replay(scenario, failure, { log: true });
    const rows = interleaving(sim.log!.events);
    const last = rows[rows.length - 1]!;
    expect(last.type).toBe('oracle.violation');
    expect(last.task).toBe('checker');
    expect(last.evidence).toBe(true);
    expect(last.detail).toContain('checker saw the window open');
  });
});

describe('formatInterleaving on a long log', () => {
  it('formats 200,000 rows (column widths are not computed by spreading the rows)', () => {
    const rows = Array.from({ length: 200_000 }, (_, i) => ({
      seq: i,
      step: i,
      task: 't',
      ctx: 'cpu0',
      type: 'x.e',
      detail: '',
      evidence: false,
    }));
    const text = formatInterleaving(rows, { maxRun: 4 });
    expect(text.split('\n')).toHaveLength(1 + 4 + 1);
    expect(text).toContain('… 199996 more rows of t@cpu0');
  });
});
