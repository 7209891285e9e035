// Jest in native ESM mode (inversify is ESM-only) with @swc/jest; `tsc -p tsconfig.test.json`
// type-checks the tests. Tests run against the packages' sources, no build needed.
const swcConfig = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: false },
    target: 'es2022',
  },
  module: { type: 'es6' },
  sourceMaps: 'inline',
};

/** @type {import('jest').Config} */
const config = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', swcConfig] },
  moduleNameMapper: {
    '^@mmnsim/zoo$': '<rootDir>/examples/zoo/src/index.ts',
    '^@mmnsim/([a-z0-9-]+)$': '<rootDir>/packages/$1/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  setupFiles: ['reflect-metadata'],
  testMatch: [
    '<rootDir>/packages/*/test/**/*.test.ts',
    '<rootDir>/examples/test/**/*.test.ts',
    '<rootDir>/examples/zoo/test/**/*.test.ts',
  ],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
};

/**
 * The memory model's tests once more, with the x86 TLB model (packages/hw-x86-tlb) bound behind
 * `mmPlugin`: '@mmnsim/mm' resolves to a shim that loads it (issue 6's acceptance).
 * @type {import('jest').Config}
 */
const mmOnX86Tlb = {
  ...config,
  displayName: 'mm-on-x86-tlb',
  moduleNameMapper: {
    '^@mmnsim/mm$': '<rootDir>/packages/hw-x86-tlb/test/support/mm-on-x86-tlb.ts',
    ...config.moduleNameMapper,
  },
  testMatch: ['<rootDir>/packages/mm/test/**/*.test.ts'],
};

export default { projects: [{ ...config, displayName: 'default' }, mmOnX86Tlb] };
