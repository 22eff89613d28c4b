/**
 * The tests of `@amp-effect/redis` alone (the root config runs every package): what
 * `STRYKER_PACKAGE=redis pnpm mutate` runs against each mutant of `packages/redis/src`. Usable
 * directly too: `pnpm vitest run --config packages/redis/vitest.config.ts`.
 */
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    root: fileURLToPath(new URL(".", import.meta.url)),
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000
  }
})
