/// <reference lib="dom" />
/**
 * The report's browser script (bundled into each report file by esbuild, never loaded from the
 * network): swim lanes, the violation marker, the step scrubber with the projected state,
 * filters and address search, and for a campaign the summary and uPlot plots. Its own folder:
 * it runs in the browser, not in Node.
 */
import uPlot from 'uplot';
import type { JsonValue, LoggedEvent } from '@mmnsim/core';
import type { IterationRecord, ReportData, RunData } from '../internal/model.js';
import { cloneState, reportStateProjection } from '../internal/state.js';
import type { ReportState } from '../internal/state.js';

declare global {
  interface Window {
    /** Set when the report has rendered: for tests and the benchmark. */
    __report?: { ready: boolean; openMs: number; events: number; scrubTo(index: number): void };
  }
}

const t0 = performance.now();
const data = JSON.parse(document.getElementById('report-data')!.textContent ?? '{}') as ReportData;
const app = document.getElementById('app')!;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}
const hex = (n: number): string => '0x' + n.toString(16);

/** PTE flag letters (the bit layout of mm's `Pte`: P, W, U, A, D, swap, migration, protnone). */
function pteText(pte: number): string {
  const f = pte % 4096;
  const pfn = Math.floor(pte / 4096);
  if ((f & 0x001) === 0) {
    if ((f & 0x400) !== 0) return `migration entry`;
    if ((f & 0x100) !== 0) return `swap slot ${pfn}`;
    if ((f & 0x080) !== 0) return `pfn ${pfn} PROT_NONE`;
    return `0x${pte.toString(16)}`;
  }
  const bits = [
    [0x002, 'W'],
    [0x004, 'U'],
    [0x020, 'A'],
    [0x040, 'D'],
  ] as const;
  return `pfn ${pfn} P${bits.map(([b, c]) => ((f & b) !== 0 ? c : '')).join('')}`;
}

header();
if (data.campaign !== undefined) campaign();
const runSection = el('section', { id: 'run' });
app.append(runSection);
if (data.runs.length > 0) showRun(0);

window.__report = {
  ready: true,
  openMs: performance.now() - t0,
  events: data.runs[0]?.ev.seq.length ?? 0,
  scrubTo: (i: number) => scrubHandler?.(i),
};

function header(): void {
  const h = el('header', {}, el('h1', {}, data.title));
  const run = data.runs[0];
  if (data.campaign === undefined && run !== undefined) {
    const hd = run.header;
    const bits = Object.entries(hd)
      .filter(([k]) => k !== 'format' && k !== 'version')
      .map(([k, v]) => `${k} ${typeof v === 'string' ? v : JSON.stringify(v)}`);
    h.append(
      el(
        'div',
        { class: 'mut', id: 'summary' },
        `${run.ev.seq.length} events · ${lastStep(run) + 1} steps · ${run.tasks.length} tasks · ${bits.join(' · ')}`,
      ),
    );
  }
  app.append(h);
}

function lastStep(run: RunData): number {
  return run.ev.step.length === 0 ? 0 : run.ev.step[run.ev.step.length - 1]!;
}

function campaign(): void {
  const c = data.campaign!;
  const s = c.summary;
  const sec = el('section', { id: 'campaign' });
  sec.append(el('h2', {}, 'Campaign'));
  const rows: [string, string][] = [
    ['scenario', s.scenario],
    ['strategy', JSON.stringify(s.strategy)],
    ['schedules', String(s.iterations)],
    ['steps', `${s.totalSteps} (at most ${s.maxSteps} per schedule, ${s.maxTasks} tasks)`],
    ['failing schedules', String(s.failures)],
    ['distinct violations', String(s.distinct.length)],
  ];
  if (s.elapsedMs !== undefined) {
    rows.push(['schedules/s', (s.iterations / Math.max(1e-9, s.elapsedMs / 1000)).toFixed(0)]);
  }
  if (s.exhausted !== undefined) rows.push(['exhausted', String(s.exhausted)]);
  for (const g of s.pct) {
    rows.push([
      `PCT d=${g.depth}`,
      `${g.runs} clean runs (n=${g.tasks}, k=${g.steps}): P(missed depth-${g.depth} bug) ≤ ${g.missProbability.toPrecision(3)}`,
    ]);
  }
  const table = el('table', { id: 'campaign-summary' });
  for (const [k, v] of rows) table.append(el('tr', {}, el('th', {}, k), el('td', {}, v)));
  sec.append(table);
  sec.append(plots(c.iterations));
  sec.append(el('h2', {}, 'Distinct violations'));
  c.distinct.forEach((d) => {
    const box = el('div', { class: 'distinct' });
    box.append(
      el(
        'div',
        {},
        el('b', {}, d.kind),
        ` — found ${d.count}× (first at schedule ${d.firstIteration})`,
      ),
    );
    box.append(el('div', {}, d.message));
    const run = d.run >= 0 ? data.runs[d.run] : undefined;
    if (run !== undefined) {
      if (run.schedule !== undefined)
        box.append(
          el(
            'div',
            { class: 'mono' },
            `minimised schedule (${run.schedule.length} choices): ${run.schedule.join(' ')}`,
          ),
        );
      if (run.replayCommand !== undefined)
        box.append(el('pre', { class: 'mono' }, run.replayCommand));
      const b = el('button', {}, 'show this run');
      b.addEventListener('click', () => showRun(d.run));
      box.append(b);
    }
    sec.append(box);
  });
  app.append(sec);
}

function plots(iters: readonly IterationRecord[]): HTMLElement {
  const wrap = el('div', { class: 'plots' });
  if (iters.length === 0) return wrap;
  const strategies = [...new Set(iters.map((r) => r.strategy))];
  const palette = ['#2e6bd9', '#d92d20', '#12b76a', '#f79009', '#7a5af8'];
  // 1. Violations found vs schedules run, per strategy.
  const xs = iters.map((_, i) => i + 1);
  const series: (number | null)[][] = strategies.map(() => []);
  const found = strategies.map(() => 0);
  for (const r of iters) {
    const k = strategies.indexOf(r.strategy);
    if (r.violations > 0) found[k]!++;
    strategies.forEach((_, j) => series[j]!.push(found[j]!));
  }
  const p1 = el('div', { class: 'plot', id: 'plot-found' });
  wrap.append(p1);
  new uPlot(
    {
      title: 'failing schedules found vs schedules run',
      width: 420,
      height: 220,
      scales: { x: { time: false } },
      series: [
        { label: 'schedules' },
        ...strategies.map((s, i) => ({ label: s, stroke: palette[i % 5] })),
      ],
    },
    [xs, ...series] as uPlot.AlignedData,
    p1,
  );
  // 2. Steps-per-schedule histogram.
  const steps = iters.map((r) => r.steps);
  const max = Math.max(...steps.slice(0, 100000), 1);
  const bins = 20;
  const width = Math.max(1, Math.ceil((max + 1) / bins));
  const counts = new Array<number>(bins).fill(0);
  for (const s of steps) counts[Math.min(bins - 1, Math.floor(s / width))]!++;
  const p2 = el('div', { class: 'plot', id: 'plot-steps' });
  wrap.append(p2);
  new uPlot(
    {
      title: 'steps per schedule',
      width: 420,
      height: 220,
      scales: { x: { time: false } },
      series: [
        { label: 'steps' },
        {
          label: 'schedules',
          stroke: '#2e6bd9',
          fill: 'rgba(46,107,217,.3)',
          paths: uPlot.paths.bars!({ size: [0.9] }),
        },
      ],
    },
    [counts.map((_, i) => i * width), counts],
    p2,
  );
  // 3. Schedules/s over the campaign (a moving window of 50 schedules).
  if (iters.some((r) => r.atMs > 0)) {
    const rate: number[] = [];
    for (let i = 0; i < iters.length; i++) {
      const j = Math.max(0, i - 50);
      const dt = iters[i]!.atMs - (j === i ? 0 : iters[j]!.atMs);
      rate.push(dt > 0 ? ((i - j || 1) * 1000) / dt : 0);
    }
    const p3 = el('div', { class: 'plot', id: 'plot-rate' });
    wrap.append(p3);
    new uPlot(
      {
        title: 'schedules/s',
        width: 420,
        height: 220,
        scales: { x: { time: false } },
        series: [{ label: 'schedule' }, { label: 'schedules/s', stroke: '#12b76a' }],
      },
      [xs, rate],
      p3,
    );
  }
  return wrap;
}

let scrubHandler: ((i: number) => void) | undefined;

function eventAt(run: RunData, i: number): LoggedEvent {
  const t = run.types[run.ev.type[i]!]!;
  const row = run.ev.data[i]!;
  let d: JsonValue;
  if (t.keys.length === 1 && t.keys[0] === 'value') d = row[0]!;
  else {
    const o: { [k: string]: JsonValue } = {};
    t.keys.forEach((k, j) => {
      if (row[j] !== null) o[k] = row[j]!;
    });
    d = o;
  }
  return {
    seq: run.ev.seq[i]!,
    step: run.ev.step[i]!,
    time: 0,
    ctx: '',
    task: run.ev.task[i]!,
    type: t.name,
    data: d,
  };
}

function showRun(index: number): void {
  const run = data.runs[index]!;
  runSection.replaceChildren();
  const n = run.ev.seq.length;
  const seqIndex = new Map<number, number>();
  run.ev.seq.forEach((s, i) => seqIndex.set(s, i));
  const nsOf = (ti: number): string => {
    const name = run.types[ti]!.name;
    const dot = name.indexOf('.');
    return dot < 0 ? name : name.slice(0, dot);
  };
  const namespaces = [...new Set(run.types.map((_, i) => nsOf(i)))].sort();
  const enabled = new Set(namespaces);
  let typeFilter = '';
  let search: number | null = null;

  // --- the violation and its cited events
  const scrubber = el('input', {
    id: 'scrubber',
    type: 'range',
    min: '0',
    max: String(Math.max(0, n - 1)),
    value: '0',
    step: '1',
  });
  for (const v of run.violations) {
    const box = el('div', { class: 'violation', id: 'violation' });
    box.append(el('b', {}, v.kind), ` (${v.oracle}, step ${v.step}): ${v.message}`);
    const cites = el('div', {}, 'cited events: ');
    for (const s of v.evidence) {
      const i = seqIndex.get(s);
      const a = el(
        'a',
        { class: 'cite', 'data-seq': String(s) },
        `#${s} ${i !== undefined ? run.types[run.ev.type[i]!]!.name : ''}`,
      );
      a.addEventListener('click', () => i !== undefined && scrub(i));
      cites.append(a);
    }
    if (v.seq >= 0) {
      const a = el('a', { class: 'cite', 'data-seq': String(v.seq) }, `#${v.seq} the report`);
      a.addEventListener('click', () => scrub(seqIndex.get(v.seq) ?? 0));
      cites.append(a);
    }
    box.append(cites);
    if (run.replayCommand !== undefined)
      box.append(el('div', { class: 'mono' }, 'replay: ' + run.replayCommand));
    if (run.schedule !== undefined && data.campaign === undefined) {
      const text = `schedule (${run.schedule.length} choices): ${run.schedule.join(' ')}`;
      box.append(el('div', { class: 'mono', id: 'schedule' }, text));
    }
    runSection.append(box);
  }
  if (run.violations.length === 0)
    runSection.append(
      el('div', { class: 'mut', id: 'violation-none' }, 'no violation in this run'),
    );

  // --- controls: filters by subsystem and type, search by address
  const controls = el('div', { id: 'controls' }, 'subsystems: ');
  for (const ns of namespaces) {
    const cb = el('input', { type: 'checkbox', 'data-ns': ns });
    cb.checked = true;
    cb.addEventListener('change', () => {
      if (cb.checked) enabled.add(ns);
      else enabled.delete(ns);
      redraw();
    });
    controls.append(el('label', { class: 'filter' }, cb, ' ' + ns));
  }
  const typeInput = el('input', {
    id: 'type-filter',
    placeholder: 'event type (e.g. smmu.*)',
    list: 'types',
  });
  const dl = el('datalist', { id: 'types' });
  for (const t of run.types) dl.append(el('option', { value: t.name }));
  typeInput.addEventListener('input', () => {
    typeFilter = typeInput.value.trim();
    redraw();
  });
  const searchInput = el('input', { id: 'search', placeholder: 'address (0x40002000)' });
  searchInput.addEventListener('input', () => {
    const v = searchInput.value.trim();
    const num = v === '' ? NaN : Number(v);
    search = Number.isFinite(num) ? num - (num % 4096) : null;
    redraw();
  });
  controls.append(' type: ', typeInput, dl, ' search: ', searchInput);
  runSection.append(controls);

  const typeOk = (ti: number): boolean => {
    if (!enabled.has(nsOf(ti))) return false;
    if (typeFilter === '') return true;
    const name = run.types[ti]!.name;
    if (typeFilter.endsWith('*')) return name.startsWith(typeFilter.slice(0, -1));
    return name.includes(typeFilter);
  };
  const matchesAddress = (i: number): boolean => {
    if (search === null) return false;
    for (const v of run.ev.data[i]!)
      if (typeof v === 'number' && v >= search && v < search + 4096) return true;
    return false;
  };

  // --- swim lanes: one per task, grouped by context
  const LANE = 22;
  const steps = lastStep(run) + 1;
  // Fit the run to the window when it is short; at most 16,000 px wide (a canvas limit) when long.
  const avail = Math.max(400, window.innerWidth - 240);
  const px = Math.max(
    1,
    Math.min(Math.max(4, Math.floor(avail / steps)), 48, Math.floor(16000 / steps)),
  );
  const rows: ({ kind: 'group'; ctx: string } | { kind: 'lane'; task: number })[] = [];
  const laneOf = new Map<number, number>();
  const labels = el('div', { id: 'lane-labels' });
  for (const ctx of run.contexts) {
    const tasks = run.tasks.filter((t) => t.ctx === ctx);
    if (tasks.length === 0) continue;
    rows.push({ kind: 'group', ctx });
    labels.append(
      el(
        'div',
        { class: 'group', 'data-ctx': ctx },
        /^cpu\d+$/.test(ctx) ? ctx : `${ctx} (device)`,
      ),
    );
    for (const t of tasks) {
      laneOf.set(t.id, rows.length);
      rows.push({ kind: 'lane', task: t.id });
      labels.append(
        el(
          'div',
          { class: 'lane', 'data-task': String(t.id), title: `${t.name}#${t.id} on ${ctx}` },
          `${t.name}#${t.id}`,
        ),
      );
    }
  }
  const canvas = el('canvas', { id: 'timeline' });
  const width = steps * px + 40;
  const height = rows.length * LANE;
  canvas.width = width;
  canvas.height = height;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const scroll = el('div', { id: 'timeline-scroll' }, canvas);
  scroll.style.width = `${width}px`;
  const cursor = el('div', { id: 'cursor' });
  cursor.style.height = `${height}px`;
  scroll.append(cursor);
  const v0 = run.violations[0];
  if (v0 !== undefined) {
    const marker = el(
      'div',
      { id: 'violation-marker', title: `${v0.kind} at step ${v0.step}` },
      el('span', {}, `✖ ${v0.kind}`),
    );
    marker.style.left = `${v0.step * px + px / 2 - 1}px`;
    // Near the right edge the label goes on the marker's left.
    if (v0.step * px > width - 260) marker.classList.add('left');
    marker.style.height = `${height}px`;
    scroll.append(marker);
  }
  const wrap = el('div', { id: 'timeline-wrap' }, labels, scroll);
  runSection.append(wrap);
  const colors: Record<string, string> = {
    lock: '#98a2b3',
    srcu: '#7a5af8',
    mmn: '#f79009',
    sched: '#d0d5dd',
    kvm: '#12b76a',
    rdma: '#2e90fa',
  };
  const ctx2d = canvas.getContext('2d')!;
  // Within a step the events of that step are spread over its width.
  const stepStart = new Int32Array(steps + 1).fill(-1);
  for (let i = 0; i < n; i++) if (stepStart[run.ev.step[i]!] === -1) stepStart[run.ev.step[i]!] = i;
  const xs = new Float32Array(n);
  {
    let i = 0;
    while (i < n) {
      let j = i;
      while (j < n && run.ev.step[j] === run.ev.step[i]) j++;
      for (let k = i; k < j; k++) xs[k] = run.ev.step[i]! * px + ((k - i + 0.5) / (j - i)) * px;
      i = j;
    }
  }
  const violationIdx = new Set(run.violations.map((v) => seqIndex.get(v.seq) ?? -1));
  function drawTimeline(): void {
    ctx2d.clearRect(0, 0, width, height);
    rows.forEach((r, k) => {
      if (r.kind === 'group') {
        ctx2d.fillStyle = '#eef2f6';
        ctx2d.fillRect(0, k * LANE, width, LANE);
      } else if (k % 2 === 0) {
        ctx2d.fillStyle = '#fafbfc';
        ctx2d.fillRect(0, k * LANE, width, LANE);
      }
    });
    for (const [task, b, e, , cat] of run.intervals) {
      const lane = laneOf.get(task);
      if (lane === undefined) continue;
      const catName = run.strings[cat]!;
      if (!enabled.has(catName) && catName !== 'sched') continue;
      const x0 = xs[b]!;
      const x1 = e < 0 ? width : xs[e]!;
      ctx2d.fillStyle = colors[catName] ?? '#b2ccff';
      ctx2d.globalAlpha = 0.35;
      const depth = catName === 'lock' ? 12 : catName === 'sched' ? 16 : 4;
      ctx2d.fillRect(x0, lane * LANE + depth, Math.max(1, x1 - x0), 5);
      ctx2d.globalAlpha = 1;
    }
    for (let i = 0; i < n; i++) {
      const lane = laneOf.get(run.ev.task[i]!);
      if (lane === undefined) continue;
      const ti = run.ev.type[i]!;
      const hit = matchesAddress(i);
      if (!typeOk(ti) && !hit) continue;
      ctx2d.fillStyle = violationIdx.has(i) ? '#d92d20' : hit ? '#f79009' : '#344054';
      ctx2d.fillRect(xs[i]! - 0.5, lane * LANE + (hit ? 1 : 4), hit ? 2 : 1, hit ? 20 : 14);
    }
  }
  canvas.addEventListener('click', (ev) => {
    const rect = canvas.getBoundingClientRect();
    const step = Math.floor((ev.clientX - rect.left) / px);
    const i = stepStart[Math.min(steps - 1, Math.max(0, step))]!;
    if (i >= 0) scrub(i);
  });

  // --- scrubber, state and events
  const position = el('span', { id: 'position', class: 'mono' });
  runSection.append(el('div', { id: 'scrub' }, 'step ', scrubber, position));
  const statePane = el('div', { id: 'state' });
  const eventsPane = el('div', { id: 'events', class: 'mono' });
  runSection.append(el('div', { id: 'panes' }, statePane, eventsPane));

  const projection = reportStateProjection();
  const CHECK = 512;
  const checkpoints: ReportState[] = [];
  let cur = projection.init();
  let curIndex = -1; // state after events[0..curIndex]
  checkpoints[0] = cloneState(cur);
  function stateAt(i: number): ReportState {
    if (i < curIndex) {
      const c = Math.floor((i + 1) / CHECK);
      const base = Math.min(c, checkpoints.length - 1);
      cur = cloneState(checkpoints[base]!);
      curIndex = base * CHECK - 1;
    }
    while (curIndex < i) {
      curIndex++;
      cur = projection.apply(cur, eventAt(run, curIndex));
      if ((curIndex + 1) % CHECK === 0 && checkpoints[(curIndex + 1) / CHECK] === undefined) {
        checkpoints[(curIndex + 1) / CHECK] = cloneState(cur);
      }
    }
    return cur;
  }

  function renderState(s: ReportState, i: number): void {
    const parts: HTMLElement[] = [];
    const e = eventAt(run, i);
    parts.push(el('div', { class: 'mut' }, `after event #${e.seq} (${e.type}) at step ${e.step}`));
    const MAXROWS = 64;
    for (const [id, mm] of s.mms) {
      parts.push(el('h2', {}, `mm#${id} ${mm.name}`));
      const vt = el(
        'table',
        { class: 'vmas' },
        el('tr', {}, el('th', {}, 'VMA'), el('th', {}, 'flags')),
      );
      for (const v of [...mm.vmas.values()].sort((a, b) => a.start - b.start).slice(0, MAXROWS)) {
        const f = v.flags;
        vt.append(
          el(
            'tr',
            {},
            el('td', {}, `${hex(v.start)}–${hex(v.end)}`),
            el(
              'td',
              {},
              `${f & 1 ? 'r' : '-'}${f & 2 ? 'w' : '-'}${f & 4 ? 'x' : '-'} 0x${f.toString(16)}`,
            ),
          ),
        );
      }
      parts.push(vt);
      const pt = el(
        'table',
        { class: 'ptes' },
        el('tr', {}, el('th', {}, 'page table'), el('th', {}, 'entry')),
      );
      const ptes = [...mm.ptes.entries()].sort((a, b) => a[0] - b[0]);
      for (const [va, pte] of ptes.slice(0, MAXROWS))
        pt.append(el('tr', {}, el('td', {}, hex(va)), el('td', {}, pteText(pte))));
      if (ptes.length > MAXROWS)
        pt.append(el('tr', {}, el('td', { class: 'mut' }, `… ${ptes.length - MAXROWS} more`)));
      parts.push(pt);
      const it = s.itree.get(id);
      if (it !== undefined)
        parts.push(
          el(
            'div',
            {},
            `interval tree: invalidate_seq ${it.seq}, active ranges ${it.active}, ${it.state}`,
          ),
        );
    }
    parts.push(el('h2', {}, 'secondary MMUs'));
    if (s.smmu.size === 0) parts.push(el('div', { class: 'mut' }, 'none'));
    for (const [name, maps] of s.smmu) {
      const t = el(
        'table',
        { class: 'smmu', 'data-mmu': name },
        el('tr', {}, el('th', {}, `${name} (${maps.size})`), el('th', {}, 'frame')),
      );
      for (const m of [...maps.values()].sort((a, b) => a.va - b.va).slice(0, MAXROWS)) {
        t.append(
          el(
            'tr',
            {},
            el('td', {}, `mm#${m.mm} ${hex(m.va)}`),
            el('td', {}, `pfn ${m.pfn} gen ${m.gen}${m.writable ? ' W' : ''}`),
          ),
        );
      }
      parts.push(t);
    }
    parts.push(el('h2', {}, 'subscriptions'));
    if (s.subs.size === 0) parts.push(el('div', { class: 'mut' }, 'none'));
    const st = el('table', { class: 'subs' });
    for (const sub of s.subs.values()) {
      const range = sub.start !== undefined ? ` [${hex(sub.start)}, ${hex(sub.last!)}]` : '';
      st.append(
        el(
          'tr',
          {},
          el('td', {}, `sub#${sub.sub} ${sub.name}`),
          el('td', {}, `${sub.kind}${range}`),
          el('td', {}, sub.seq >= 0 ? `seq ${sub.seq}` : ''),
          el('td', {}, sub.status),
        ),
      );
    }
    parts.push(st);
    parts.push(el('h2', {}, 'counters'));
    const ct = el('table', { class: 'counters' });
    for (const [key, value] of [...s.counters.values.entries()].sort()) {
      const [group, name] = key.split('|');
      ct.append(
        el('tr', {}, el('td', {}, group!), el('td', {}, name!), el('td', {}, String(value))),
      );
    }
    if (s.counters.values.size === 0) parts.push(el('div', { class: 'mut' }, 'none'));
    parts.push(ct);
    parts.push(el('h2', {}, 'invalidations in progress'));
    if (s.windows.size === 0) parts.push(el('div', { class: 'mut', id: 'no-windows' }, 'none'));
    for (const w of s.windows.values()) {
      parts.push(
        el(
          'div',
          { class: 'window' },
          `range #${w.range} ${w.event} mm#${w.mm} [${hex(w.start)}, ${hex(w.end)}) by task ${w.task} since #${w.since}`,
        ),
      );
    }
    statePane.replaceChildren(...parts);
  }

  function describe(i: number): string {
    const e = eventAt(run, i);
    const t = run.tasks.find((x) => x.id === e.task);
    const d = JSON.stringify(e.data, (_k, v: unknown) =>
      typeof v === 'number' && v >= 4096 * 16 ? hex(v) : v,
    );
    return `#${e.seq} s${e.step} ${t !== undefined ? t.name : '-'} ${e.type} ${d}`;
  }

  function renderEvents(i: number): void {
    const items: HTMLElement[] = [];
    const pick: number[] = [];
    if (search !== null) {
      for (let k = 0; k < n && pick.length < 300; k++) if (matchesAddress(k)) pick.push(k);
      items.push(el('div', { class: 'mut' }, `${pick.length} events touch page ${hex(search)}`));
    } else {
      let before = 0;
      for (let k = i; k >= 0 && before < 25; k--)
        if (typeOk(run.ev.type[k]!)) {
          pick.unshift(k);
          before++;
        }
      let after = 0;
      for (let k = i + 1; k < n && after < 25; k++)
        if (typeOk(run.ev.type[k]!)) {
          pick.push(k);
          after++;
        }
    }
    for (const k of pick) {
      const cls = `ev${k === i ? ' cur' : ''}${matchesAddress(k) ? ' hit' : ''}${violationIdx.has(k) ? ' viol' : ''}`;
      const row = el('div', { class: cls, 'data-index': String(k) }, describe(k));
      row.addEventListener('click', () => scrub(k));
      items.push(row);
    }
    eventsPane.replaceChildren(...items);
  }

  function scrub(i: number): void {
    const k = Math.max(0, Math.min(n - 1, i));
    if (scrubber.value !== String(k)) scrubber.value = String(k);
    const e = eventAt(run, k);
    position.textContent = `step ${e.step} · event #${e.seq} (${k + 1}/${n})`;
    cursor.style.left = `${xs[k]! - 1}px`;
    renderState(stateAt(k), k);
    renderEvents(k);
  }
  scrubHandler = scrub;
  function redraw(): void {
    drawTimeline();
    scrub(Number(scrubber.value));
  }
  scrubber.addEventListener('input', () => scrub(Number(scrubber.value)));
  drawTimeline();
  // Open at the violation, if there is one; else at the end.
  const vi = v0 !== undefined ? (seqIndex.get(v0.seq) ?? n - 1) : n - 1;
  if (n > 0) scrub(vi);
}
