// @ts-check
/**
 * Mutation testing with StrykerJS: `pnpm mutate` (slow, so not in CI) mutates `packages/core/src`;
 * `STRYKER_PACKAGE=redis pnpm mutate` (or node, cli, postgres) another package's `src`. Every mutant runs
 * against the tests of its own package that cover it (`packages/<package>/vitest.config.ts`);
 * `pnpm mutate --mutate <file>` narrows a run to the files given. Incremental: the results are kept in
 * `reports/mutation/<package>/stryker-incremental.json` (not in git) and a later run only tests again
 * the mutants whose code or covering tests changed; `pnpm mutate --force` runs them all.
 * The report is `reports/mutation/<package>/index.html`. A full run takes well over an hour on a busy
 * two-core machine (about 1,840 mutants at some 20 a minute); the first incremental run after a
 * change to a test file re-runs every mutant that file's tests cover.
 *
 * @type {import("@stryker-mutator/api/core").PartialStrykerOptions}
 */
const pkg = process.env.STRYKER_PACKAGE ?? "core"

export default {
  packageManager: "pnpm",
  testRunner: "vitest",
  plugins: ["@stryker-mutator/vitest-runner"],
  vitest: { configFile: `packages/${pkg}/vitest.config.ts` },
  mutate: [
    `packages/${pkg}/src/**/*.ts`,
    // Only re-exports: no code to mutate.
    `!packages/${pkg}/src/index.ts`,
    // Test support (the store contract, loopback servers): exercised by the tests, not tested.
    `!packages/${pkg}/src/testing/**`
  ],
  // The other packages stay in the sandbox (vite follows the tsconfig project references into
  // them); only the mutated package's src is mutated. Build output and the benches are left out.
  ignorePatterns: ["/examples", "/bench", "/docs", "/packages/*/dist", "/packages/*/build"],
  coverageAnalysis: "perTest",
  // Static mutants (top-level values, evaluated once at import) need the whole suite each: about
  // a fifth of the mutants but two thirds of the time. Skipped (reported as "Ignored") unless
  // STRYKER_STATIC=1.
  ignoreStatic: process.env.STRYKER_STATIC !== "1",
  incremental: true,
  incrementalFile: `reports/mutation/${pkg}/stryker-incremental.json`,
  // Two test runners: the machine has two cores, shared with others.
  concurrency: 2,
  // A loaded machine runs slower than the dry run did: be generous before calling a mutant a timeout.
  timeoutFactor: 2.5,
  timeoutMS: 10_000,
  reporters: ["clear-text", "progress", "html", "json"],
  htmlReporter: { fileName: `reports/mutation/${pkg}/index.html` },
  jsonReporter: { fileName: `reports/mutation/${pkg}/mutation.json` },
  thresholds: { high: 90, low: 85, break: null }
}
