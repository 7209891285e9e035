/**
 * `mmnsim import strace`: turns a parsed `strace -f` trace into a scenario file. The memory
 * syscalls (mmap, munmap, mprotect, madvise, mremap, brk, shmat/shmdt), the process syscalls
 * (fork, vfork, clone and clone3 with and without CLONE_VM, execve, exit, exit_group) become
 * processes and tasks with the trace's addresses, lengths, flags and per-thread order; threads
 * are tasks of one mm; file mappings get simulated files. Everything else is counted. Its own file
 * because the mapping from Linux's calls to the scenario vocabulary is one concept.
 */
import { parseStrace } from './strace-parse.js';
import type { MalformedLine, SyscallRecord } from './strace-parse.js';
import type { ScenarioFileInput } from './schema.js';

const PAGE = 4096;

/** Options of {@link importStrace}. */
export interface StraceImportOptions {
  /** CPUs of the scenario; tasks are placed round-robin (default 2). */
  readonly cpus?: number;
  /** Fail on the first malformed line instead of skipping it. */
  readonly strict?: boolean;
  /** The scenario id (default `strace`). */
  readonly id?: string;
  /** Where the trace came from, for the scenario's `source`. */
  readonly source?: string;
}

/** What the import did, for the summary. */
export interface StraceImportSummary {
  /** Lines read. */
  readonly lines: number;
  /** Syscalls imported, by name. */
  readonly imported: Record<string, number>;
  /** Syscalls not imported (not memory management), by name. */
  readonly other: Record<string, number>;
  /** Memory syscalls not imported and why (`failed`, `madvise MADV_WILLNEED` …), by reason. */
  readonly skipped: Record<string, number>;
  /** `MAP_*` flags the model does not have, dropped (MAP_DENYWRITE, MAP_STACK …), by flag. */
  readonly droppedFlags: Record<string, number>;
  /** Signals delivered, by name. */
  readonly signals: Record<string, number>;
  /** Processes (mm's) the scenario creates. */
  readonly processes: number;
  /** Tasks (threads) it runs. */
  readonly tasks: number;
  /** Malformed lines, skipped. */
  readonly malformed: readonly MalformedLine[];
}

/** What {@link importStrace} returns. */
export interface StraceImport {
  /** The scenario file (before defaults). */
  readonly scenario: ScenarioFileInput;
  /** What was imported, counted, skipped. */
  readonly summary: StraceImportSummary;
}

/** A malformed line with `strict` on. */
export class StraceFormatError extends Error {
  /** Always `'StraceFormatError'`. */
  override readonly name = 'StraceFormatError';

  /** @param bad the line. */
  constructor(readonly bad: MalformedLine) {
    super(`line ${bad.line}:${bad.col}: ${bad.reason}`);
  }
}

type Op = Record<string, Record<string, unknown>>;

interface PidState {
  proc: string | undefined;
  ops: Op[];
  exited: boolean;
  /** The exec op of the current image, to patch its start_brk at the first brk. */
  execOp?: Record<string, unknown>;
  brkSeen: boolean;
}

const MAP_KNOWN: Record<string, string> = {
  MAP_SHARED: 'shared',
  MAP_PRIVATE: 'private',
  MAP_SHARED_VALIDATE: 'shared_validate',
  MAP_FIXED: 'fixed',
  MAP_ANONYMOUS: 'anonymous',
  MAP_NORESERVE: 'noreserve',
  MAP_POPULATE: 'populate',
  MAP_FIXED_NOREPLACE: 'fixed_noreplace',
};
const PROT_KNOWN: Record<string, string> = {
  PROT_READ: 'read',
  PROT_WRITE: 'write',
  PROT_EXEC: 'exec',
};

function num(text: string): number | undefined {
  const t = text.trim();
  if (t === 'NULL') return 0;
  if (/^0x[0-9a-f]+$/i.test(t)) return parseInt(t.slice(2), 16);
  if (/^[0-9]+$/.test(t)) return Number(t);
  return undefined;
}

const MEMORY_CALLS = new Set([
  'mmap',
  'mmap2',
  'munmap',
  'mprotect',
  'madvise',
  'mremap',
  'brk',
  'shmat',
  'shmdt',
  'shmget',
]);
const PROCESS_CALLS = new Set([
  'clone',
  'clone3',
  'fork',
  'vfork',
  'execve',
  'execveat',
  'exit',
  'exit_group',
]);
const ARG_CALLS = new Set([...MEMORY_CALLS, ...PROCESS_CALLS, 'openat', 'open', 'close']);
const CLONES = new Set(['clone', 'clone3', 'fork', 'vfork']);

const hex = (n: number): string => `0x${n.toString(16)}`;

function sanitize(s: string): string {
  const b = s.replace(/[^A-Za-z0-9_.-]/g, '_');
  return /^[A-Za-z_]/.test(b) ? b : `p_${b}`;
}

function bump(r: Record<string, number>, k: string): void {
  r[k] = (r[k] ?? 0) + 1;
}

/**
 * Imports strace output as a scenario file (before defaults, ready to be written as YAML).
 *
 * @throws StraceFormatError on the first malformed line when `strict` is set.
 */
export function importStrace(text: string, options: StraceImportOptions = {}): StraceImport {
  const parsed = parseStrace(text, { splitArgsOf: (n) => ARG_CALLS.has(n) });
  if (options.strict === true && parsed.malformed.length > 0)
    throw new StraceFormatError(parsed.malformed[0]!);
  const cpus = options.cpus ?? 2;
  const imported: Record<string, number> = {};
  const other: Record<string, number> = {};
  const skipped: Record<string, number> = {};
  const droppedFlags: Record<string, number> = {};
  const signals: Record<string, number> = {};
  const pids = new Map<number, PidState>();
  const files = new Map<string, number>(); // name -> pages
  const fdPaths = new Map<string, string>(); // `${pid}:${fd}` -> file name
  const shmSizes = new Map<string, number>();
  const shmAt = new Map<string, number>(); // `${proc}:${addr}` -> len
  const processes: { name: string; brk?: string }[] = [];
  let nextCpu = 0;
  let rootTask: { name: string; cpu: number; process: string; do: Op[] } | undefined;
  let procCount = 0;
  let taskCount = 0;
  const usedNames = new Set<string>();
  const unique = (base: string): string => {
    let n = base;
    for (let k = 2; usedNames.has(n); k++) n = `${base}.${k}`;
    usedNames.add(n);
    return n;
  };

  const state = (pid: number): PidState => {
    let s = pids.get(pid);
    if (s === undefined) {
      // The first thread seen is the traced program; its process is declared up front.
      const proc = unique(`p${pid}`);
      processes.push({ name: proc });
      procCount++;
      taskCount++;
      s = { proc, ops: [], exited: false, brkSeen: false };
      pids.set(pid, s);
      if (rootTask === undefined)
        rootTask = { name: `t${pid}`, cpu: nextCpu++ % cpus, process: proc, do: s.ops };
    }
    return s;
  };
  const emit = (s: PidState, name: string, args: Record<string, unknown>): void => {
    s.ops.push({ [name]: args });
    bump(imported, name);
  };
  const prot = (t: string): string[] => {
    if (t.trim() === 'PROT_NONE') return [];
    return t.split('|').flatMap((f) => {
      const k = PROT_KNOWN[f.trim()];
      if (k === undefined) bump(droppedFlags, f.trim());
      return k !== undefined ? [k] : [];
    });
  };
  const mapFlags = (t: string): string[] =>
    t.split('|').flatMap((f) => {
      const k = MAP_KNOWN[f.trim()];
      if (k === undefined) bump(droppedFlags, f.trim());
      return k !== undefined ? [k] : [];
    });
  const fileFor = (pid: number, fd: string, end: number): string => {
    const name = fdPaths.get(`${pid}:${fd}`) ?? `fd${fd}`;
    files.set(name, Math.max(files.get(name) ?? 1, Math.ceil(end / PAGE)));
    return name;
  };
  const spawnChild = (parent: PidState, child: number, flags: string): void => {
    if (pids.has(child)) return;
    const sharesVm = /\bCLONE_VM\b/.test(flags);
    const s: PidState = { proc: parent.proc, ops: [], exited: false, brkSeen: true };
    pids.set(child, s);
    taskCount++;
    if (!sharesVm && parent.proc !== undefined) {
      const childProc = unique(`p${child}`);
      procCount++;
      emit(parent, 'fork', { child: childProc });
      s.proc = childProc;
    }
    parent.ops.push({
      spawn: {
        name: `t${child}`,
        cpu: nextCpu++ % cpus,
        ...(s.proc !== undefined ? { process: s.proc } : {}),
        thread: sharesVm,
        do: s.ops,
      },
    });
  };
  const doExit = (s: PidState): void => {
    if (s.exited || s.proc === undefined) return;
    s.exited = true;
    emit(s, 'exit', {});
  };

  // A child may print before its parent's clone returns (an unfinished clone): hold its events
  // until the clone that creates it has been imported.
  const parentOf = new Map<number, number>();
  for (const ev of parsed.events)
    if (ev.type === 'syscall' && CLONES.has(ev.call.name)) {
      const child = num(ev.call.ret);
      if (child !== undefined && child > 0) parentOf.set(child, ev.call.pid);
    }
  const held = new Map<number, (typeof parsed.events)[number][]>();
  const flush = (child: number): void => {
    const q = held.get(child);
    held.delete(child);
    for (const e of q ?? []) handle(e);
  };
  const handle = (ev: (typeof parsed.events)[number]): void => {
    const pid = ev.type === 'syscall' ? ev.call.pid : ev.pid;
    if (!pids.has(pid) && parentOf.has(pid)) {
      const q = held.get(pid) ?? [];
      q.push(ev);
      held.set(pid, q);
      return;
    }
    handleEvent(ev);
  };
  const handleEvent = (ev: (typeof parsed.events)[number]): void => {
    if (ev.type === 'signal') {
      bump(signals, ev.signal);
      return;
    }
    if (ev.type === 'exit') {
      doExit(state(ev.pid));
      return;
    }
    const c: SyscallRecord = ev.call;
    const s = state(c.pid);
    const a = c.args;
    const failed = c.errno !== undefined || c.ret === '-1';
    if (!MEMORY_CALLS.has(c.name) && !PROCESS_CALLS.has(c.name)) {
      bump(other, c.name);
      if (c.name === 'openat' || c.name === 'open') {
        const path = /"((?:[^"\\]|\\.)*)"/.exec(c.name === 'openat' ? (a[1] ?? '') : (a[0] ?? ''));
        const fd = num(c.ret);
        if (path !== null && fd !== undefined && !failed)
          fdPaths.set(`${c.pid}:${fd}`, sanitize(path[1]!.split('/').pop() ?? 'file'));
      } else if (c.name === 'close') fdPaths.delete(`${c.pid}:${a[0]}`);
      return;
    }
    if (c.name === 'exit' || c.name === 'exit_group') {
      doExit(s);
      return;
    }
    if (failed) {
      bump(skipped, `${c.name} failed (${c.errno ?? '-1'})`);
      return;
    }
    if (s.exited) {
      bump(skipped, `${c.name} after exit`);
      return;
    }
    switch (c.name) {
      case 'mmap':
      case 'mmap2': {
        const addr = num(c.ret);
        const len = num(a[1] ?? '');
        const off = num(a[5] ?? '0');
        if (addr === undefined || len === undefined || off === undefined || a.length < 6) {
          bump(skipped, 'mmap unreadable');
          break;
        }
        const flags = mapFlags(a[3] ?? '');
        const fixed = flags.includes('fixed') || flags.includes('fixed_noreplace');
        // The kernel chose the address: place it there, refusing to replace anything.
        if (!fixed) flags.push('fixed_noreplace');
        const fd = (a[4] ?? '-1').trim();
        const anon = flags.includes('anonymous');
        emit(s, 'mmap', {
          addr: hex(addr),
          len,
          prot: prot(a[2] ?? ''),
          flags,
          ...(!anon && fd !== '-1' ? { file: fileFor(c.pid, fd, off + len), offset: off } : {}),
        });
        break;
      }
      case 'munmap': {
        const addr = num(a[0] ?? '');
        const len = num(a[1] ?? '');
        if (addr === undefined || len === undefined) bump(skipped, 'munmap unreadable');
        else emit(s, 'munmap', { addr: hex(addr), len });
        break;
      }
      case 'mprotect': {
        const addr = num(a[0] ?? '');
        const len = num(a[1] ?? '');
        if (addr === undefined || len === undefined) bump(skipped, 'mprotect unreadable');
        else emit(s, 'mprotect', { addr: hex(addr), len, prot: prot(a[2] ?? '') });
        break;
      }
      case 'madvise': {
        const addr = num(a[0] ?? '');
        const len = num(a[1] ?? '');
        const adv = (a[2] ?? '').trim();
        const advice =
          adv === 'MADV_DONTNEED' ? 'dontneed' : adv === 'MADV_FREE' ? 'free' : undefined;
        if (addr === undefined || len === undefined) bump(skipped, 'madvise unreadable');
        else if (advice === undefined) bump(skipped, `madvise ${adv} (not modelled)`);
        else emit(s, 'madvise', { addr: hex(addr), len, advice });
        break;
      }
      case 'mremap': {
        const old = num(a[0] ?? '');
        const oldLen = num(a[1] ?? '');
        const newLen = num(a[2] ?? '');
        const res = num(c.ret);
        if (
          old === undefined ||
          oldLen === undefined ||
          newLen === undefined ||
          res === undefined
        ) {
          bump(skipped, 'mremap unreadable');
          break;
        }
        const fl = (a[3] ?? '0').split('|').map((f) => f.trim());
        const flags: string[] = [];
        if (fl.includes('MREMAP_MAYMOVE')) flags.push('maymove');
        // A move to where the kernel put it: MREMAP_FIXED at the traced result.
        if (res !== old) flags.push('fixed');
        emit(s, 'mremap', {
          addr: hex(old),
          oldLen,
          newLen,
          flags,
          ...(res !== old ? { newAddr: hex(res) } : {}),
        });
        break;
      }
      case 'brk': {
        const want = num(a[0] ?? '');
        const res = num(c.ret);
        if (want === undefined || res === undefined) {
          bump(skipped, 'brk unreadable');
          break;
        }
        if (!s.brkSeen) {
          // The first brk of an image reports start_brk (randomised by the kernel at exec).
          s.brkSeen = true;
          if (s.execOp !== undefined) s.execOp.brk = hex(res);
          else {
            const p = processes.find((q) => q.name === s.proc);
            if (p !== undefined && p.brk === undefined) p.brk = hex(res);
          }
        }
        emit(s, 'brk', { addr: want === 0 ? 0 : hex(want) });
        break;
      }
      case 'shmget': {
        const size = num(a[1] ?? '');
        if (size !== undefined) shmSizes.set(c.ret, size);
        bump(other, 'shmget');
        break;
      }
      case 'shmat': {
        const res = num(c.ret);
        const len = Math.ceil((shmSizes.get((a[0] ?? '').trim()) ?? PAGE) / PAGE) * PAGE;
        if (res === undefined) bump(skipped, 'shmat unreadable');
        else {
          const ro = /SHM_RDONLY/.test(a[2] ?? '');
          shmAt.set(`${s.proc}:${res}`, len);
          s.ops.push({
            mmap: {
              addr: hex(res),
              len,
              prot: ro ? ['read'] : ['read', 'write'],
              flags: ['shared', 'anonymous', 'fixed_noreplace'],
            },
          });
          bump(imported, 'shmat');
        }
        break;
      }
      case 'shmdt': {
        const addr = num(a[0] ?? '');
        const len = addr !== undefined ? shmAt.get(`${s.proc}:${addr}`) : undefined;
        if (addr === undefined || len === undefined) bump(skipped, 'shmdt of an unknown segment');
        else {
          s.ops.push({ munmap: { addr: hex(addr), len } });
          bump(imported, 'shmdt');
        }
        break;
      }
      case 'clone':
      case 'clone3':
      case 'fork':
      case 'vfork': {
        const child = num(c.ret);
        if (child === undefined || child === 0) {
          bump(skipped, `${c.name} unreadable`);
          break;
        }
        const flags =
          c.name === 'vfork' ? 'CLONE_VM|CLONE_VFORK' : c.name === 'fork' ? '' : a.join(',');
        spawnChild(s, child, flags);
        bump(imported, c.name);
        flush(child);
        break;
      }
      case 'execve':
      case 'execveat': {
        const path = /"((?:[^"\\]|\\.)*)"/.exec(a[c.name === 'execve' ? 0 : 1] ?? '');
        const base = sanitize((path?.[1] ?? 'exec').split('/').pop() || 'exec');
        const name = unique(`${base}.${c.pid}`);
        procCount++;
        const op: Record<string, unknown> = { process: name };
        s.ops.push({ exec: op });
        bump(imported, c.name);
        s.proc = name;
        s.execOp = op;
        s.brkSeen = false;
        break;
      }
    }
  };
  for (const ev of parsed.events) handle(ev);
  for (const [child, q] of [...held.entries()]) {
    held.delete(child);
    for (const e of q) handleEvent(e);
  }
  const scenario: ScenarioFileInput = {
    id: options.id ?? 'strace',
    ...(options.source !== undefined ? { source: options.source } : {}),
    cpus,
    plugins: [{ use: '@mmnsim/mm', options: { totalFrames: 4096 } }],
    files: [...files.entries()].map(([name, pages]) => ({ name, pages })),
    processes,
    tasks: rootTask !== undefined ? [rootTask] : [{ name: 'idle', cpu: 0, do: [] }],
    expect: { outcome: 'clean' },
  };
  return {
    scenario,
    summary: {
      lines: parsed.lines,
      imported,
      other,
      skipped,
      droppedFlags,
      signals,
      processes: procCount,
      tasks: taskCount,
      malformed: parsed.malformed,
    },
  };
}
