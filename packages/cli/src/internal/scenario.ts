/**
 * Loading a scenario file from disk end to end: read, parse, validate, resolve its plugins,
 * check their options, compile. Its own file because it is the one asynchronous entry every
 * command goes through (plugin modules are imported).
 */
import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import type { Scenario } from '@mmnsim/core';
import { attachSubscriber } from './attach.js';
import type { AttachKind } from './attach.js';
import { checkPluginOptions, compileScenario } from './compile.js';
import { InputError } from './errors.js';
import { loadScenarioText } from './load.js';
import type { LocatedDocument } from './load.js';
import { PluginResolveError, resolvePlugin, scenarioDir } from './plugins.js';
import type { FoundPlugin } from './plugins.js';
import type { ScenarioFile } from './schema.js';

/** A scenario file, loaded and compiled. */
export interface LoadedScenario {
  /** The path it was read from. */
  readonly path: string;
  /** The validated file. */
  readonly file: ScenarioFile;
  /** The compiled scenario. */
  readonly scenario: Scenario;
  /** Its plugins, resolved. */
  readonly plugins: readonly FoundPlugin[];
  /** The parsed document (for positions). */
  readonly doc: LocatedDocument;
}

/** Reads a text file. @throws InputError naming the file when it cannot be read. */
export function readInput(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'is a directory'
          : String((e as Error).message);
    throw new InputError(path, { line: 1, col: 1 }, '(file)', `cannot read the file: ${why}`);
  }
}

/** The default scenario id of a file: its name without the extension. */
export function defaultId(path: string): string {
  return basename(path, extname(path));
}

/**
 * Loads a scenario from text (as read from `path`).
 *
 * @throws InputError for a syntax, schema, reference, plugin or plugin-option error.
 */
export async function loadScenarioFromText(
  text: string,
  path: string,
  options: { readonly attach?: readonly AttachKind[] } = {},
): Promise<LoadedScenario> {
  const loaded = loadScenarioText(text, path);
  const doc = loaded.doc;
  let file = loaded.file;
  for (const k of options.attach ?? []) file = attachSubscriber(file, k);
  const plugins: FoundPlugin[] = [];
  for (const [i, p] of file.plugins.entries()) {
    try {
      plugins.push(await resolvePlugin(p.use, p.export, scenarioDir(path)));
    } catch (e) {
      if (e instanceof PluginResolveError)
        throw new InputError(
          path,
          doc.locate(['plugins', i, 'use']),
          `plugins.${i}.use`,
          e.message,
        );
      throw e;
    }
  }
  checkPluginOptions(file, plugins, doc);
  const scenario = compileScenario(file, plugins, file.id ?? defaultId(path));
  return { path, file, scenario, plugins, doc };
}

/** Reads and loads a scenario file. @throws InputError */
export async function loadScenarioFile(
  path: string,
  options: { readonly attach?: readonly AttachKind[] } = {},
): Promise<LoadedScenario> {
  return loadScenarioFromText(readInput(path), path, options);
}
