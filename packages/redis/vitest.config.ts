/**
 * The tests of `@amp-effect/redis` alone (the root config runs every package): what
 * `STRYKER_PACKAGE=redis pnpm mutate` runs against each mutant of `packages/redis/src`. Usable
 * directly too: `pnpm vitest run --config packages/redis/vitest.config.ts`.
 */
import { fileURLToPath } from "node:url"
import { configDefaults, defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    root: fileURLToPath(new URL(".", import.meta.url)),
    include: ["test/**/*.test.ts"],
    // `SKIP_FLEET=1` for mutation runs: a mutant is never active in the fleet's child processes.
    exclude: process.env.SKIP_FLEET === "1"
      ? [...configDefaults.exclude, "test/Fleet.test.ts"]
      : configDefaults.exclude,
    testTimeout: 120_000,
    hookTimeout: 120_000
  }
})
