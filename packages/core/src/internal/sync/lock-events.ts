import type { HeldLock } from '../lockdep/lockdep.js';
import type { Kernel } from '../kernel.js';

/**
 * Emits `lock.acquired` for a lock and remembers the event's seq on the lockdep entry, so
 * lockdep reports can cite the acquisition as evidence. Internal to the lock implementations.
 */
export function noteAcquired(kernel: Kernel, name: string, held: HeldLock | null): void {
  const bus = kernel.bus;
  if (!bus.wants('lock.acquired')) return;
  const ev = bus.emit('lock.acquired', { lock: name });
  if (held !== null && ev !== undefined) held.seq = ev.seq;
}

/** Emits `lock.released` when someone wants it. */
export function noteReleased(kernel: Kernel, name: string): void {
  if (kernel.bus.wants('lock.released')) kernel.bus.emit('lock.released', { lock: name });
}

/** Emits `lock.contended` when someone wants it. */
export function noteContended(kernel: Kernel, name: string, owner: number): void {
  if (kernel.bus.wants('lock.contended')) kernel.bus.emit('lock.contended', { lock: name, owner });
}
