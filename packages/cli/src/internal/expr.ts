/**
 * Evaluating the address, length and value expressions of scenario files (`buf + 2p`,
 * `0x7f0000001000`, `i*1p + base`) against a run's variables. Its own file because both the
 * interpreter and the strace importer's tests use it.
 */
import { PAGE_SIZE } from '@mmnsim/mm';

/** A variable the expression needs is not bound (yet) in this run. */
export class UnboundVariableError extends Error {
  /** Always `'UnboundVariableError'`. */
  override readonly name = 'UnboundVariableError';

  /** @param variable the variable's name. */
  constructor(readonly variable: string) {
    super(`variable "${variable}" is not bound yet`);
  }
}

function number(t: string): number {
  if (t.startsWith('0x') || t.startsWith('0X')) return parseInt(t.slice(2), 16);
  if (t.endsWith('p')) return Number(t.slice(0, -1)) * PAGE_SIZE;
  return Number(t);
}

/**
 * The value of `e` (a number, or terms joined by `+`) with `vars` bound.
 *
 * @throws UnboundVariableError for a variable not in `vars`.
 */
export function evalExpr(e: number | string, vars: ReadonlyMap<string, number>): number {
  if (typeof e === 'number') return e;
  let sum = 0;
  for (const raw of e.split('+')) {
    const t = raw.trim();
    const star = t.indexOf('*');
    if (/^[A-Za-z_]/.test(t)) {
      const name = star < 0 ? t : t.slice(0, star);
      const v = vars.get(name);
      if (v === undefined) throw new UnboundVariableError(name);
      sum += star < 0 ? v : v * number(t.slice(star + 1));
    } else sum += number(t);
  }
  return sum;
}
