/**
 * Strict parsing of the numbers given on the command line (`--schedules 200`, `--seed 0`). Its
 * own file because every command uses it and because `Number(text)` accepts far too much: '',
 * ' 1', '0x10', '1e21', '1,,2', '1.0' and integers beyond 2^53 all "parse".
 */

/** A command-line number that is not one: names the flag, what was given and what is allowed. */
export class NumberFlagError extends Error {
  /** Always `'NumberFlagError'`. */
  override readonly name = 'NumberFlagError';

  /**
   * @param flag the flag (`'--schedules'`).
   * @param text what was given.
   * @param allowed what would have been accepted.
   */
  constructor(
    readonly flag: string,
    readonly text: string,
    readonly allowed: string,
  ) {
    super(`${flag}: "${text}" is not ${allowed}`);
  }
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/**
 * Parses a whole decimal number in `[min, max]` (both within the safe integers): digits only, no
 * sign, no leading zeros, no exponent, no hex, no separators, nothing around it.
 *
 * ## Example
 * ```ts
 * parseWholeNumber('--schedules', '200', 1); // 200
 * parseWholeNumber('--schedules', '0x10', 1); // throws NumberFlagError
 * ```
 *
 * @param flag the flag, for the message.
 * @param text the text given.
 * @param min smallest allowed value (default 0).
 * @param max largest allowed value (default `Number.MAX_SAFE_INTEGER`).
 * @throws NumberFlagError naming the flag and the allowed range.
 */
export function parseWholeNumber(
  flag: string,
  text: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const allowed =
    max === Number.MAX_SAFE_INTEGER
      ? `a whole decimal number >= ${min}`
      : `a whole decimal number in ${min}..${max}`;
  if (!DECIMAL.test(text) || text.length > 16) throw new NumberFlagError(flag, text, allowed);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new NumberFlagError(flag, text, allowed);
  return n;
}

/**
 * Parses a comma-separated list of whole numbers (`--seeds 1,2,3`): each item as
 * {@link parseWholeNumber}; empty items (`'1,,2'`, `'1,'`) are refused.
 *
 * @throws NumberFlagError naming the flag.
 */
export function parseNumberList(
  flag: string,
  text: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number[] {
  const items = text.split(',');
  if (items.some((s) => s === ''))
    throw new NumberFlagError(flag, text, 'a comma-separated list of whole numbers');
  return items.map((s) => parseWholeNumber(flag, s, min, max));
}

/**
 * Parses a duration in seconds or milliseconds (`30s`, `1500ms`, `2m`); a bare number is seconds.
 * Returns milliseconds.
 *
 * @throws NumberFlagError naming the flag.
 */
export function parseDurationMs(flag: string, text: string): number {
  const m = /^(0|[1-9][0-9]*)(ms|s|m)?$/.exec(text);
  const allowed = 'a whole duration such as 30s, 1500ms or 2m';
  if (m === null || m[1]!.length > 12) throw new NumberFlagError(flag, text, allowed);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const ms = unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000;
  if (ms < 1 || !Number.isSafeInteger(ms)) throw new NumberFlagError(flag, text, allowed);
  return ms;
}
