/**
 * The CLI's error types and exit codes. Its own file because every command and the loader use
 * them, and the exit-code convention is part of the command's contract.
 */

/** Exit status: 0 clean, 1 violation found, 2 bad usage or input, 3 internal error. */
export const Exit = {
  /** Nothing broken. */
  CLEAN: 0,
  /** A violation was found (or a replay diverged). */
  VIOLATION: 1,
  /** Bad usage or bad input (a flag, a scenario file, a trace). */
  USAGE: 2,
  /** A bug in mmnsim itself. */
  INTERNAL: 3,
} as const;

/** A position in an input file, 1-based. */
export interface FilePosition {
  /** Line, from 1. */
  readonly line: number;
  /** Column, from 1. */
  readonly col: number;
}

/**
 * Bad input in a file (a scenario, a trace, a replay file): names the file, the line and column,
 * the field (a YAML path such as `tasks.0.cpu`) and what is allowed. Exit status 2.
 */
export class InputError extends Error {
  /** Always `'InputError'`. */
  override readonly name = 'InputError';

  /**
   * @param file the file (as given on the command line).
   * @param pos where in it (line 1 column 1 when the whole file is wrong).
   * @param field the field, as a dotted path (`'(file)'` for the whole file).
   * @param detail what is wrong and what is allowed.
   */
  constructor(
    readonly file: string,
    readonly pos: FilePosition,
    readonly field: string,
    readonly detail: string,
  ) {
    super(`${file}:${pos.line}:${pos.col}: ${field}: ${detail}`);
  }
}

/** Bad command-line usage (a missing argument, a flag out of range). Exit status 2. */
export class UsageError extends Error {
  /** Always `'UsageError'`. */
  override readonly name = 'UsageError';
}
