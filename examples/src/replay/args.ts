/**
 * `pnpm replay`'s flags, parsed strictly (see `@mmnsim/zoo`'s `wholeNumber`): its own file so the
 * fuzz suite can call the parser without running a replay.
 */
import { parseFlags, stringFlag, UsageError, wholeNumber } from '@mmnsim/zoo';

/** The replay CLI's usage line. */
export const REPLAY_USAGE = 'usage: pnpm replay <file> [--stop-at STEP] [--tail N] [--all]';

/** What `pnpm replay` was asked for. */
export interface ReplayArgs {
  /** The replay file. */
  readonly path: string;
  /** `--stop-at STEP`. */
  readonly stopAt?: number;
  /** `--tail N`. */
  readonly tail?: number;
  /** `--all`. */
  readonly all: boolean;
}

/** Parses the replay CLI's flags. @throws UsageError naming the flag, or the usage line. */
export function parseReplayArgs(args: readonly string[]): ReplayArgs {
  const parsed = parseFlags(
    args,
    { 'stop-at': { type: 'string' }, tail: { type: 'string' }, all: { type: 'boolean' } },
    true,
  );
  const v = {
    'stop-at': stringFlag(parsed, 'stop-at'),
    tail: stringFlag(parsed, 'tail'),
    all: parsed.values.all,
  };
  const path = parsed.positionals[0];
  if (path === undefined || parsed.positionals.length > 1 || path === '')
    throw new UsageError(REPLAY_USAGE);
  return {
    path,
    ...(v['stop-at'] !== undefined ? { stopAt: wholeNumber('--stop-at', v['stop-at'], 0) } : {}),
    ...(v.tail !== undefined ? { tail: wholeNumber('--tail', v.tail, 0) } : {}),
    all: v.all === true,
  };
}
