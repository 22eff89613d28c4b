/**
 * The tests of `@amp-effect/postgres` alone (the root config runs every package): what
 * `STRYKER_PACKAGE=postgres pnpm mutate` runs against each mutant of `packages/postgres/src`.
 * Usable directly too: `pnpm vitest run --config packages/postgres/vitest.config.ts`.
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
