/**
 * The scenario file format as zod schemas: the one definition both the loader validates with and
 * `mmnsim schema` turns into a JSON Schema (`z.toJSONSchema`), so the two cannot drift. Its own
 * file because it is the format's reference; the meaning of each operation is in `ops.ts`.
 */
import { RDMA_BUGS } from '@mmnsim/drivers-rdma';
import { z } from 'zod';

/** A value term: decimal, `0x` hex, `<n>p` (pages), a variable, or `<var>*<n>[p]`. */
const TERM = String.raw`(?:0x[0-9a-fA-F]+|[0-9]+p?|[A-Za-z_][A-Za-z0-9_]*(?:\*(?:0x[0-9a-fA-F]+|[0-9]+p?))?)`;
/** An expression: terms joined by `+`. */
export const EXPR_RE = new RegExp(String.raw`^\s*${TERM}(?:\s*\+\s*${TERM})*\s*$`);

/**
 * An address, length or value: a whole number, or a string expression such as `buf + 2p`
 * (`p` = pages of 4 KiB), `0x7f0000001000`, `i*1p + base`.
 */
export const Expr = z.union([
  z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  z
    .string()
    .regex(
      EXPR_RE,
      'an expression: numbers (decimal, 0x hex, <n>p for pages) and variables joined by +',
    ),
]);

const Name = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'a name: letters, digits, _ . -');
const VarName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a variable name: letters, digits, _');

/** `PROT_*` names. */
export const PROT_NAMES = ['read', 'write', 'exec'] as const;
/** `MAP_*` names. */
export const MAP_NAMES = [
  'shared',
  'private',
  'shared_validate',
  'fixed',
  'anonymous',
  'noreserve',
  'populate',
  'fixed_noreplace',
] as const;
/** `MADV_*` names the model implements. */
export const MADV_NAMES = ['dontneed', 'free'] as const;
/** `MREMAP_*` names. */
export const MREMAP_NAMES = ['maymove', 'fixed', 'dontunmap'] as const;
/** `IB_ACCESS_*` names. */
export const IB_ACCESS_NAMES = [
  'local_write',
  'remote_write',
  'remote_read',
  'remote_atomic',
  'mw_bind',
] as const;

const Prot = z.array(z.enum(PROT_NAMES)).describe('PROT_* bits; [] is PROT_NONE');
const MapFlags = z.array(z.enum(MAP_NAMES)).min(1).describe('MAP_* flags');
const Access = z.array(z.enum(IB_ACCESS_NAMES)).describe('IB_ACCESS_* bits');

const In = {
  /** The process to act on (default: the task's). */
  in: Name.optional().describe("the process to act on (default: the task's)"),
};
const As = {
  /** Bind the result to this variable. */
  as: VarName.optional().describe('bind the result to this variable'),
};

const MmapArgs = z.strictObject({
  /** The address (an expression). */
  addr: Expr.optional().describe('the address (a hint unless fixed; default 0)'),
  /** The length in bytes (an expression; `4p` is 4 pages). */
  len: Expr,
  /** `PROT_*` bits by name ([] is PROT_NONE). */
  prot: Prot,
  /** The flags, by name. */
  flags: MapFlags,
  /** A file of `files`. */
  file: Name.optional().describe('a file of `files`'),
  /** An offset in bytes (an expression). */
  offset: Expr.optional(),
  ...In,
  ...As,
});
const RangeArgs = z.strictObject({
  /** The address (an expression). */
  addr: Expr,
  /** The length in bytes (an expression; `4p` is 4 pages). */
  len: Expr,
  ...In,
});

/** Every workload operation: one key, the operation's name, holding its arguments. */
export const OPS = {
  /** `mmap(addr, len, prot, flags, file, offset)`. */
  mmap: MmapArgs,
  /** `munmap(addr, len)`. */
  munmap: RangeArgs,
  /** `mprotect(addr, len, prot)`. */
  mprotect: z.strictObject({
    /** The address (an expression). */
    addr: Expr,
    /** The length in bytes (an expression; `4p` is 4 pages). */
    len: Expr,
    /** `PROT_*` bits by name ([] is PROT_NONE). */
    prot: Prot,
    ...In,
  }),
  /** `madvise(addr, len, advice)`. */
  madvise: z.strictObject({
    /** The address (an expression). */
    addr: Expr,
    /** The length in bytes (an expression; `4p` is 4 pages). */
    len: Expr,
    /** `MADV_*` advice. */
    advice: z.enum(MADV_NAMES),
    ...In,
  }),
  /** `mremap(addr, oldLen, newLen, flags, newAddr)`. */
  mremap: z.strictObject({
    /** The address (an expression). */
    addr: Expr,
    /** The old length in bytes. */
    oldLen: Expr,
    /** The new length in bytes. */
    newLen: Expr,
    /** The flags, by name. */
    flags: z.array(z.enum(MREMAP_NAMES)).default([]),
    /** The target address with `fixed`. */
    newAddr: Expr.optional(),
    ...In,
    ...As,
  }),
  /** The process's `start_brk` (an expression). */
  brk: z.strictObject({
    /** The address (an expression). */
    addr: Expr,
    ...In,
    ...As,
  }),
  /** `fork()`: the child process gets the name `child`. */
  fork: z.strictObject({
    /** The child process's name. */
    child: Name,
    ...In,
  }),
  /** `execve`: the task gets a new mm (the old one loses its reference). */
  exec: z.strictObject({
    /** A process name. */
    process: Name.describe("the new image's process name"),
    /** The process's `start_brk` (an expression). */
    brk: Expr.optional().describe("the new image's start_brk (default the model's BRK_BASE)"),
  }),
  /** The task drops its mm reference (`mmput`). */
  exit: z.strictObject({ ...In }),
  /** A CPU load of a 32-bit word. */
  load: z.strictObject({
    /** The address (an expression). */
    addr: Expr,
    ...In,
    ...As,
  }),
  /** A CPU store of a 32-bit word. */
  store: z.strictObject({
    /** The address (an expression). */
    addr: Expr,
    /** A 32-bit value (an expression). */
    value: Expr,
    ...In,
  }),
  /** Faults every page of a range in with stores (or loads). */
  touch: z.strictObject({
    /** The address (an expression). */
    addr: Expr,
    /** The length in bytes (an expression; `4p` is 4 pages). */
    len: Expr,
    /** Store (default) or load. */
    write: z.boolean().default(true),
    /** A 32-bit value (an expression). */
    value: Expr.optional(),
    ...In,
  }),
  /** Reclaims pages from the LRU (kswapd-style, `shrink_lruvec`). */
  reclaim: z.strictObject({
    /** Pages to reclaim. */
    pages: z.number().int().min(1).max(4096),
  }),
  /** Migrates the page mapped at an address (`migrate_folio`). */
  migrate: z.strictObject({
    /** The address (an expression). */
    addr: Expr,
    ...In,
  }),
  /** Runs the OOM reaper on a process (`oom_reap_task_mm`). */
  oom_reap: z.strictObject({
    /** A process name. */
    process: Name,
  }),
  /** A scheduling point (`cond_resched`). */
  preempt: z.strictObject({}),
  /** Waits for a task to finish. */
  join: z.strictObject({
    /** A task name. */
    task: Name,
  }),
  /** A guest load (vCPU tasks). */
  guest_load: z.strictObject({
    /** A guest physical address (an expression). */
    gpa: Expr,
    ...As,
  }),
  /** A guest store (vCPU tasks). */
  guest_store: z.strictObject({
    /** A guest physical address (an expression). */
    gpa: Expr,
    /** A 32-bit value (an expression). */
    value: Expr,
  }),
  /** A guest instruction touching no memory (vCPU tasks). */
  guest_pause: z.strictObject({}),
  /** `KVM_SET_USER_MEMORY_REGION` on a VM. */
  memslot: z.strictObject({
    /** A VM name. */
    vm: Name,
    /** The memslot id (0..511). */
    slot: z.number().int().min(0).max(511),
    /** A guest physical address (an expression). */
    gpa: Expr,
    /** The size in bytes (an expression). */
    size: Expr,
    /** The host virtual address backing the slot (an expression). */
    hva: Expr,
  }),
  /** Destroys a VM (`kvm_destroy_vm`). */
  vm_destroy: z.strictObject({
    /** A VM name. */
    vm: Name,
  }),
  /** `KVM_CREATE_VM` in the task's process (or `in`): a VM made while the workload runs. */
  vm_create: z.strictObject({
    /** The VM's name (unique among VMs). */
    vm: Name,
    /** Number of vCPUs. */
    vcpus: z.number().int().min(1).max(64).default(1),
    ...In,
  }),
  /** `ibv_reg_mr`: registers an ODP or pinned memory region. */
  mr_register: z.strictObject({
    /** An RDMA device of `rdma.devices`. */
    device: Name,
    /** The address (an expression). */
    addr: Expr,
    /** The length in bytes (an expression; `4p` is 4 pages). */
    len: Expr,
    /** `IB_ACCESS_*` bits by name (default local_write, remote_write, remote_read). */
    access: Access.default(['local_write', 'remote_write', 'remote_read']),
    /** On-demand paging (default true); false pins the pages. */
    odp: z.boolean().default(true),
    /** Its name (unique among its kind). */
    name: Name,
    ...In,
  }),
  /** `ibv_dereg_mr`. */
  mr_deregister: z.strictObject({
    /** A memory region name. */
    mr: Name,
  }),
  /** An RDMA WRITE into a memory region (the NIC DMAs into it). */
  rdma_write: z.strictObject({
    /** A memory region name. */
    mr: Name,
    /** An offset in bytes (an expression). */
    offset: Expr.default(0),
    /** The payload, one 32-bit word each. */
    data: z.array(z.number().int()).min(1),
    /** Wait for the work completion (default true); false posts the request and goes on. */
    wait: z.boolean().default(true),
  }),
  /** An RDMA READ from a memory region. */
  rdma_read: z.strictObject({
    /** A memory region name. */
    mr: Name,
    /** An offset in bytes (an expression). */
    offset: Expr.default(0),
    /** Bytes to read. */
    length: z
      .number()
      .int()
      .min(1)
      .max(1 << 20),
    /** Wait for the work completion (default true); false posts the request and goes on. */
    wait: z.boolean().default(true),
  }),
  /** Runs operations `count` times. */
  get repeat() {
    return z.strictObject({
      /** Rounds. */
      count: z.number().int().min(1).max(100_000),
      /** Bound to 0 .. count-1 in each round. */
      var: VarName.optional().describe('bound to 0 .. count-1 in each round'),
      /** The operations, in order. */
      do: z.array(Op),
    });
  },
  /** Starts a new task running operations. */
  get spawn() {
    return z.strictObject({
      /** Its name (unique among its kind). */
      name: Name,
      /** A CPU index or a device execution context. */
      cpu: z
        .union([z.number().int().min(0), Name])
        .optional()
        .describe('a CPU index or a device'),
      /** Run the task as this vCPU of a VM (guest_* operations) instead of on `cpu`. */
      vcpu: z
        .strictObject({
          /** A VM name. */
          vm: Name,
          /** The vCPU index. */
          index: z.number().int().min(0),
        })
        .optional(),
      /** A process name. */
      process: Name.optional(),
      /** A thread of the process: it takes an mm_users reference. */
      thread: z
        .boolean()
        .default(false)
        .describe('a thread of the process: it takes an mm_users reference'),
      /** The operations, in order. */
      do: z.array(Op),
    });
  },
};

/** The operation names, in the order the schema lists them. */
export const OP_NAMES = Object.keys(OPS) as (keyof typeof OPS)[];

/** One workload operation (`- munmap: { addr: buf, len: 1p }`). */
export const Op: z.ZodType<OpValue> = z.lazy(() =>
  z.union(OP_NAMES.map((n) => z.strictObject({ [n]: OPS[n] }))),
);

/** A parsed operation: exactly one key, an operation name, holding its parsed arguments. */
export type OpValue = { readonly [name: string]: unknown };

const PluginRef = z.strictObject({
  /** A package name or a path relative to the scenario file. */
  use: z
    .string()
    .min(1)
    .describe('a package name (@mmnsim/drivers-kvm) or a path relative to the scenario file'),
  /** The factory's export name, when the module has several. */
  export: z.string().optional().describe("the factory's export name, when the module has several"),
  /** The plugin's options (see `mmnsim plugins`). */
  options: z.unknown().optional().describe("the plugin's options (see `mmnsim plugins`)"),
});

const Mapping = MmapArgs.omit({ in: true, as: true }).extend({
  /** Its name (unique among its kind). */
  name: VarName.describe("a variable bound to the mapping's address"),
  /** Store fill + i in the first word of page i. */
  fill: Expr.optional().describe('store fill + i in the first word of page i'),
});

const Vm = z.strictObject({
  /** Its name (unique among its kind). */
  name: Name,
  /** Number of vCPUs. */
  vcpus: z.number().int().min(1).max(64).default(1),
  /** The CPUs. */
  cpus: z.array(z.number().int().min(0)).optional(),
  /** Memslots (`KVM_SET_USER_MEMORY_REGION`). */
  memslots: z
    .array(
      z.strictObject({
        /** The memslot id (0..511). */
        slot: z.number().int().min(0).max(511),
        /** A guest physical address (an expression). */
        gpa: Expr,
        /** The size in bytes (an expression). */
        size: Expr,
        /** The host virtual address backing the slot (an expression). */
        hva: Expr,
      }),
    )
    .default([]),
});

const Mr = z.strictObject({
  /** Its name (unique among its kind). */
  name: Name,
  /** An RDMA device of `rdma.devices`. */
  device: Name,
  /** The address (an expression). */
  addr: Expr,
  /** The length in bytes (an expression; `4p` is 4 pages). */
  len: Expr,
  /** `IB_ACCESS_*` bits by name (default local_write, remote_write, remote_read). */
  access: Access.default(['local_write', 'remote_write', 'remote_read']),
  /** On-demand paging (default true); false pins the pages. */
  odp: z.boolean().default(true),
});

const ProcessSpec = z.strictObject({
  /** Its name (unique among its kind). */
  name: Name,
  /** The process's `start_brk` (an expression). */
  brk: Expr.optional().describe("start_brk (default the model's BRK_BASE)"),
  /** Mappings made by the init task before the workload starts. */
  mappings: z.array(Mapping).default([]),
  /** KVM VMs of the process, created by the init task. */
  vms: z.array(Vm).default([]),
  /** RDMA memory regions of the process, registered by the init task. */
  mrs: z.array(Mr).default([]),
});

const TaskSpec = z.strictObject({
  /** Its name (unique among its kind). */
  name: Name,
  /** A CPU index or a device execution context. */
  cpu: z
    .union([z.number().int().min(0), Name])
    .optional()
    .describe('a CPU index or a device'),
  /** Run the task as this vCPU of a VM (guest_* operations). */
  vcpu: z
    .strictObject({
      /** A VM name. */
      vm: Name,
      /** The vCPU index. */
      index: z.number().int().min(0),
    })
    .optional(),
  /** A process name. */
  process: Name.optional(),
  /** The operations, in order. */
  do: z.array(Op),
});

/** Exploration defaults of a scenario (the command line overrides them). */
export const ExploreDefaults = z.strictObject({
  /** How schedules are chosen. */
  strategy: z.enum(['pct', 'random', 'round-robin', 'portfolio', 'exhaustive']).default('pct'),
  /** PCT depth. */
  depth: z.number().int().min(1).max(16).default(3),
  /** Preemption bound of an exhaustive search. */
  preemptions: z.number().int().min(0).max(16).default(2),
  /** The schedule budget. */
  schedules: z.number().int().min(1).max(10_000_000).default(200),
  /** Seed of the first schedule. */
  seed: z.number().int().min(0).default(1),
});

/** The oracle sets a scenario can attach (a plugin's own oracles come with the plugin). */
export const ORACLE_NAMES = ['notifier'] as const;

/**
 * A scenario file: the zod schema the loader validates with and `mmnsim schema` is generated
 * from. Use {@link validateScenario} (positions in errors) or `scenarioJsonSchema()`; the schema
 * object itself is internal because typedoc cannot document zod's enum internals.
 *
 * @internal
 */
export const ScenarioFileSchema = z.strictObject({
  /** The JSON Schema, for editors. */
  $schema: z.string().optional(),
  /** The scenario id (default: the file name). */
  id: Name.optional().describe('the scenario id (default: the file name)'),
  /** What the scenario shows. */
  description: z.string().optional(),
  /** Where the scenario comes from (kernel function, scenario number). */
  source: z
    .string()
    .optional()
    .describe('where the scenario comes from (kernel function, scenario number)'),
  /** The CPUs. */
  cpus: z.number().int().min(1).max(64).default(1),
  /** The devices. */
  devices: z.array(Name).default([]).describe('device execution contexts'),
  /** Most steps of one schedule. */
  maxSteps: z.number().int().min(1).optional(),
  /** The plugins, in order. */
  plugins: z.array(PluginRef).min(1),
  /** Oracle sets to attach (plugins bring their own). */
  oracles: z.array(z.enum(ORACLE_NAMES)).default(['notifier']),
  /** Simulated files. */
  files: z
    .array(
      z.strictObject({
        /** Its name (unique among its kind). */
        name: Name,
        /** Pages. */
        pages: z
          .number()
          .int()
          .min(1)
          .max(1 << 24),
        /** Initial content: [page, word, value] triples. */
        content: z
          .array(
            z.strictObject({
              /** A page offset. */
              page: z.number().int().min(0),
              /** The 32-bit word within the page (0..1023). */
              word: z.number().int().min(0).max(1023),
              /** A 32-bit value (an expression). */
              value: z.number().int(),
            }),
          )
          .default([]),
      }),
    )
    .default([]),
  /** RDMA devices (needs @mmnsim/drivers-rdma). */
  rdma: z
    .strictObject({
      /** The devices. */
      devices: z.array(
        z.strictObject({
          /** Its name (unique among its kind). */
          name: Name,
          /** The device execution context its engines run on. */
          engine: Name.optional(),
          /** The CPU of its page-fault kworker. */
          faultCpu: z.number().int().min(0).optional(),
          /** Deliberate bugs (RDMA_BUGS). */
          bugs: z.array(z.enum(RDMA_BUGS)).default([]),
        }),
      ),
    })
    .optional(),
  /** Processes, each with its mm. */
  processes: z.array(ProcessSpec).default([]),
  /** The workload's tasks. */
  tasks: z.array(TaskSpec).min(1),
  /** The outcome exploration should have (checked by the library test). */
  expect: z
    .strictObject({
      /** Clean or a violation. */
      outcome: z.enum(['clean', 'violation']),
      /** The violation kinds that count as found. */
      kinds: z.array(z.string()).optional().describe('the violation kinds that count as found'),
    })
    .optional(),
  /** Exploration defaults (the command line overrides them). */
  explore: ExploreDefaults.optional(),
});

/** A validated scenario file. */
export type ScenarioFile = z.output<typeof ScenarioFileSchema>;
/** A scenario file before defaults (what a writer or the strace importer produces). */
export type ScenarioFileInput = z.input<typeof ScenarioFileSchema>;
