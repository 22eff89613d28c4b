/**
 * The tests of `@amp-effect/core` alone (the root config runs every package): what `pnpm mutate`
 * runs against each mutant of `packages/core/src`. Usable directly too:
 * `pnpm vitest run --config packages/core/vitest.config.ts`.
 */
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    root: fileURLToPath(new URL(".", import.meta.url)),
    include: ["test/**/*.test.ts"],
    isolate: false,
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
