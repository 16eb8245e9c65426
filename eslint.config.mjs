// ESLint 9 flat config: typescript-eslint's type-aware rules, plus the import rules that keep
// each folder ("room") to its job (see the README's layout): `domain/` pure, `workflows/`
// deterministic, `platform/` below the application rooms, `workers/` imported by nothing.
// Formatting is Prettier's (.prettierrc.json); eslint-config-prettier turns off the rules it owns.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

const TESTS = ['**/*.test.ts', 'test/**'];

// node:test's `describe`/`test`/`it`/`suite` return promises the runner itself awaits; awaiting
// or `void`-ing each call would be noise. Hooks and `t.test` subtests are not on this list.
const NODE_TEST_CALLS = { from: 'package', package: 'node:test', name: ['describe', 'test', 'it', 'suite'] };

/** A relative specifier into a top-level folder, from any depth: `../db/schema`, `../../api`. */
const room = (name) => `^(\\.\\./)+${name}(/.*)?$`;

const workersRule = {
  regex: room('workers'),
  message: 'workers/ holds entry points only; nothing imports them (spawn them as processes).',
};

/** A package specifier, or one of its subpaths, for any of these names (`fs`, `fs/promises`). */
const packages = (names) => `^(${names.map((name) => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})(/.*)?$`;

// Matched as whole specifiers: a glob like `domain/*` would also catch `../domain/money`.
const NODE_BUILTINS = builtinModules.filter((name) => !name.startsWith('_') && !name.includes('/'));
const WORKFLOW_IO_LIBRARIES = [
  'ioredis',
  'postgres',
  'drizzle-orm',
  'drizzle-kit',
  'express',
  'stripe',
  'nodemailer',
  'pino',
  'prom-client',
  '@temporalio/client',
  '@temporalio/worker',
  '@temporalio/activity',
  '@temporalio/testing',
];

const workflowRules = [
  {
    regex: `^node:|${packages(NODE_BUILTINS)}`,
    message: 'Workflow code runs in the deterministic sandbox: no Node built-in modules.',
  },
  {
    regex: packages(WORKFLOW_IO_LIBRARIES),
    message: 'Workflow code does no I/O: call an activity instead.',
  },
  {
    regex: room('activities'),
    allowTypeImports: true,
    message: 'Workflows reach activities through proxyActivities; import their types only (`import type`).',
  },
  {
    regex: room('(db|api|scripts|bench)'),
    message: 'Workflow code does no I/O and must not load db/, api/, scripts/ or bench/ modules.',
  },
  {
    regex: '^(\\.\\./)+platform(/(?!(search-attribute-keys|task-queues)$).*)?$',
    message: 'Of platform/, workflows may only import platform/search-attribute-keys and platform/task-queues (the rest does I/O).',
  },
  workersRule,
];

const domainRules = [
  {
    regex: '^(?!\\./)',
    message: 'domain/ holds pure rules: it imports only other domain/ files (no packages, no other folders).',
  },
];

const platformRules = [
  {
    regex: room('(api|activities|workflows|db)'),
    message: 'platform/ is shared infrastructure: it must not depend on the rooms built on it.',
  },
  workersRule,
];

const restrict = (patterns) => ['error', { patterns }];

export default defineConfig(
  {
    ignores: ['node_modules/**', 'dist/**', '.tools/**', '.data/**', 'test/histories/**', 'db/migrations/**', 'bench/results/**', 'test-results/**'],
  },
  {
    files: ['**/*.{js,mjs,cjs}'],
    extends: [js.configs.recommended],
    languageOptions: { globals: { console: 'readonly', process: 'readonly' } },
  },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [NODE_TEST_CALLS] }],
      '@typescript-eslint/no-misused-promises': 'error',
      // tsc already reports unused locals and parameters (noUnusedLocals/noUnusedParameters).
      '@typescript-eslint/no-unused-vars': 'off',
      // Off: the few `any`s (19, 13 of them in test/) sit at SDK and JSON boundaries.
      '@typescript-eslint/no-explicit-any': 'off',
      // Off: the no-unsafe-* family reports every use of an `any` value, above all the tests'
      // parsed JSON responses: about 660 reports, 580 of them in test/ (83 elsewhere). Worth
      // turning on for non-test code once those are typed.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // Off: an `async` method with no `await` is how this code implements a Promise-returning
      // interface (payment gateways, senders) so that a throw becomes a rejection; forgotten
      // awaits are what no-floating-promises and no-misused-promises catch.
      '@typescript-eslint/require-await': 'off',
      // The base rule cannot tell `import type` from a value import; the typescript-eslint one can.
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': restrict([workersRule]),
    },
  },
  // The rooms. Tests are exempt: they build whole stacks from several rooms on purpose.
  { files: ['workflows/**/*.ts'], ignores: TESTS, rules: { '@typescript-eslint/no-restricted-imports': restrict(workflowRules) } },
  { files: ['domain/**/*.ts'], ignores: TESTS, rules: { '@typescript-eslint/no-restricted-imports': restrict(domainRules) } },
  { files: ['platform/**/*.ts'], ignores: TESTS, rules: { '@typescript-eslint/no-restricted-imports': restrict(platformRules) } },
  { files: ['workers/**/*.ts', ...TESTS], rules: { '@typescript-eslint/no-restricted-imports': 'off' } },
  prettier,
);
