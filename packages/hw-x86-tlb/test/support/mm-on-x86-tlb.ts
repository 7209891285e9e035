// Test shim for running the memory model's own test suite on the x86 TLB model (issue 6's
// acceptance: "with this plugin, every mm test still passes"). The `mm-on-x86-tlb` jest project
// maps '@mmnsim/mm' to this file: it re-exports the memory model unchanged, except that
// `mmPlugin(options)` also loads the `x86-tlb` plugin's module (with default options), which
// rebinds the TLB provider. Tests that build `MmService` by hand with their own provider keep it.
import { ContainerModule } from 'inversify';
import type { Plugin } from '@mmnsim/core';
import { mmPlugin as realMmPlugin } from '../../../mm/src/index.js';
import { x86TlbPlugin } from '../../src/index.js';

export * from '../../../mm/src/index.js';

/** `mmPlugin` with the x86 TLB model loaded behind it (same id, same options). */
export function mmPlugin(options?: Parameters<typeof realMmPlugin>[0]): Plugin {
  const mm = realMmPlugin(options);
  const x86 = x86TlbPlugin();
  const x86Options = x86.options!;
  return {
    ...mm,
    module: new ContainerModule((o) => {
      void mm.module.load(o);
      o.bind(x86Options.token).toConstantValue(x86Options.schema.parse(x86Options.input ?? {}));
      void x86.module.load(o);
    }),
  };
}
