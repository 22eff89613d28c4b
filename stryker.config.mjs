// @ts-check
/**
 * Mutation testing of `@amp-effect/core` with StrykerJS: `pnpm mutate` (slow, so not in CI).
 * Every mutant of `packages/core/src` runs against the core tests that cover it
 * (`packages/core/vitest.config.ts`). Incremental: the results are kept in
 * `reports/mutation/stryker-incremental.json` (not in git) and a later run only tests again
 * the mutants whose code or covering tests changed; `pnpm mutate --force` runs them all.
 * The report is `reports/mutation/index.html`. A full run takes well over an hour on a busy
 * two-core machine (about 1,840 mutants at some 20 a minute); the first incremental run after a
 * change to a test file re-runs every mutant that file's tests cover.
 *
 * @type {import("@stryker-mutator/api/core").PartialStrykerOptions}
 */
export default {
  packageManager: "pnpm",
  testRunner: "vitest",
  plugins: ["@stryker-mutator/vitest-runner"],
  vitest: { configFile: "packages/core/vitest.config.ts" },
  mutate: [
    "packages/core/src/**/*.ts",
    // Only re-exports: no code to mutate.
    "!packages/core/src/index.ts"
  ],
  // Only the core package is needed in the sandbox (node_modules is linked, not copied).
  ignorePatterns: ["/packages/cli", "/packages/node", "/packages/redis", "/examples", "/bench", "/docs"],
  coverageAnalysis: "perTest",
  // Static mutants (top-level values, evaluated once at import) need the whole suite each: about
  // a fifth of the mutants but two thirds of the time. Skipped (reported as "Ignored") unless
  // STRYKER_STATIC=1.
  ignoreStatic: process.env.STRYKER_STATIC !== "1",
  incremental: true,
  incrementalFile: "reports/mutation/stryker-incremental.json",
  // Two test runners: the machine has two cores, shared with others.
  concurrency: 2,
  // A loaded machine runs slower than the dry run did: be generous before calling a mutant a timeout.
  timeoutFactor: 2.5,
  timeoutMS: 10_000,
  reporters: ["clear-text", "progress", "html", "json"],
  htmlReporter: { fileName: "reports/mutation/index.html" },
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  thresholds: { high: 90, low: 85, break: null }
}
