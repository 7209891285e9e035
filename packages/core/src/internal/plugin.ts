import type { ContainerModule } from 'inversify';
import type { ServiceId } from './service-id.js';
import type { z } from 'zod';
import type { JsonValue } from './json.js';
import type { Simulation } from './simulation.js';

/**
 * A plugin's validated options: the zod schema, the raw input, and the token the parsed value
 * is bound under in the simulation's container.
 */
export interface PluginOptions<O = unknown> {
  /** Token the parsed options are bound under (`@inject(KvmOptions)`). */
  readonly token: ServiceId<O>;
  /** Schema the input is validated with; use strict objects so typos are errors. */
  readonly schema: z.ZodType<O>;
  /** The options as the user gave them (plain JSON, recorded in log headers and replay files). */
  readonly input: JsonValue | undefined;
}

/**
 * A plugin: one package's contribution to a simulation (ARCHITECTURE §6).
 *
 * `module` is the package's only wiring point; `requires` names the plugins it needs (a missing
 * one is an error at creation naming both); `options` are validated before `module` loads;
 * `start` runs after every module is loaded, in dependency order, and may spawn tasks and
 * subscribe to the bus. Build plugins with {@link definePlugin}.
 */
export interface Plugin {
  /** Unique id (`'mm'`, `'x86-tlb'`, `'kvm'`). */
  readonly id: string;
  /** Ids of the plugins this one needs; they start first. */
  readonly requires: readonly string[];
  /** The package's container module: its bindings and extension-point contributions. */
  readonly module: ContainerModule;
  /** Validated options, if the plugin takes any. */
  readonly options?: PluginOptions;
  /** Called once, after all modules are loaded, in dependency order. */
  start?(sim: Simulation): void;
}

/** What {@link definePlugin} needs to know. */
export interface PluginDefinition<S extends z.ZodType> {
  /** See {@link Plugin.id}. */
  readonly id: string;
  /** See {@link Plugin.requires}. */
  readonly requires?: readonly string[];
  /** Schema of the options; its defaults fill what the user leaves out. */
  readonly schema: S;
  /** Token the parsed options are bound under. */
  readonly token: ServiceId<z.output<S>>;
  /** See {@link Plugin.module}. */
  readonly module: ContainerModule;
  /** See {@link Plugin.start}. */
  readonly start?: (sim: Simulation) => void;
}

/**
 * Turns a plugin definition into the factory a package exports (`kvmPlugin(options)`).
 * Validation happens in `Simulation.create`, so a bad option is reported with the plugin id,
 * the field and what is allowed.
 *
 * ## Example
 * ```ts
 * const CounterOptions = serviceId<{ limit: number }>('@me/counter:CounterOptions');
 * export const counterPlugin = definePlugin({
 *   id: 'counter',
 *   schema: z.strictObject({ limit: z.number().int().min(1).default(10) }),
 *   token: CounterOptions,
 *   module: new ContainerModule(() => {}),
 * });
 * Simulation.create({ seed: 1, plugins: [counterPlugin({ limit: 3 })] });
 * ```
 */
export function definePlugin<S extends z.ZodType>(
  def: PluginDefinition<S>,
): (options?: z.input<S>) => Plugin {
  // Options are plain JSON by contract (they are recorded in log headers and replay files).
  return (input) => ({
    id: def.id,
    requires: def.requires ?? [],
    module: def.module,
    options: { token: def.token, schema: def.schema, input: input as JsonValue | undefined },
    ...(def.start !== undefined ? { start: def.start } : {}),
  });
}
