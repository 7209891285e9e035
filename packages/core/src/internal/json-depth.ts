/**
 * Iterative helpers over parsed JSON: the nesting depth (so a replay file's `strategy` or a
 * log's `data` nested 10^5 deep is a format error, not a RangeError from a recursive
 * `JSON.stringify` or schema), and a canonical form with sorted keys (so option objects compare
 * by value, whatever their key order). Its own file because replay files and logs both use it.
 */

/** The deepest nesting a replay file or log line may have. */
export const MAX_JSON_DEPTH = 64;

/**
 * The path (`a.b.0`) of the first value nested deeper than `limit` arrays/objects inside
 * `value`, or null if there is none. Iterative: safe on any depth.
 */
export function tooDeep(value: unknown, limit = MAX_JSON_DEPTH): string | null {
  const stack: { v: unknown; depth: number; path: string }[] = [{ v: value, depth: 0, path: '' }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= limit) return path === '' ? '(value)' : path;
    const entries: [string, unknown][] = Array.isArray(v)
      ? v.map((x, i) => [String(i), x])
      : Object.entries(v as Record<string, unknown>);
    for (const [k, x] of entries) {
      if (typeof x === 'object' && x !== null)
        stack.push({ v: x, depth: depth + 1, path: path === '' ? k : `${path}.${k}` });
    }
  }
  return null;
}

/**
 * JSON text of `value` with every object's keys sorted, for comparison by value. The value must
 * already be checked with {@link tooDeep} (this one recurses).
 */
export function canonicalJson(value: unknown): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return '[' + value.map(canonicalJson).join(',') + ']';
  const keys = Object.keys(value).sort();
  return (
    '{' +
    keys
      .map((k) => JSON.stringify(k) + ':' + canonicalJson((value as Record<string, unknown>)[k]))
      .join(',') +
    '}'
  );
}
