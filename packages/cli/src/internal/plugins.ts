/**
 * Finding the plugins a scenario names: a package (`@mmnsim/drivers-kvm`, or any installed
 * package) or a path relative to the scenario file, whose module exports a plugin factory — a
 * function that returns a `Plugin` (what `definePlugin` builds). Nothing here knows a plugin by
 * name beyond the built-in packages it can load without a dynamic import, so a driver author's
 * plugin runs from a scenario file with no change to the CLI. Its own file because module
 * resolution is the CLI's only asynchronous step.
 */
import { createRequire } from 'node:module';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Plugin } from '@mmnsim/core';
import * as kvm from '@mmnsim/drivers-kvm';
import * as rdma from '@mmnsim/drivers-rdma';
import * as iommu from '@mmnsim/hw-iommu';
import * as x86 from '@mmnsim/hw-x86-tlb';
import * as mm from '@mmnsim/mm';
import * as zoo from '@mmnsim/zoo';

/** A plugin factory as packages export it (`kvmPlugin(options)`). */
export type PluginFactory = (options?: unknown) => Plugin;

/** A plugin factory found in a module. */
export interface FoundPlugin {
  /** The module as the scenario named it. */
  readonly use: string;
  /** The export holding the factory. */
  readonly exportName: string;
  /** The factory. */
  readonly factory: PluginFactory;
  /** The plugin it builds with default options (its id, requires and options schema). */
  readonly probe: Plugin;
}

/** The packages the CLI ships with, loaded without a dynamic import. */
export const BUILTIN_MODULES: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  '@mmnsim/mm': mm,
  '@mmnsim/hw-x86-tlb': x86,
  '@mmnsim/hw-iommu': iommu,
  '@mmnsim/drivers-kvm': kvm,
  '@mmnsim/drivers-rdma': rdma,
  '@mmnsim/zoo': zoo,
};

/** True if `v` looks like a {@link Plugin}. */
export function isPlugin(v: unknown): v is Plugin {
  if (v === null || typeof v !== 'object') return false;
  const p = v as Record<string, unknown>;
  return (
    typeof p.id === 'string' &&
    Array.isArray(p.requires) &&
    typeof p.module === 'object' &&
    p.module !== null
  );
}

/**
 * The plugin factories a module exports: every exported function whose name ends in `Plugin` and
 * that returns a {@link Plugin} when called without options.
 */
export function pluginFactories(
  use: string,
  mod: Readonly<Record<string, unknown>>,
): FoundPlugin[] {
  const out: FoundPlugin[] = [];
  for (const [name, v] of Object.entries(mod)) {
    if (typeof v !== 'function' || !/Plugin$/.test(name) || /^[A-Z]/.test(name)) continue;
    let probe: unknown;
    try {
      probe = (v as PluginFactory)();
    } catch {
      continue;
    }
    if (isPlugin(probe)) out.push({ use, exportName: name, factory: v as PluginFactory, probe });
  }
  return out;
}

/** Why a plugin module could not be used; the loader turns it into an error at the scenario line. */
export class PluginResolveError extends Error {
  /** Always `'PluginResolveError'`. */
  override readonly name = 'PluginResolveError';
}

/**
 * Loads the module `use` names: a built-in package, a relative or absolute path (resolved against
 * `baseDir`, the scenario file's folder), or another package (resolved from the CLI, then from
 * `baseDir`).
 *
 * @throws PluginResolveError when the module cannot be found or loaded.
 */
export async function loadPluginModule(
  use: string,
  baseDir: string,
): Promise<Readonly<Record<string, unknown>>> {
  const builtin = BUILTIN_MODULES[use];
  if (builtin !== undefined) return builtin;
  const isPath = use.startsWith('./') || use.startsWith('../') || isAbsolute(use);
  try {
    if (isPath)
      return (await import(pathToFileURL(resolve(baseDir, use)).href)) as Record<string, unknown>;
    try {
      return (await import(use)) as Record<string, unknown>;
    } catch {
      const req = createRequire(resolve(baseDir, 'scenario.yaml'));
      return (await import(pathToFileURL(req.resolve(use)).href)) as Record<string, unknown>;
    }
  } catch (e) {
    const known = Object.keys(BUILTIN_MODULES).join(', ');
    throw new PluginResolveError(
      isPath
        ? `cannot load the plugin module ${resolve(baseDir, use)} (${firstLine(e)})`
        : `unknown plugin package "${use}" (built in: ${known}; or a path such as ./my-plugin.js)`,
    );
  }
}

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0]!;
}

/**
 * Resolves one plugin reference to its factory.
 *
 * @throws PluginResolveError when the module has no plugin factory, several and no `export`, or
 * not the named one.
 */
export async function resolvePlugin(
  use: string,
  exportName: string | undefined,
  baseDir: string,
): Promise<FoundPlugin> {
  const mod = await loadPluginModule(use, baseDir);
  const found = pluginFactories(use, mod);
  if (exportName !== undefined) {
    const f = found.find((p) => p.exportName === exportName);
    if (f === undefined)
      throw new PluginResolveError(
        `"${use}" has no plugin factory "${exportName}" (it exports: ${found.map((p) => p.exportName).join(', ') || 'none'})`,
      );
    return f;
  }
  if (found.length === 1) return found[0]!;
  if (found.length === 0)
    throw new PluginResolveError(
      `"${use}" exports no plugin factory (a function named *Plugin returning definePlugin's result)`,
    );
  throw new PluginResolveError(
    `"${use}" exports several plugin factories (${found.map((p) => p.exportName).join(', ')}): say which with "export"`,
  );
}

/** Every plugin factory of the built-in packages, for `mmnsim plugins`. */
export function builtinPlugins(): FoundPlugin[] {
  return Object.entries(BUILTIN_MODULES).flatMap(([use, mod]) => pluginFactories(use, mod));
}

/** The folder of a scenario file, for resolving relative plugin paths. */
export function scenarioDir(file: string): string {
  return dirname(resolve(file));
}
