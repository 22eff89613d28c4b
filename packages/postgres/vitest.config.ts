/**
 * The tests of `@amp-effect/postgres` alone (the root config runs every package): what
 * `STRYKER_PACKAGE=postgres pnpm mutate` runs against each mutant of `packages/postgres/src`.
 * Usable directly too: `pnpm vitest run --config packages/postgres/vitest.config.ts`.
 *
 * Under Stryker (its workers have `STRYKER_MUTATOR_WORKER`) the fleet tests are left out: their
 * replicas are child processes, where no mutant is ever active, so they kill none and cost a
 * minute and more a run.
 */
import { fileURLToPath } from "node:url"
import { configDefaults, defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    root: fileURLToPath(new URL(".", import.meta.url)),
    include: ["test/**/*.test.ts"],
    exclude: [
      ...configDefaults.exclude,
      ...(process.env.STRYKER_MUTATOR_WORKER === undefined ? [] : ["test/Fleet.test.ts"])
    ],
    testTimeout: 120_000,
    hookTimeout: 120_000
  }
})
