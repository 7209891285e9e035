/**
 * Strict parsing of the command-line flags of `pnpm zoo`, `pnpm demo` and `pnpm replay`: whole
 * numbers are plain decimal digits within a range (no `''`, `0x10`, `1e21`, `1,,2`, no value
 * beyond the safe-integer range), and every rejection is a {@link UsageError} naming the flag
 * and what it takes. Its own file so the three CLIs (and the fuzz suite) share one parser.
 */
import { parseArgs } from 'node:util';

/** A command line the CLI cannot use; the message names the flag and the allowed values. */
export class UsageError extends Error {
  /** Always `'UsageError'`. */
  override readonly name = 'UsageError';
}

/** Plain decimal digits, no sign, no leading zero. */
const DIGITS = /^(0|[1-9][0-9]*)$/;

/**
 * A whole number written in plain decimal digits, `min ≤ n ≤ max` (max at most
 * `Number.MAX_SAFE_INTEGER`).
 * @throws UsageError naming `flag` and the allowed range.
 */
export function wholeNumber(
  flag: string,
  text: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const what = `${flag} takes a whole number from ${min} to ${max} in decimal digits`;
  if (!DIGITS.test(text) || text.length > 16) throw new UsageError(`${what} (got ${show(text)})`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new UsageError(`${what} (got ${show(text)})`);
  return n;
}

/**
 * A comma-separated list of whole numbers (see {@link wholeNumber}); empty items are refused.
 * @throws UsageError naming `flag`.
 */
export function wholeNumberList(
  flag: string,
  text: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number[] {
  const items = text.split(',');
  if (items.some((i) => i === ''))
    throw new UsageError(
      `${flag} takes whole numbers separated by single commas, without empty items (got ${show(text)})`,
    );
  return items.map((i) => wholeNumber(flag, i, min, max));
}

/** A flag value for a message: quoted and cut at 40 characters. */
function show(text: string): string {
  const t = JSON.stringify(text);
  return t.length > 42 ? t.slice(0, 39) + '…"' : t;
}

/** What {@link parseFlags} returns: string flags as strings, boolean flags as booleans. */
export interface ParsedFlags {
  /** The flags given, by name. */
  readonly values: { readonly [flag: string]: string | boolean | undefined };
  /** The positional arguments. */
  readonly positionals: string[];
}

/**
 * `node:util` `parseArgs` (unknown flags refused) with its errors turned into
 * {@link UsageError}s.
 */
export function parseFlags(
  args: readonly string[],
  options: { readonly [flag: string]: { readonly type: 'string' | 'boolean' } },
  allowPositionals = false,
): ParsedFlags {
  try {
    const r = parseArgs({
      args: [...args],
      options: { ...options },
      allowPositionals,
      strict: true,
    });
    return { values: r.values, positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** The value of a string flag, or undefined when it was not given. */
export function stringFlag(flags: ParsedFlags, name: string): string | undefined {
  const v = flags.values[name];
  return typeof v === 'string' ? v : undefined;
}

/** What `pnpm zoo` was asked for. */
export interface ZooArgs {
  /** `--iterations N` (1..10^9). */
  readonly iterations?: number;
  /** `--seeds a,b,c`. */
  readonly seeds?: number[];
  /** `--only id,id` (checked against `variants`). */
  readonly only?: string[];
}

/** The zoo's default iterations per seed (see `runZoo`). */
const ZOO_ITERATIONS = 2000;

/**
 * Parses `pnpm zoo`'s flags. Seeds must leave room for the iterations (seed + iterations − 1
 * stays a safe integer).
 * @param variants the variant ids `--only` may name.
 * @throws UsageError naming the flag.
 */
export function parseZooArgs(args: readonly string[], variants: readonly string[]): ZooArgs {
  const flags = parseFlags(args, {
    iterations: { type: 'string' },
    seeds: { type: 'string' },
    only: { type: 'string' },
  });
  const values = {
    iterations: stringFlag(flags, 'iterations'),
    seeds: stringFlag(flags, 'seeds'),
    only: stringFlag(flags, 'only'),
  };
  const iterations =
    values.iterations === undefined
      ? undefined
      : wholeNumber('--iterations', values.iterations, 1, 1_000_000_000);
  const room = Number.MAX_SAFE_INTEGER - ((iterations ?? ZOO_ITERATIONS) - 1);
  const seeds =
    values.seeds === undefined ? undefined : wholeNumberList('--seeds', values.seeds, 0, room);
  let only: string[] | undefined;
  if (values.only !== undefined) {
    only = values.only.split(',');
    const unknown = only.filter((id) => !variants.includes(id));
    if (unknown.length > 0 || only.length === 0)
      throw new UsageError(
        `--only: no variant ${unknown.map((u) => JSON.stringify(u)).join(', ')}; the variants are ${variants.join(', ')}`,
      );
  }
  return {
    ...(iterations !== undefined ? { iterations } : {}),
    ...(seeds !== undefined ? { seeds } : {}),
    ...(only !== undefined ? { only } : {}),
  };
}
