/**
 * Turning a thrown value into text that is safe to put in a violation: any value may be thrown
 * (a string, an object whose `toString` throws, an Error whose `message` getter throws), and the
 * description must never throw and never carry machine-specific text (absolute paths of the
 * checkout) into the hashed log. Its own file because the scheduler, the simulation and the
 * campaign runner all describe exceptions the same way.
 */

/** What is known about a thrown value, every field already safe to print. */
export interface ThrownDescription {
  /** `Error`, `TypeError`, … or `non-Error value` for anything else. */
  readonly name: string;
  /** The message (or the value's text for a non-Error). */
  readonly message: string;
  /**
   * The first frame of the stack with the path cut to the file name
   * (`at body (scenario.ts:12:5)`), or `''` when there is no stack (a non-Error throw).
   */
  readonly where: string;
}

function tryString(f: () => unknown): string | undefined {
  try {
    const v = f();
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Cuts every `file:///…/name.ext` or `/abs/…/name.ext` path in a stack frame to `name.ext`. */
export function relativeFrame(frame: string): string {
  return frame.replace(/(?:file:\/\/)?(?:[A-Za-z]:)?[^\s()]*[/\\]([^/\\\s()]+)(?=:\d)/g, '$1');
}

/** Describes a thrown value without ever throwing (see the file comment). */
export function describeThrown(e: unknown): ThrownDescription {
  if (e instanceof Error) {
    const name = tryString(() => e.name) ?? 'Error';
    const message = tryString(() => e.message) ?? '(unprintable message)';
    const stack = tryString(() => e.stack) ?? '';
    const frame = stack
      .split('\n')
      .slice(1)
      .find((l) => l.trim().startsWith('at '));
    return { name, message, where: frame === undefined ? '' : relativeFrame(frame.trim()) };
  }
  const text =
    tryString(() => String(e)) ??
    tryString(() => Object.prototype.toString.call(e)) ??
    '(unprintable value)';
  return { name: 'non-Error value', message: text, where: '' };
}

/** An Error for any thrown value (the value itself when it is one). */
export function asError(e: unknown): Error {
  if (e instanceof Error) return e;
  const d = describeThrown(e);
  return new Error(`${d.name}: ${d.message}`);
}
