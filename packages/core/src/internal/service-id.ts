/**
 * A typed, namespaced service identifier (ARCHITECTURE §6): a `Symbol.for` symbol that carries
 * the type of the service bound under it, so `sim.get(id)` is typed without a cast. Inversify
 * accepts it wherever it takes a service identifier.
 *
 * The `__service` member exists only in the type system; the value is a plain symbol.
 */
export type ServiceId<T> = symbol & {
  /** Phantom member carrying the service type; never present at run time. */
  readonly __service?: T;
};

/**
 * Creates the identifier `Symbol.for(name)` typed for service `T`. By convention the name is
 * `'@mmnsim/<package>:<Interface>'` and the constant shares the interface's name.
 *
 * ## Example
 * ```ts
 * export interface MmService { … }
 * export const MmService = serviceId<MmService>('@mmnsim/mm:MmService');
 * bind(MmService).toConstantValue(impl);
 * const mm = sim.get(MmService); // typed MmService
 * ```
 *
 * @param name the namespaced name; the same name always gives the same symbol.
 */
export function serviceId<T>(name: string): ServiceId<T> {
  return Symbol.for(name);
}
