// strace import of real programs (recorded with Debian's strace: `strace -f -e
// trace=memory,process` of `sh -c 'ls /usr | wc -l'`, of perl with -ttt, of gcc -c with -tt and of a
// threaded python with -T): the imported scenario rebuilds, for every process, the VMA layout the
// trace implies after its last syscall (checked against an independent page map built from the
// raw lines), and runs clean under `mmnsim explore --attach rdma` and `--attach kvm` for 200
// schedules.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import {
  compileScenario,
  importStrace,
  parseStrace,
  resolvePlugin,
  ScenarioFileSchema,
} from '@mmnsim/cli';
import type { OpValue } from '@mmnsim/cli';
import { runScenario } from '@mmnsim/core';
import { MmService, Vm } from '@mmnsim/mm';
import { cli } from './helpers.js';

const FIX = join(import.meta.dirname, 'fixtures/strace');
const TRACES = ['sh-ls-wc.txt', 'perl-ttt.txt', 'gcc-tt.txt', 'python-threads-T.txt'];
const PAGE = 4096;

/** Reference: page → "rwx" of each image (pid after its last execve), from the raw lines. */
function expectedLayouts(text: string): Map<string, Map<number, string>> {
  const out = new Map<string, Map<number, string>>();
  const cur = new Map<number, Map<number, string>>();
  const pending = new Map<number, string>();
  const used = new Set<string>();
  const num = (s: string): number =>
    s.trim() === 'NULL' ? 0 : s.trim().startsWith('0x') ? parseInt(s.trim(), 16) : Number(s.trim());
  const prot = (s: string): string =>
    (s.includes('PROT_READ') ? 'r' : '-') +
    (s.includes('PROT_WRITE') ? 'w' : '-') +
    (s.includes('PROT_EXEC') ? 'x' : '-');
  let brk = new Map<number, number>();
  for (let line of text.split('\n')) {
    const m0 = /^(\d+)\s+(?:[\d:.]+\s+)?(.*)$/.exec(line);
    if (m0 === null) continue;
    const pid = Number(m0[1]);
    line = m0[2]!.replace(/\s+<\d+\.\d+>$/, '');
    if (line.endsWith('<unfinished ...>')) {
      pending.set(pid, line.replace(/\s*<unfinished \.\.\.>$/, ''));
      continue;
    }
    const res = /^<\.\.\. \w+ resumed>(.*)$/.exec(line);
    if (res !== null) line = (pending.get(pid) ?? '') + res[1];
    const m = /^(\w+)\((.*)\)\s+= (\S+)/.exec(line);
    if (m === null) continue;
    const [, name, argText, ret] = m as unknown as [string, string, string, string];
    if (ret === '-1') continue;
    const a = argText.split(', ');
    if (name === 'execve') {
      const exe = (/"([^"]*)"/.exec(argText)?.[1] ?? '').split('/').pop()!;
      const pages = new Map<number, string>();
      let key = `${exe}.${pid}`;
      for (let k = 2; used.has(key); k++) key = `${exe}.${pid}.${k}`; // the importer's names
      used.add(key);
      out.set(key, pages);
      // The image this execve replaced is gone (its mm is torn down): only the last is compared.
      for (const [k, v] of out) if (v === cur.get(pid)) out.delete(k);
      cur.set(pid, pages);
      brk = new Map([...brk].filter(([p]) => p !== pid));
      continue;
    }
    if ((name === 'clone' || name === 'clone3') && argText.includes('CLONE_VM')) {
      // A thread: its calls act on the same mm.
      const shared = cur.get(pid);
      if (shared !== undefined) cur.set(num(ret), shared);
      continue;
    }
    const pages = cur.get(pid);
    if (pages === undefined) continue;
    const set = (start: number, len: number, v: string | null): void => {
      for (let p = start; p < start + len; p += PAGE)
        if (v === null) pages.delete(p);
        else pages.set(p, v);
    };
    const up = (n: number): number => Math.ceil(n / PAGE) * PAGE;
    if (name === 'mmap') set(num(ret), up(num(a[1]!)), prot(a[2]!));
    else if (name === 'munmap') set(num(a[0]!), up(num(a[1]!)), null);
    else if (name === 'mprotect') {
      for (let p = num(a[0]!); p < num(a[0]!) + up(num(a[1]!)); p += PAGE)
        if (pages.has(p)) pages.set(p, prot(a[2]!));
    } else if (name === 'mremap') {
      const old = num(a[0]!);
      const v = pages.get(old) ?? 'rw-';
      set(old, up(num(a[1]!)), null);
      set(num(ret), up(num(a[2]!)), v);
    } else if (name === 'brk') {
      const r = num(ret);
      const start = brk.get(pid);
      if (start === undefined) brk.set(pid, r);
      else {
        for (const p of [...pages.keys()])
          if (p >= start && pages.get(p) === 'rw-' && p >= up(r) && p < up(r) + (1 << 30))
            pages.delete(p);
        set(start, up(r) - start, 'rw-');
      }
    }
  }
  return out;
}

function withoutExits(ops: OpValue[]): OpValue[] {
  return ops
    .filter((o) => !('exit' in o))
    .map((o) =>
      'spawn' in o
        ? { spawn: { ...(o.spawn as object), do: withoutExits((o.spawn as { do: OpValue[] }).do) } }
        : o,
    );
}

describe('strace import of real programs', () => {
  for (const t of TRACES) {
    it(`${t}: every image's VMA layout after its last syscall is what the trace implies`, async () => {
      const text = readFileSync(join(FIX, t), 'utf8');
      const { scenario, summary } = importStrace(text, { id: 'imported' });
      expect(summary.malformed).toEqual([]);
      expect(summary.imported.mmap).toBeGreaterThan(10);
      // Keep the mm's alive at the end (no exit) to look at their layouts.
      const sf = ScenarioFileSchema.parse(scenario);
      sf.tasks = sf.tasks.map((task) => ({ ...task, do: withoutExits(task.do) }));
      const mm = await resolvePlugin('@mmnsim/mm', undefined, FIX);
      const { sim, result } = runScenario(compileScenario(sf, [mm], 'imported'), 1, 'round-robin');
      expect(result.error).toBeUndefined();
      expect(result.violations).toEqual([]);
      const expected = expectedLayouts(text);
      expect(expected.size).toBeGreaterThan(0);
      const procs = sim.get(MmService).processes;
      for (const [name, pages] of expected) {
        const p = procs.find((q) => q.name === name);
        expect(p).toBeDefined();
        const got = new Map<number, string>();
        for (const v of p!.mm.vmas.all)
          for (let a = v.start; a < v.end; a += PAGE)
            got.set(
              a,
              ((v.flags & Vm.READ) !== 0 ? 'r' : '-') +
                ((v.flags & Vm.WRITE) !== 0 ? 'w' : '-') +
                ((v.flags & Vm.EXEC) !== 0 ? 'x' : '-'),
            );
        expect({ name, pages: got.size }).toEqual({ name, pages: pages.size });
        expect([...got].sort((x, y) => x[0] - y[0])).toEqual(
          [...pages].sort((x, y) => x[0] - y[0]),
        );
      }
    });
  }

  it('reads pid prefixes of both forms, -tt/-ttt timestamps, -T durations, unfinished/resumed pairs, signals and exits', () => {
    const p = parseStrace(
      [
        '[pid  7] 12:00:00.000001 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>',
        '8 1700000000.123456 brk(NULL) = 0x1000 <0.000010>',
        '7 <... mmap resumed>) = 0x7f0000000000 <0.000020>',
        '7 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---',
        '7 munmap(0x7f0000000000, 4096) = -1 EINVAL (Invalid argument)',
        '8 +++ exited with 0 +++',
      ].join('\n'),
    );
    expect(p.malformed).toEqual([]);
    expect(
      p.events.map((e) =>
        e.type === 'syscall'
          ? `${e.call.pid}:${e.call.name}=${e.call.ret}${e.call.errno ?? ''}`
          : `${e.pid}:${e.type}`,
      ),
    ).toEqual(['8:brk=0x1000', '7:mmap=0x7f0000000000', '7:signal', '7:munmap=-1EINVAL', '8:exit']);
  });

  for (const t of TRACES) {
    it(`${t}: the imported scenario runs clean under mmnsim explore --attach rdma for 200 schedules`, async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'mmnsim-strace-')), 'imported.yaml');
      const imp = await cli('import', 'strace', join(FIX, t), '-o', out);
      expect(imp.code).toBe(0);
      writeFileSync(out, readFileSync(out, 'utf8')); // the file written is what explore reads
      const r = await cli('explore', out, '--attach', 'rdma', '--schedules', '200', '--json');
      expect(r.err).toBe('');
      const rep = JSON.parse(r.out) as { iterations: number; failures: unknown[] };
      expect(rep.failures).toEqual([]);
      expect(rep.iterations).toBe(200);
      expect(r.code).toBe(0);
    }, 60_000);
  }

  for (const t of TRACES) {
    it(`${t}: the imported scenario runs clean under mmnsim explore --attach kvm for 200 schedules`, async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'mmnsim-strace-')), 'imported.yaml');
      expect((await cli('import', 'strace', join(FIX, t), '-o', out)).code).toBe(0);
      const r = await cli('explore', out, '--attach', 'kvm', '--schedules', '200', '--json');
      expect(r.err).toBe('');
      const rep = JSON.parse(r.out) as { iterations: number; failures: unknown[] };
      expect(rep.failures).toEqual([]);
      expect(rep.iterations).toBe(200);
      expect(r.code).toBe(0);
    }, 60_000);
  }

  it('--attach kvm: each VM gets its memslot before its vCPU enters the guest, faults and is invalidated, and is destroyed before its process exits (sh-ls-wc.txt)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mmnsim-strace-'));
    const out = join(dir, 'imported.yaml');
    expect((await cli('import', 'strace', join(FIX, 'sh-ls-wc.txt'), '-o', out)).code).toBe(0);
    const log = join(dir, 'run.ndjson');
    const r = await cli('run', out, '--attach', 'kvm', '--seed', '3', '--log', log);
    expect(r.code).toBe(0);
    const events = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; type: string; data: Record<string, number> });
    const at = (type: string, pred: (d: Record<string, number>) => boolean): number =>
      events.findIndex((e) => e.type === type && pred(e.data));
    const created = events.filter((e) => e.type === 'kvm.vm.create');
    expect(created.length).toBeGreaterThanOrEqual(2); // sh, then ls and wc after their execs
    for (const c of created) {
      const vm = c.data.vm!;
      const slot = at('kvm.memslot', (d) => d.vm === vm);
      const enter = at('kvm.vcpu.enter', (d) => d.vm === vm);
      const destroy = at('kvm.vm.destroy', (d) => d.vm === vm);
      const exit = at('mm.exit', (d) => d.mm === c.data.mm);
      expect(slot).toBeGreaterThan(events.indexOf(c));
      expect(enter).toBeGreaterThan(slot);
      expect(destroy).toBeGreaterThan(enter);
      expect(exit === -1 || exit > destroy).toBe(true);
    }
    expect(events.filter((e) => e.type === 'kvm.fault').length).toBeGreaterThan(0);
    expect(events.filter((e) => e.type === 'kvm.spte.map').length).toBeGreaterThan(0);
    expect(events.filter((e) => e.type === 'kvm.invalidate.start').length).toBeGreaterThan(0);
  }, 60_000);
});
