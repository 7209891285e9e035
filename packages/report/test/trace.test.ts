import { describe, expect, it } from '@jest/globals';
import { readNdjson, replay } from '@mmnsim/core';
import type { LoggedEvent } from '@mmnsim/core';
import { loadRunText, toChromeTrace } from '@mmnsim/report';
import type { TraceEvent } from '@mmnsim/report';
import { ZOO, zooScenario } from '@mmnsim/zoo';
import { minimisedReplay } from './support.js';

/** Checks B/E nesting per (pid, tid) and b/e balance per async id; returns problems found. */
function nestingProblems(events: readonly TraceEvent[]): string[] {
  const problems: string[] = [];
  const stacks = new Map<string, string[]>();
  const open = new Map<number, string>();
  let lastTs = -Infinity;
  for (const e of events) {
    if (e.ph === 'M') continue;
    if (e.ts < lastTs) problems.push(`ts goes back at ${e.name} (${e.ts} < ${lastTs})`);
    if (e.ts === lastTs) problems.push(`two marks share ts ${e.ts} (${e.name})`);
    lastTs = e.ts;
    const key = `${e.pid}|${e.tid}`;
    if (e.ph === 'B') {
      let s = stacks.get(key);
      if (s === undefined) stacks.set(key, (s = []));
      s.push(e.name);
    } else if (e.ph === 'E') {
      const top = stacks.get(key)?.pop();
      if (top !== e.name) problems.push(`E "${e.name}" on ${key} closes "${top}"`);
    } else if (e.ph === 'b') {
      if (open.has(e.id!)) problems.push(`async id ${e.id} opened twice`);
      open.set(e.id!, e.name);
    } else if (e.ph === 'e') {
      if (open.get(e.id!) !== e.name) problems.push(`async e ${e.id} "${e.name}" without its b`);
      open.delete(e.id!);
    }
  }
  for (const [key, s] of stacks)
    if (s.length > 0) problems.push(`${key}: ${s.join(', ')} never end`);
  for (const [id, name] of open) problems.push(`async ${id} "${name}" never ends`);
  return problems;
}

describe('Chrome trace export (issue 18)', () => {
  it.each(ZOO.map((v) => [v.id, v] as const))(
    '%s: the minimised replay exports as trace-event JSON with nested B/E slices per track and the violation instant citing its evidence',
    (_id, v) => {
      const { text } = minimisedReplay(v);
      const run = loadRunText(text, zooScenario, `${v.id}.replay.json`);
      const trace = JSON.parse(
        JSON.stringify(toChromeTrace(run.events, { header: run.header })),
      ) as {
        traceEvents: TraceEvent[];
        otherData: Record<string, unknown>;
      };
      expect(Array.isArray(trace.traceEvents)).toBe(true);
      for (const e of trace.traceEvents) {
        expect(typeof e.name).toBe('string');
        expect(typeof e.ts).toBe('number');
        expect(Number.isFinite(e.ts)).toBe(true);
        expect(typeof e.pid).toBe('number');
      }
      expect(nestingProblems(trace.traceEvents)).toEqual([]);
      const v0 = run.violations[0]!;
      const inst = trace.traceEvents.filter(
        (e) => e.ph === 'i' && e.cat === 'violation' && e.s === 'g',
      );
      expect(inst.map((e) => e.name)).toContain(`violation: ${v0.kind}`);
      expect(inst[0]!.args!.evidence).toEqual(v0.evidence);
      expect(trace.otherData.scenario).toBe(v.scenario(true).id);
      // Slices exist for every lock the run took; CPU processes and task threads are named.
      const acquired = run.events.filter((e) => e.type === 'lock.acquired').length;
      const lockSlices = trace.traceEvents.filter(
        (e) => (e.ph === 'B' || e.ph === 'b') && e.cat === 'lock',
      ).length;
      expect(lockSlices > 0).toBe(acquired > 0);
      const names = trace.traceEvents
        .filter((e) => e.name === 'thread_name')
        .map((e) => e.args!.name);
      const spawned = run.events.filter((e) => e.type === 'sched.spawn');
      expect(spawned.length).toBeGreaterThan(0);
      for (const e of spawned) {
        const d = e.data as { id: number; name: string };
        expect(names).toContain(`${d.name}#${d.id}`);
      }
    },
  );

  it('draws IOMMU invalidation descriptors (submit → done) and page request groups (request → response) as slices', () => {
    let qi = 0;
    let prq = 0;
    for (const v of ZOO.filter((z) => z.id.startsWith('iommu-'))) {
      const run = loadRunText(minimisedReplay(v).text, zooScenario);
      const ev = toChromeTrace(run.events).traceEvents;
      const begins = (prefix: string) =>
        ev.filter((e) => (e.ph === 'B' || e.ph === 'b') && e.name.startsWith(prefix)).length;
      const done = run.events.filter((e) => e.type === 'iommu.qi.done').length;
      expect(begins('qi ')).toBeGreaterThanOrEqual(done);
      qi += begins('qi ');
      const responses = run.events.filter((e) => e.type === 'iommu.page_response').length;
      if (responses > 0) expect(begins('page request')).toBeGreaterThan(0);
      prq += begins('page request');
    }
    expect(qi).toBeGreaterThan(0);
    expect(prq).toBeGreaterThan(0);
  });

  it('draws every system call of the Process facade as a slice of its task (mm.syscall.enter → exit)', () => {
    const v = ZOO.find((z) => z.id === 'odp-no-read-retry')!;
    const run = loadRunText(minimisedReplay(v).text, zooScenario);
    const calls = run.events.filter((e) => e.type === 'mm.syscall.enter');
    expect(calls.map((e) => (e.data as { name: string }).name)).toContain('munmap');
    const slices = toChromeTrace(run.events).traceEvents.filter(
      (e) => (e.ph === 'B' || e.ph === 'b') && e.cat === 'syscall',
    );
    expect(slices.map((e) => e.name).sort()).toEqual(
      calls.map((e) => (e.data as { name: string }).name).sort(),
    );
  });

  it('draws invalidation windows on the mm, callbacks per subscription, and invalidate_seq as a counter (ODP zoo run)', () => {
    const v = ZOO.find((z) => z.id === 'odp-no-read-retry')!;
    const run = loadRunText(minimisedReplay(v).text, zooScenario);
    const trace = toChromeTrace(run.events);
    const ev = trace.traceEvents;
    const procs = new Map<number, string>();
    for (const e of ev) if (e.name === 'process_name') procs.set(e.pid, e.args!.name as string);
    const windows = ev.filter(
      (e) => (e.ph === 'B' || e.ph === 'b') && e.name.startsWith('invalidate UNMAP'),
    );
    expect(windows.length).toBeGreaterThan(0);
    expect(windows.some((e) => (procs.get(e.pid) ?? '').startsWith('mm#1'))).toBe(true);
    const callbacks = ev.filter(
      (e) => (e.ph === 'B' || e.ph === 'b') && e.name === 'invalidate mini-odp',
    );
    expect(callbacks.length).toBe(run.events.filter((e) => e.type === 'mmn.callback').length);
    const seqs = ev
      .filter((e) => e.ph === 'C' && e.name === 'invalidate_seq')
      .map((e) => e.args!.value);
    const logged = run.events
      .filter((e) => e.type === 'mmn.itree.state')
      .map((e) => (e.data as { seq: number }).seq);
    expect(seqs).toEqual(logged);
    // An odd invalidate_seq (a Full period) is visible.
    expect(seqs.some((s) => Number(s) % 2 === 1)).toBe(true);
  });

  it('timestamps come from the log (steps), not the wall clock: the same log exports byte-identically', () => {
    const v = ZOO.find((z) => z.id === 'kvm-flush-after-start')!;
    const s = v.scenario(true);
    const { file } = minimisedReplay(v);
    const a = replay(s, file, { log: true }).sim.log!;
    const b = replay(s, file, { log: true }).sim.log!;
    const ta = JSON.stringify(toChromeTrace(readNdjson(a.toNdjson()).events));
    const tb = JSON.stringify(toChromeTrace(readNdjson(b.toNdjson()).events));
    expect(ta).toBe(tb);
    const last = a.events[a.events.length - 1]!;
    const ts = toChromeTrace(a.events)
      .traceEvents.filter((e) => e.ph !== 'M')
      .map((e) => e.ts);
    expect(Math.max(...ts)).toBeLessThan((last.step + 2) * 1000);
    // Every mark has its own nanosecond: Perfetto keeps timestamps in ns.
    expect(new Set(ts).size).toBe(ts.length);
  });

  it('pairs an unknown namespace generically (an IOMMU built elsewhere): x.start/x.end of one task become a slice', () => {
    const base = { time: 0, ctx: 'cpu0', task: 0 };
    const events: LoggedEvent[] = [
      { ...base, seq: 0, step: 0, type: 'sched.spawn', data: { id: 0, name: 'app', on: 'cpu0' } },
      { ...base, seq: 1, step: 1, type: 'iommu.pri.start', data: { pasid: 1 } },
      { ...base, seq: 2, step: 2, type: 'iommu.iotlb.inv', data: { va: 4096 } },
      { ...base, seq: 3, step: 3, type: 'iommu.pri.end', data: { pasid: 1 } },
    ];
    const ev = toChromeTrace(events).traceEvents;
    expect(ev.filter((e) => e.ph === 'B').map((e) => e.name)).toEqual(['iommu.pri']);
    expect(ev.filter((e) => e.ph === 'E').map((e) => e.name)).toEqual(['iommu.pri']);
    expect(ev.some((e) => e.ph === 'i' && e.name === 'iommu.iotlb.inv' && e.cat === 'iommu')).toBe(
      true,
    );
  });
});
