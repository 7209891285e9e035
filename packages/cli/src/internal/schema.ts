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
    .regex(EXPR_RE, 'an expression: numbers (decimal, 0x hex, <n>p for pages) and variables joined by +'),
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

const In = { in: Name.optional().describe('the process to act on (default: the task\'s)') };
const As = { as: VarName.optional().describe('bind the result to this variable') };

const MmapArgs = z.strictObject({
  addr: Expr.optional().describe('the address (a hint unless fixed; default 0)'),
  len: Expr,
  prot: Prot,
  flags: MapFlags,
  file: Name.optional().describe('a file of `files`'),
  offset: Expr.optional(),
  ...In,
  ...As,
});
const RangeArgs = z.strictObject({ addr: Expr, len: Expr, ...In });

/** Every workload operation: one key, the operation's name, holding its arguments. */
export const OPS = {
  mmap: MmapArgs,
  munmap: RangeArgs,
  mprotect: z.strictObject({ addr: Expr, len: Expr, prot: Prot, ...In }),
  madvise: z.strictObject({ addr: Expr, len: Expr, advice: z.enum(MADV_NAMES), ...In }),
  mremap: z.strictObject({
    addr: Expr,
    oldLen: Expr,
    newLen: Expr,
    flags: z.array(z.enum(MREMAP_NAMES)).default([]),
    newAddr: Expr.optional(),
    ...In,
    ...As,
  }),
  brk: z.strictObject({ addr: Expr, ...In, ...As }),
  fork: z.strictObject({ child: Name, ...In }),
  exec: z.strictObject({
    process: Name.describe('the new image\'s process name'),
    brk: Expr.optional().describe('the new image\'s start_brk (default the model\'s BRK_BASE)'),
  }),
  exit: z.strictObject({ ...In }),
  load: z.strictObject({ addr: Expr, ...In, ...As }),
  store: z.strictObject({ addr: Expr, value: Expr, ...In }),
  touch: z.strictObject({
    addr: Expr,
    len: Expr,
    write: z.boolean().default(true),
    value: Expr.optional(),
    ...In,
  }),
  reclaim: z.strictObject({ pages: z.number().int().min(1).max(4096) }),
  migrate: z.strictObject({ addr: Expr, ...In }),
  oom_reap: z.strictObject({ process: Name }),
  preempt: z.strictObject({}),
  join: z.strictObject({ task: Name }),
  guest_load: z.strictObject({ gpa: Expr, ...As }),
  guest_store: z.strictObject({ gpa: Expr, value: Expr }),
  guest_pause: z.strictObject({}),
  memslot: z.strictObject({
    vm: Name,
    slot: z.number().int().min(0).max(511),
    gpa: Expr,
    size: Expr,
    hva: Expr,
  }),
  vm_destroy: z.strictObject({ vm: Name }),
  mr_register: z.strictObject({
    device: Name,
    addr: Expr,
    len: Expr,
    access: Access.default(['local_write', 'remote_write', 'remote_read']),
    odp: z.boolean().default(true),
    name: Name,
    ...In,
  }),
  mr_deregister: z.strictObject({ mr: Name }),
  rdma_write: z.strictObject({
    mr: Name,
    offset: Expr.default(0),
    data: z.array(z.number().int()).min(1),
    wait: z.boolean().default(true),
  }),
  rdma_read: z.strictObject({
    mr: Name,
    offset: Expr.default(0),
    length: z.number().int().min(1).max(1 << 20),
    wait: z.boolean().default(true),
  }),
  get repeat() {
    return z.strictObject({
      count: z.number().int().min(1).max(100_000),
      var: VarName.optional().describe('bound to 0 .. count-1 in each round'),
      do: z.array(Op),
    });
  },
  get spawn() {
    return z.strictObject({
      name: Name,
      cpu: z.union([z.number().int().min(0), Name]),
      process: Name.optional(),
      thread: z.boolean().default(false).describe('a thread of the process: it takes an mm_users reference'),
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
  use: z
    .string()
    .min(1)
    .describe('a package name (@mmnsim/drivers-kvm) or a path relative to the scenario file'),
  export: z.string().optional().describe('the factory\'s export name, when the module has several'),
  options: z.unknown().optional().describe('the plugin\'s options (see `mmnsim plugins`)'),
});

const Mapping = MmapArgs.omit({ in: true, as: true }).extend({
  name: VarName.describe('a variable bound to the mapping\'s address'),
  fill: Expr.optional().describe('store fill + i in the first word of page i'),
});

const Vm = z.strictObject({
  name: Name,
  vcpus: z.number().int().min(1).max(64).default(1),
  cpus: z.array(z.number().int().min(0)).optional(),
  memslots: z
    .array(
      z.strictObject({
        slot: z.number().int().min(0).max(511),
        gpa: Expr,
        size: Expr,
        hva: Expr,
      }),
    )
    .default([]),
});

const Mr = z.strictObject({
  name: Name,
  device: Name,
  addr: Expr,
  len: Expr,
  access: Access.default(['local_write', 'remote_write', 'remote_read']),
  odp: z.boolean().default(true),
});

const ProcessSpec = z.strictObject({
  name: Name,
  brk: Expr.optional().describe('start_brk (default the model\'s BRK_BASE)'),
  mappings: z.array(Mapping).default([]),
  vms: z.array(Vm).default([]),
  mrs: z.array(Mr).default([]),
});

const TaskSpec = z.strictObject({
  name: Name,
  cpu: z.union([z.number().int().min(0), Name]).optional().describe('a CPU index or a device'),
  vcpu: z.strictObject({ vm: Name, index: z.number().int().min(0) }).optional(),
  process: Name.optional(),
  do: z.array(Op),
});

/** Exploration defaults of a scenario (the command line overrides them). */
export const ExploreDefaults = z.strictObject({
  strategy: z.enum(['pct', 'random', 'round-robin', 'portfolio', 'exhaustive']).default('pct'),
  depth: z.number().int().min(1).max(16).default(3),
  preemptions: z.number().int().min(0).max(16).default(2),
  schedules: z.number().int().min(1).max(10_000_000).default(200),
  seed: z.number().int().min(0).default(1),
});

/** The oracle sets a scenario can attach (a plugin's own oracles come with the plugin). */
export const ORACLE_NAMES = ['notifier'] as const;

/** A scenario file. */
export const ScenarioFileSchema = z.strictObject({
  $schema: z.string().optional(),
  id: Name.optional().describe('the scenario id (default: the file name)'),
  description: z.string().optional(),
  source: z.string().optional().describe('where the scenario comes from (kernel function, scenario number)'),
  cpus: z.number().int().min(1).max(64).default(1),
  devices: z.array(Name).default([]).describe('device execution contexts'),
  maxSteps: z.number().int().min(1).optional(),
  plugins: z.array(PluginRef).min(1),
  oracles: z.array(z.enum(ORACLE_NAMES)).default(['notifier']),
  files: z
    .array(
      z.strictObject({
        name: Name,
        pages: z.number().int().min(1).max(1 << 24),
        content: z
          .array(z.strictObject({ page: z.number().int().min(0), word: z.number().int().min(0).max(1023), value: z.number().int() }))
          .default([]),
      }),
    )
    .default([]),
  rdma: z
    .strictObject({
      devices: z.array(
        z.strictObject({
          name: Name,
          engine: Name.optional(),
          faultCpu: z.number().int().min(0).optional(),
          bugs: z.array(z.enum(RDMA_BUGS)).default([]),
        }),
      ),
    })
    .optional(),
  processes: z.array(ProcessSpec).default([]),
  tasks: z.array(TaskSpec).min(1),
  expect: z
    .strictObject({
      outcome: z.enum(['clean', 'violation']),
      kinds: z.array(z.string()).optional().describe('the violation kinds that count as found'),
    })
    .optional(),
  explore: ExploreDefaults.optional(),
});

/** A validated scenario file. */
export type ScenarioFile = z.output<typeof ScenarioFileSchema>;
/** A scenario file before defaults (what a writer or the strace importer produces). */
export type ScenarioFileInput = z.input<typeof ScenarioFileSchema>;
