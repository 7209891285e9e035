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
 * `value`, or null if there is none. Recursion stops at `limit`, so it is safe on any depth.
 */
export function tooDeep(value: unknown, limit = MAX_JSON_DEPTH): string | null {
  if (typeof value !== 'object' || value === null) return null;
  const path: string[] = [];
  return deeper(value, 0, limit, path) ? (path.length === 0 ? '(value)' : path.join('.')) : null;
}

function deeper(v: object, depth: number, limit: number, path: string[]): boolean {
  if (depth >= limit) return true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (typeof x === 'object' && x !== null) {
        path.push(String(i));
        if (deeper(x, depth + 1, limit, path)) return true;
        path.pop();
      }
    }
    return false;
  }
  for (const k in v) {
    const x: unknown = (v as Record<string, unknown>)[k];
    if (typeof x === 'object' && x !== null) {
      path.push(k);
      if (deeper(x, depth + 1, limit, path)) return true;
      path.pop();
    }
  }
  return false;
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
