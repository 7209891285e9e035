/**
 * Reading a scenario file: YAML (or JSON, a subset) parsed with positions (yaml's
 * `LineCounter`), validated with the zod schemas of `schema.ts`, and the cross-references
 * checked (a task's CPU exists, a process or variable is declared). Every error names the file,
 * line:column, the YAML path and what is allowed. Its own file because the loader is the only
 * place that knows about positions; compiling the validated file into a simulation is
 * `compile.ts`.
 */
import { isMap, isNode, isPair, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document } from 'yaml';
import type { z } from 'zod';
import { InputError } from './errors.js';
import type { FilePosition } from './errors.js';
import { OP_NAMES, OPS, ScenarioFileSchema } from './schema.js';
import type { ScenarioFile } from './schema.js';

/** A parsed YAML/JSON document that can say where a path is. */
export interface LocatedDocument {
  /** The file name, for messages. */
  readonly file: string;
  /** The plain value. */
  readonly value: unknown;
  /** Where the node at `path` starts (the longest existing prefix when it does not exist). */
  locate(path: readonly PropertyKey[], key?: string): FilePosition;
}

/**
 * Parses YAML or JSON text keeping positions.
 *
 * @throws InputError at the first syntax error's line and column.
 */
export function parseLocated(text: string, file: string): LocatedDocument {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const err = doc.errors[0];
  if (err !== undefined) {
    const p = lc.linePos(err.pos[0]);
    const msg = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
    throw new InputError(file, { line: p.line, col: p.col }, '(syntax)', msg);
  }
  const at = (offset: number): FilePosition => {
    const p = lc.linePos(offset);
    return { line: p.line, col: p.col };
  };
  return {
    file,
    value: doc.toJS({ maxAliasCount: 100 }) as unknown,
    locate: (path, key) => locateIn(doc, path, key, at),
  };
}

function locateIn(
  doc: Document,
  path: readonly PropertyKey[],
  key: string | undefined,
  at: (offset: number) => FilePosition,
): FilePosition {
  let node: unknown = doc.contents;
  let best: FilePosition = { line: 1, col: 1 };
  const rangeOf = (n: unknown): FilePosition | undefined =>
    isNode(n) && n.range ? at(n.range[0]) : undefined;
  best = rangeOf(node) ?? best;
  for (const step of path) {
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(step),
      );
      if (pair === undefined) return best;
      next = pair.value;
      if (next === null || next === undefined) return rangeOf(pair.key) ?? best;
    } else if (isSeq(node) && typeof step === 'number') {
      next = node.items[step];
    } else return best;
    if (next === undefined) return best;
    node = next;
    best = rangeOf(node) ?? best;
  }
  if (key !== undefined && isMap(node)) {
    const pair = node.items.find(
      (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key,
    );
    if (pair !== undefined) return rangeOf(pair.key) ?? best;
  }
  return best;
}

/** A dotted field path: `tasks.0.do.2.munmap.len`. */
export function fieldName(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(top level)' : path.map(String).join('.');
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p as string];
  }
  return v;
}

interface Located {
  readonly path: PropertyKey[];
  readonly key?: string;
  readonly message: string;
}

/** The first issue of a failed parse, made precise: union branches resolved, keys named. */
function explain(issue: z.core.$ZodIssue, root: unknown, prefix: readonly PropertyKey[]): Located {
  const path = [...prefix, ...issue.path];
  if (issue.code === 'unrecognized_keys') {
    const obj = valueAt(root, path);
    const allowed = allowedKeysAt(path, obj);
    return {
      path: [...path, issue.keys[0]!],
      key: issue.keys[0]!,
      message: `unknown key "${issue.keys[0]}"${allowed !== undefined ? ` (allowed: ${allowed.join(', ')})` : ''}`,
    };
  }
  if (issue.code === 'invalid_union') {
    const raw = valueAt(root, path);
    if (raw !== null && typeof raw === 'object' && !Array.isArray(raw) && isOpPath(path)) {
      const keys = Object.keys(raw);
      if (keys.length !== 1)
        return {
          path,
          message: `an operation is an object with exactly one key, its name (one of: ${OP_NAMES.join(', ')}); got ${keys.length === 0 ? 'none' : keys.join(', ')}`,
        };
      const name = keys[0]!;
      if (!(OP_NAMES as string[]).includes(name))
        return {
          path: [...path, name],
          key: name,
          message: `unknown operation "${name}" (allowed: ${OP_NAMES.join(', ')})`,
        };
      const r = (OPS as Record<string, z.ZodType>)[name]!.safeParse(
        (raw as Record<string, unknown>)[name],
      );
      if (!r.success) return explain(r.error.issues[0]!, root, [...path, name]);
    }
    // Pick the branch matching the value's type.
    const branches = issue.errors;
    const want = typeof raw;
    for (const b of branches) {
      const first = b[0];
      if (first === undefined) continue;
      if (first.code === 'invalid_type' && first.path.length === 0) continue;
      return explain(first, root, path);
    }
    return {
      path,
      message: `expected ${describeUnion(path)} (got ${raw === null ? 'null' : Array.isArray(raw) ? 'a list' : want})`,
    };
  }
  if (issue.code === 'invalid_type') {
    const raw = valueAt(root, path);
    const got =
      raw === undefined
        ? 'nothing (the field is required)'
        : raw === null
          ? 'null'
          : Array.isArray(raw)
            ? 'a list'
            : `${typeof raw} ${JSON.stringify(raw)}`;
    return { path, message: `expected ${issue.expected}, got ${got}` };
  }
  if (issue.code === 'invalid_value') {
    return {
      path,
      message: `${JSON.stringify(valueAt(root, path))} is not allowed (allowed: ${issue.values.map((v) => JSON.stringify(v)).join(', ')})`,
    };
  }
  return { path, message: issue.message };
}

function isOpPath(path: readonly PropertyKey[]): boolean {
  return (
    path.length >= 2 && path[path.length - 2] === 'do' && typeof path[path.length - 1] === 'number'
  );
}

function describeUnion(path: readonly PropertyKey[]): string {
  const last = String(path[path.length - 1]);
  if (last === 'cpu') return 'a CPU index or a device name';
  return 'a whole number or an expression such as "buf + 2p" or "0x1000"';
}

function allowedKeysAt(path: readonly PropertyKey[], obj: unknown): string[] | undefined {
  void obj;
  if (path.length === 0) return Object.keys(ScenarioFileSchema.shape);
  const last = path[path.length - 1];
  if (
    typeof last === 'string' &&
    (OP_NAMES as string[]).includes(last) &&
    isOpPath(path.slice(0, -1))
  )
    return Object.keys((OPS as unknown as Record<string, z.ZodObject>)[last]!.shape);
  const section = path[0];
  const sub: Record<string, () => z.ZodObject | undefined> = {
    processes: () =>
      path.length === 2 ? ScenarioFileSchema.shape.processes.unwrap().unwrap() : undefined,
    tasks: () => (path.length === 2 ? ScenarioFileSchema.shape.tasks.element : undefined),
    plugins: () => (path.length === 2 ? ScenarioFileSchema.shape.plugins.element : undefined),
    explore: () => (path.length === 1 ? ScenarioFileSchema.shape.explore.unwrap() : undefined),
  };
  const s = typeof section === 'string' ? sub[section]?.() : undefined;
  return s !== undefined ? Object.keys(s.shape) : undefined;
}

/**
 * Validates a parsed document against the scenario schema and checks its cross-references.
 *
 * @throws InputError naming the line:column and field of the first problem.
 */
export function validateScenario(doc: LocatedDocument): ScenarioFile {
  const r = ScenarioFileSchema.safeParse(doc.value);
  if (!r.success) {
    const e = explain(r.error.issues[0]!, doc.value, []);
    throw new InputError(
      doc.file,
      doc.locate(e.path.slice(0, e.key !== undefined ? -1 : undefined), e.key),
      fieldName(e.path),
      e.message,
    );
  }
  checkReferences(r.data, doc);
  return r.data;
}

/** What {@link loadScenarioText} returns. */
export interface LoadedText {
  /** The validated scenario. */
  readonly file: ScenarioFile;
  /** The parsed document, for positions. */
  readonly doc: LocatedDocument;
}

/** Parses and validates scenario text (YAML or JSON). @throws InputError */
export function loadScenarioText(text: string, file: string): LoadedText {
  const doc = parseLocated(text, file);
  return { file: validateScenario(doc), doc };
}

function checkReferences(sf: ScenarioFile, doc: LocatedDocument): void {
  const fail = (path: PropertyKey[], message: string): never => {
    throw new InputError(doc.file, doc.locate(path), fieldName(path), message);
  };
  const devices = new Set(sf.devices);
  const cpuOk = (cpu: number | string, path: PropertyKey[]): void => {
    if (typeof cpu === 'number') {
      if (cpu >= sf.cpus)
        fail(
          path,
          `CPU ${cpu} does not exist (the scenario has cpus: ${sf.cpus}, so 0..${sf.cpus - 1}${devices.size > 0 ? ` or a device: ${[...devices].join(', ')}` : ''})`,
        );
    } else if (!devices.has(cpu))
      fail(
        path,
        `"${cpu}" is not a device of "devices" (${devices.size > 0 ? [...devices].join(', ') : 'none declared'}) nor a CPU index`,
      );
  };
  const files = new Set(sf.files.map((f) => f.name));
  const procs = new Set<string>();
  const vms = new Set<string>();
  const mrs = new Set<string>();
  const rdmaDevices = new Set((sf.rdma?.devices ?? []).map((d) => d.name));
  const vars = new Set<string>();
  const tasks = new Set<string>();
  sf.processes.forEach((p, i) => {
    if (procs.has(p.name)) fail(['processes', i, 'name'], `process "${p.name}" is declared twice`);
    procs.add(p.name);
    p.mappings.forEach((m, j) => {
      vars.add(m.name);
      if (m.file !== undefined && !files.has(m.file))
        fail(
          ['processes', i, 'mappings', j, 'file'],
          `no file "${m.file}" in "files" (${[...files].join(', ') || 'none declared'})`,
        );
    });
    p.vms.forEach((v, j) => {
      vms.add(v.name);
      (v.cpus ?? []).forEach((c, k) => cpuOk(c, ['processes', i, 'vms', j, 'cpus', k]));
    });
    p.mrs.forEach((m, j) => {
      mrs.add(m.name);
      if (!rdmaDevices.has(m.device))
        fail(
          ['processes', i, 'mrs', j, 'device'],
          `no RDMA device "${m.device}" in rdma.devices (${[...rdmaDevices].join(', ') || 'none declared'})`,
        );
    });
  });
  (sf.rdma?.devices ?? []).forEach((d, i) => {
    if (d.engine !== undefined && !devices.has(d.engine))
      fail(
        ['rdma', 'devices', i, 'engine'],
        `"${d.engine}" is not a device of "devices" (${[...devices].join(', ') || 'none declared'})`,
      );
    if (d.engine === undefined && !devices.has(d.name))
      fail(
        ['rdma', 'devices', i, 'name'],
        `the device's engines run on device context "${d.name}": add it to "devices" or set "engine"`,
      );
    if (d.faultCpu !== undefined) cpuOk(d.faultCpu, ['rdma', 'devices', i, 'faultCpu']);
  });
  // Names bound by operations anywhere (tasks run concurrently: binding order is a run-time matter).
  const walkBind = (ops: readonly Record<string, unknown>[]): void => {
    for (const op of ops) {
      const [name, args] = Object.entries(op)[0] as [string, Record<string, unknown>];
      if (typeof args.as === 'string') vars.add(args.as);
      if (name === 'fork') procs.add(args.child as string);
      if (name === 'exec') procs.add(args.process as string);
      if (name === 'mr_register') mrs.add(args.name as string);
      if (name === 'vm_create') vms.add(args.vm as string);
      if (name === 'repeat') {
        if (typeof args.var === 'string') vars.add(args.var);
        walkBind(args.do as Record<string, unknown>[]);
      }
      if (name === 'spawn') {
        tasks.add(args.name as string);
        walkBind(args.do as Record<string, unknown>[]);
      }
    }
  };
  sf.tasks.forEach((t) => {
    tasks.add(t.name);
    walkBind(t.do);
  });
  const exprVars = (e: unknown): string[] =>
    typeof e === 'string'
      ? [...e.matchAll(/(?:^|\+)\s*([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!)
      : [];
  const checkExprs = (obj: Record<string, unknown>, path: PropertyKey[]): void => {
    for (const [k, v] of Object.entries(obj)) {
      if (k === 'do' || k === 'name' || k === 'as' || k === 'var') continue;
      for (const name of exprVars(v))
        if (
          !vars.has(name) &&
          [
            'addr',
            'len',
            'offset',
            'value',
            'gpa',
            'size',
            'hva',
            'oldLen',
            'newLen',
            'newAddr',
            'fill',
            'brk',
          ].includes(k)
        )
          fail(
            [...path, k],
            `variable "${name}" is never bound (bound: ${[...vars].join(', ') || 'none'}; bind one with "as:", a mapping's "name" or a repeat's "var")`,
          );
    }
  };
  const walkCheck = (ops: readonly Record<string, unknown>[], path: PropertyKey[]): void => {
    ops.forEach((op, i) => {
      const [name, args] = Object.entries(op)[0] as [string, Record<string, unknown>];
      const here = [...path, i, name];
      checkExprs(args, here);
      if (typeof args.in === 'string' && !procs.has(args.in))
        fail(
          [...here, 'in'],
          `no process "${args.in}" (declared or forked: ${[...procs].join(', ') || 'none'})`,
        );
      if (
        (name === 'oom_reap' || (name === 'spawn' && args.process !== undefined)) &&
        !procs.has(args.process as string)
      )
        fail(
          [...here, 'process'],
          `no process "${String(args.process)}" (${[...procs].join(', ') || 'none'})`,
        );
      if ((name === 'memslot' || name === 'vm_destroy') && !vms.has(args.vm as string))
        fail(
          [...here, 'vm'],
          `no VM "${String(args.vm)}" (declared: ${[...vms].join(', ') || 'none'})`,
        );
      if (
        ['mr_deregister', 'rdma_write', 'rdma_read'].includes(name) &&
        !mrs.has(args.mr as string)
      )
        fail(
          [...here, 'mr'],
          `no memory region "${String(args.mr)}" (${[...mrs].join(', ') || 'none'})`,
        );
      if (name === 'mr_register' && !rdmaDevices.has(args.device as string))
        fail(
          [...here, 'device'],
          `no RDMA device "${String(args.device)}" in rdma.devices (${[...rdmaDevices].join(', ') || 'none declared'})`,
        );
      if (name === 'join' && !tasks.has(args.task as string))
        fail([...here, 'task'], `no task "${String(args.task)}" (${[...tasks].join(', ')})`);
      if (name === 'mmap' && args.file !== undefined && !files.has(args.file as string))
        fail(
          [...here, 'file'],
          `no file "${args.file as string}" in "files" (${[...files].join(', ') || 'none declared'})`,
        );
      if (name === 'spawn') {
        const vc = args.vcpu as { vm: string } | undefined;
        if (vc !== undefined && args.cpu !== undefined)
          fail(here, 'a vCPU task runs on its vCPU\'s CPU: give "cpu" or "vcpu", not both');
        else if (vc !== undefined && !vms.has(vc.vm))
          fail(
            [...here, 'vcpu', 'vm'],
            `no VM "${vc.vm}" (declared or created: ${[...vms].join(', ') || 'none'})`,
          );
        else if (vc === undefined && args.cpu === undefined)
          fail(here, 'a task needs "cpu" (a CPU index or a device) or "vcpu"');
        else if (vc === undefined) cpuOk(args.cpu as number | string, [...here, 'cpu']);
        walkCheck(args.do as Record<string, unknown>[], [...here, 'do']);
      }
      if (name === 'repeat') walkCheck(args.do as Record<string, unknown>[], [...here, 'do']);
    });
  };
  const seen = new Set<string>();
  sf.tasks.forEach((t, i) => {
    if (seen.has(t.name)) fail(['tasks', i, 'name'], `task "${t.name}" is declared twice`);
    seen.add(t.name);
    if (t.vcpu !== undefined) {
      if (t.cpu !== undefined)
        fail(
          ['tasks', i, 'cpu'],
          'a vCPU task runs on its vCPU\'s CPU: give "cpu" or "vcpu", not both',
        );
      if (!vms.has(t.vcpu.vm))
        fail(
          ['tasks', i, 'vcpu', 'vm'],
          `no VM "${t.vcpu.vm}" (declared: ${[...vms].join(', ') || 'none'})`,
        );
    } else if (t.cpu === undefined)
      fail(['tasks', i], 'a task needs "cpu" (a CPU index or a device) or "vcpu"');
    else cpuOk(t.cpu, ['tasks', i, 'cpu']);
    if (t.process !== undefined && !procs.has(t.process))
      fail(
        ['tasks', i, 'process'],
        `no process "${t.process}" (declared: ${[...procs].join(', ') || 'none'})`,
      );
    walkCheck(t.do, ['tasks', i, 'do']);
  });
  sf.processes.forEach((p, i) =>
    p.mappings.forEach((m, j) => checkExprs(m, ['processes', i, 'mappings', j])),
  );
}
