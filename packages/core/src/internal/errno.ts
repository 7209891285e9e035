/**
 * Linux errno values, negated as kernel functions return them (`return -EINVAL;`). Simulated
 * syscalls and kernel APIs return these so callers can compare with the kernel's results.
 *
 * ## Example
 * ```ts
 * const err = yield* mm.munmap(addr, 0);
 * if (err === -Errno.EINVAL) …
 * ```
 */
export const Errno = {
  /** Operation not permitted. */
  EPERM: 1,
  /** No such file or directory / entry. */
  ENOENT: 2,
  /** Interrupted system call. */
  EINTR: 4,
  /** I/O error. */
  EIO: 5,
  /** Bad file descriptor. */
  EBADF: 9,
  /** Try again. */
  EAGAIN: 11,
  /** Out of memory. */
  ENOMEM: 12,
  /** Permission denied. */
  EACCES: 13,
  /** Bad address. */
  EFAULT: 14,
  /** Device or resource busy. */
  EBUSY: 16,
  /** File exists. */
  EEXIST: 17,
  /** No such device. */
  ENODEV: 19,
  /** Invalid argument. */
  EINVAL: 22,
  /** No space left on device (also: no PASID left). */
  ENOSPC: 28,
  /** Resource deadlock would occur. */
  EDEADLK: 35,
  /** Value too large for defined data type. */
  EOVERFLOW: 75,
  /** Operation not supported. */
  EOPNOTSUPP: 95,
  /** Operation already in progress. */
  EALREADY: 114,
} as const;

/** Name of a negated errno value (`-22` → `'EINVAL'`), or the number itself if unknown. */
export function errnoName(value: number): string {
  for (const [name, v] of Object.entries(Errno)) if (-v === value) return name;
  return String(value);
}
