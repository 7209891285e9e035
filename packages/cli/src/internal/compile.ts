/**
 * Turning a validated scenario file and its resolved plugins into a core `Scenario`: the
 * simulation's options (CPUs, devices, plugins with their options) and a `setup` that attaches
 * the oracles, creates files, RDMA devices and processes, runs the declared mappings, VMs and
 * memory regions in an `init` task, then starts the workload's tasks. Its own file because it is
 * the bridge between the file format and the plugins' services.
 */
import type { Plugin, Scenario, Simulation, Task } from '@mmnsim/core';
import { KvmService } from '@mmnsim/drivers-kvm';
import { RdmaService } from '@mmnsim/drivers-rdma';
import type { RdmaDevice } from '@mmnsim/drivers-rdma';
import { MmService, notifierOracles, PAGE_SIZE } from '@mmnsim/mm';
import type { SecondaryMmuOracleOptions } from '@mmnsim/mm';
import type { TaskGen } from '@mmnsim/core';
import { InputError } from './errors.js';
import { evalExpr } from './expr.js';
import type { LocatedDocument } from './load.js';
import { fieldName } from './load.js';
import { mapBits, protBits, registerMr, runOps, ScenarioRunError } from './ops.js';
import type { TaskContext, World } from './ops.js';
import type { FoundPlugin } from './plugins.js';
import type { ScenarioFile } from './schema.js';

function has<T>(
  sim: Simulation,
  id: { readonly name?: string } | (abstract new (...a: never[]) => T),
): boolean {
  try {
    sim.get(id as never);
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks each plugin's options against its schema before any simulation is built, so an error
 * points at the scenario line of those options; and that each plugin's `requires` are present.
 *
 * @throws InputError at `plugins.N.options.<field>`.
 */
export function checkPluginOptions(
  sf: ScenarioFile,
  found: readonly FoundPlugin[],
  doc: LocatedDocument,
): Plugin[] {
  const plugins = found.map((f, i) => {
    const input = sf.plugins[i]!.options;
    const plugin = f.factory(input);
    const schema = plugin.options?.schema;
    if (schema !== undefined) {
      const r = schema.safeParse(input ?? {});
      if (!r.success) {
        const issue = r.error.issues[0]!;
        const keys = (issue as { keys?: string[] }).keys;
        const path = [
          'plugins',
          i,
          'options',
          ...issue.path,
          ...(keys !== undefined ? [keys[0]!] : []),
        ] as PropertyKey[];
        const detail =
          keys !== undefined
            ? `plugin "${plugin.id}": unknown option "${keys[0]}"`
            : `plugin "${plugin.id}": ${issue.message}`;
        throw new InputError(
          doc.file,
          doc.locate(keys !== undefined ? path.slice(0, -1) : path, keys?.[0]),
          fieldName(path),
          detail,
        );
      }
    }
    return plugin;
  });
  const ids = new Set(plugins.map((p) => p.id));
  plugins.forEach((p, i) => {
    for (const r of p.requires)
      if (!ids.has(r))
        throw new InputError(
          doc.file,
          doc.locate(['plugins', i, 'use']),
          `plugins.${i}.use`,
          `plugin "${p.id}" requires plugin "${r}", which the scenario does not list`,
        );
  });
  return plugins;
}

/**
 * Compiles a validated scenario file into a `Scenario` for `explore`, `replay` and `minimise`.
 *
 * @param sf the validated file.
 * @param found its plugins, resolved, in file order.
 * @param id the scenario id (the file's `id`, or its name).
 */
export function compileScenario(
  sf: ScenarioFile,
  found: readonly FoundPlugin[],
  id: string,
): Scenario {
  const needsInit = sf.processes.some(
    (p) => p.mappings.length > 0 || p.vms.length > 0 || p.mrs.length > 0,
  );
  return {
    id,
    options: () => ({
      cpus: sf.cpus,
      devices: [...sf.devices],
      log: false,
      ...(sf.maxSteps !== undefined ? { maxSteps: sf.maxSteps } : {}),
      plugins: found.map((f, i) => f.factory(sf.plugins[i]!.options)),
    }),
    setup(sim: Simulation) {
      const hasMm = has(sim, MmService);
      const hasRdma = has(sim, RdmaService);
      if (sf.oracles.includes('notifier') && hasMm) {
        const secondary: SecondaryMmuOracleOptions = hasRdma
          ? sim.get(RdmaService).oracleOptions()
          : {};
        for (const o of notifierOracles(sim, secondary)) sim.addOracle(o);
      }
      const w: World = {
        sim,
        vars: new Map(),
        procs: new Map(),
        files: new Map(),
        vms: new Map(),
        devices: new Map(),
        qps: new Map(),
        mrs: new Map(),
        tasks: new Map(),
      };
      if (!hasMm) {
        if (sf.processes.length > 0 || sf.files.length > 0)
          throw new ScenarioRunError('plugins', 'processes and files need the @mmnsim/mm plugin');
      } else {
        const svc = sim.get(MmService);
        for (const f of sf.files) {
          const content = new Map<number, number[]>();
          for (const c of f.content)
            content.set(c.page, [...(content.get(c.page) ?? []), c.word, c.value]);
          w.files.set(f.name, svc.newFile(f.name, f.pages, content));
        }
        for (const p of sf.processes) {
          const proc = svc.createProcess(p.name);
          if (p.brk !== undefined) {
            proc.mm.brkStart = evalExpr(p.brk, w.vars);
            proc.mm.brk = proc.mm.brkStart;
          }
          w.procs.set(p.name, proc);
        }
      }
      if (sf.rdma !== undefined) {
        if (!hasRdma)
          throw new ScenarioRunError('rdma', 'rdma.devices need the @mmnsim/drivers-rdma plugin');
        const rdma = sim.get(RdmaService);
        for (const d of sf.rdma.devices) {
          const dev: RdmaDevice = rdma.createDevice(d.name, {
            ...(d.engine !== undefined ? { engine: d.engine } : {}),
            ...(d.faultCpu !== undefined ? { faultCpu: d.faultCpu } : {}),
            bugs: d.bugs,
          });
          w.devices.set(d.name, dev);
          w.qps.set(dev, dev.createQp());
        }
      }
      const defaultProc = sf.processes[0]?.name;
      const start = (): void => {
        sf.tasks.forEach((t, i) => {
          const procName = t.process ?? defaultProc;
          const ctxProc = procName !== undefined ? w.procs.get(procName) : undefined;
          const path = `tasks.${i}.do`;
          let task: Task;
          if (t.vcpu !== undefined) {
            const vm = w.vms.get(t.vcpu.vm);
            if (vm === undefined)
              throw new ScenarioRunError(`tasks.${i}.vcpu.vm`, `VM "${t.vcpu.vm}" was not created`);
            if (t.vcpu.index >= vm.vcpus.length)
              throw new ScenarioRunError(
                `tasks.${i}.vcpu.index`,
                `VM "${t.vcpu.vm}" has ${vm.vcpus.length} vCPUs (0..${vm.vcpus.length - 1})`,
              );
            task = vm
              .vcpu(t.vcpu.index)
              .run((cpu) => runOps(w, { proc: ctxProc, guest: cpu }, t.do, path), t.name);
          } else {
            const ctx: TaskContext = { proc: ctxProc };
            task = sim.spawn(t.name, t.cpu!, () => runOps(w, ctx, t.do, path));
          }
          w.tasks.set(t.name, task);
        });
      };
      if (!needsInit) {
        start();
        return;
      }
      sim.spawn('init', 0, function* (): TaskGen<void> {
        const ev = (e: unknown): number => evalExpr(e as number | string, w.vars);
        for (const [pi, p] of sf.processes.entries()) {
          const proc = w.procs.get(p.name)!;
          for (const [mi, m] of p.mappings.entries()) {
            const file = m.file !== undefined ? w.files.get(m.file)! : null;
            const len = ev(m.len);
            const addr = yield* proc.mmap(
              m.addr !== undefined ? ev(m.addr) : 0,
              len,
              protBits(m.prot),
              mapBits(m.flags),
              file,
              m.offset !== undefined ? ev(m.offset) : 0,
            );
            if (addr < 0)
              throw new ScenarioRunError(
                `processes.${pi}.mappings.${mi}`,
                `mmap failed with ${addr}`,
              );
            w.vars.set(m.name, addr);
            if (m.fill !== undefined) {
              const base = ev(m.fill);
              for (let k = 0; k * PAGE_SIZE < len; k++)
                yield* proc.store(addr + k * PAGE_SIZE, base + k);
            }
          }
          if (p.vms.length > 0) {
            if (!has(sim, KvmService))
              throw new ScenarioRunError(
                `processes.${pi}.vms`,
                'VMs need the @mmnsim/drivers-kvm plugin',
              );
            const kvm = sim.get(KvmService);
            for (const [vi, v] of p.vms.entries()) {
              const vm = yield* kvm.createVm(proc, {
                name: v.name,
                vcpus: v.vcpus,
                ...(v.cpus !== undefined ? { cpus: v.cpus } : {}),
              });
              w.vms.set(v.name, vm);
              for (const [si, s] of v.memslots.entries()) {
                const r = yield* vm.setMemslot({
                  slot: s.slot,
                  gpa: ev(s.gpa),
                  size: ev(s.size),
                  hva: ev(s.hva),
                });
                if (r !== 0)
                  throw new ScenarioRunError(
                    `processes.${pi}.vms.${vi}.memslots.${si}`,
                    `KVM_SET_USER_MEMORY_REGION failed with ${r}`,
                  );
              }
            }
          }
          for (const [ri, m] of p.mrs.entries())
            yield* registerMr(w, proc, m, `processes.${pi}.mrs.${ri}`, (e) => ev(e));
        }
        start();
      });
    },
  };
}
