import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/**/*.test.ts"],
    // Vitest's default on a 2-core machine is one worker, one file at a time. The slow files
    // mostly wait (on child processes, sockets, a redis-server), so three files at once keep the
    // cores busy; every test holds under a loaded machine (see issue 11's busy-loop runs).
    maxWorkers: 3,
    minWorkers: 1,
    // "Did not hang" bounds, not speed limits: on a 2-core machine under two busy loops (and
    // more) a test of 500 concurrent requests or of child processes takes 30 s and over.
    testTimeout: 120_000,
    hookTimeout: 120_000
  }
})
