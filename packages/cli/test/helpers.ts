// Test helpers: run the `mmnsim` command in-process and capture its output and exit status.
import { main } from '@mmnsim/cli';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Runs `mmnsim <args>` in this process (stderr is not a TTY: no progress bar). */
export async function cli(...args: string[]): Promise<CliResult> {
  let out = '';
  let err = '';
  const code = await main(args, {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    tty: false,
    env: { NO_COLOR: '1' },
  });
  return { code, out, err };
}
