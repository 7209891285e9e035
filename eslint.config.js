// Lint rules that hold the architecture (ARCHITECTURE.md §2, §3.5): determinism in simulation
// code, and the direction of dependencies between packages.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** Simulation code: every package source except cli (real time and Promises allowed there). */
const simulationSources = [
  'packages/core/src/**/*.ts',
  'packages/mm/src/**/*.ts',
  'packages/hw-*/src/**/*.ts',
  'packages/drivers-*/src/**/*.ts',
];

const nondeterminism = 'is banned in simulation code: it breaks replay (ARCHITECTURE §3.5)';

const determinismRules = {
  'no-restricted-properties': [
    'error',
    {
      object: 'Math',
      property: 'random',
      message: `Math.random ${nondeterminism}; use a RandomStream.`,
    },
    {
      object: 'Date',
      property: 'now',
      message: `Date.now ${nondeterminism}; use the virtual Clock.`,
    },
    {
      object: 'performance',
      property: 'now',
      message: `performance.now ${nondeterminism}; use the virtual Clock.`,
    },
  ],
  'no-restricted-globals': [
    'error',
    { name: 'setTimeout', message: `Timers ${nondeterminism}; use Clock timers.` },
    { name: 'setInterval', message: `Timers ${nondeterminism}; use Clock timers.` },
    { name: 'setImmediate', message: `Timers ${nondeterminism}; use Clock timers.` },
    { name: 'queueMicrotask', message: `Microtasks ${nondeterminism}.` },
    { name: 'Promise', message: `Promises ${nondeterminism}; tasks are generators.` },
    { name: 'performance', message: `performance ${nondeterminism}.` },
  ],
  'no-restricted-syntax': [
    'error',
    {
      selector: ':function[async=true]',
      message: `async functions ${nondeterminism}; tasks are generators.`,
    },
    { selector: 'AwaitExpression', message: `await ${nondeterminism}.` },
    { selector: "NewExpression[callee.name='Date']", message: `new Date() ${nondeterminism}.` },
  ],
};

/** Import boundaries: which of our packages each package may import. */
function boundary(pkg, allowed) {
  const all = ['core', 'mm', 'hw-x86-tlb', 'hw-iommu', 'drivers-kvm', 'drivers-rdma', 'cli'];
  const banned = all.filter((p) => p !== pkg && !allowed.includes(p));
  return {
    files: [`packages/${pkg}/src/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: banned.map((p) => `@mmnsim/${p}`).concat(banned.map((p) => `@mmnsim/${p}/*`)),
              message: `packages/${pkg} may import only ${allowed.length ? allowed.map((a) => '@mmnsim/' + a).join(' and ') : 'no other package of ours'} (ARCHITECTURE §2).`,
            },
            {
              group: ['@mmnsim/*/src/*', '@mmnsim/*/dist/*', '@mmnsim/*/internal/*'],
              message: 'Import other packages through their public index only.',
            },
            {
              group: ['../../*/src/*', '../../../packages/*'],
              message: 'Do not reach into another package by relative path.',
            },
          ],
        },
      ],
    },
  };
}

export default defineConfig(
  { ignores: ['**/dist/**', '**/node_modules/**', 'docs/api/**', 'coverage/**', '.tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      'require-yield': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: 'readonly', console: 'readonly' },
    },
  },
  { files: simulationSources, rules: determinismRules },
  boundary('core', []),
  boundary('mm', ['core']),
  boundary('hw-x86-tlb', ['core', 'mm']),
  boundary('hw-iommu', ['core', 'mm']),
  boundary('drivers-kvm', ['core', 'mm']),
  boundary('drivers-rdma', ['core', 'mm']),
  {
    files: ['packages/*/src/index.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'ExportAllDeclaration',
          message: 'Public barrels list their exports by name (ARCHITECTURE §2).',
        },
        { selector: ':function[async=true]', message: `async functions ${nondeterminism}.` },
      ],
    },
  },
  {
    // Tests are type-checked through tsconfig.test.json (they are outside the packages' builds).
    files: ['**/test/**/*.ts'],
    languageOptions: {
      parserOptions: {
        projectService: false,
        project: './tsconfig.test.json',
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
