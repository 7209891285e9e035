/**
 * The `mmnsim` command as a library: load scenario files (YAML or JSON) into core `Scenario`s,
 * the scenario JSON Schema, strace import, strict flag numbers and the command's exit codes.
 *
 * @packageDocumentation
 */
import 'reflect-metadata';

export { ATTACH_KINDS, ATTACH_MR_MAX, attachSubscriber } from './internal/attach.js';
export type { AttachKind } from './internal/attach.js';
export { checkPluginOptions, compileScenario } from './internal/compile.js';
export { Exit, InputError, UsageError } from './internal/errors.js';
export type { FilePosition } from './internal/errors.js';
export { evalExpr, UnboundVariableError } from './internal/expr.js';
export { fieldName, loadScenarioText, parseLocated, validateScenario } from './internal/load.js';
export type { LoadedText, LocatedDocument } from './internal/load.js';
export {
  NumberFlagError,
  parseDurationMs,
  parseNumberList,
  parseWholeNumber,
} from './internal/numbers.js';
export { ScenarioRunError } from './internal/ops.js';
export type { TaskContext, World } from './internal/ops.js';
export {
  BUILTIN_MODULES,
  builtinPlugins,
  isPlugin,
  loadPluginModule,
  pluginFactories,
  PluginResolveError,
  resolvePlugin,
} from './internal/plugins.js';
export type { FoundPlugin, PluginFactory } from './internal/plugins.js';
export {
  defaultId,
  loadScenarioFile,
  loadScenarioFromText,
  readInput,
} from './internal/scenario.js';
export type { LoadedScenario } from './internal/scenario.js';
export { scenarioJsonSchema } from './internal/json-schema.js';
export {
  EXPR_RE,
  Expr,
  IB_ACCESS_NAMES,
  MADV_NAMES,
  MAP_NAMES,
  MREMAP_NAMES,
  OP_NAMES,
  ORACLE_NAMES,
  PROT_NAMES,
  ScenarioFileSchema,
} from './internal/schema.js';
export type { OpValue, ScenarioFile, ScenarioFileInput } from './internal/schema.js';
export { importStrace, StraceFormatError } from './internal/strace-import.js';
export type {
  StraceImport,
  StraceImportOptions,
  StraceImportSummary,
} from './internal/strace-import.js';
export { parseStrace, splitArgs } from './internal/strace-parse.js';
export type {
  ExitEvent,
  MalformedLine,
  ParsedTrace,
  SignalEvent,
  SyscallEvent,
  SyscallRecord,
  TraceEvent,
} from './internal/strace-parse.js';
export { main } from './internal/main.js';
export type { MainIo } from './internal/main.js';
