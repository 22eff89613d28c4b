/**
 * `examples/fleet.ts` runs as its users run it (`tsx`, here `node --import tsx`): replicas that
 * are processes of their own share one login through a throwaway redis-server. Skipped without
 * redis-server (where the example only says how to get one), except in CI, which installs it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile, spawnSync } from "node:child_process"
import { createRequire } from "node:module"
import * as NodePath from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const examples = fileURLToPath(new URL("..", import.meta.url))
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href
const hasRedis = spawnSync("redis-server", ["--version"]).status === 0

if (!hasRedis && process.env.CI !== undefined && process.env.CI !== "") {
  throw new Error("CI never skips the Redis example: redis-server is not installed")
}

/** The environment without any AMP_ / API_ variable, so the example picks its own servers. */
const cleanEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !name.startsWith("AMP_") && !name.startsWith("API_"))
)

const run = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  Effect.async<{ code: number; stdout: string; stderr: string }>((resume) => {
    const child = execFile(
      process.execPath,
      ["--import", tsx, NodePath.join(examples, "fleet.ts"), ...args],
      { env, timeout: 300_000 }, // "did not hang": replicas boot tsx, slow on a busy machine
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resume(Effect.succeed({ code, stdout, stderr }))
      }
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

describe("examples/fleet.ts", { timeout: 330_000 }, () => {
  it.live.skipIf(!hasRedis)(
    "two replicas and a late one, one login between them, through a local redis-server",
    () =>
      Effect.gen(function*() {
        const result = yield* run(["--replicas", "2"], cleanEnv)
        expect(result.stderr, result.stdout).toBe("")
        expect(result.code, result.stdout).toBe(0)
        expect(result.stdout).toContain("[embedded mock AMP server at http://127.0.0.1:")
        expect(result.stdout).toMatch(/\[throwaway redis-server at redis:\/\/127\.0\.0\.1:\d+, persistence off\]/)
        expect(result.stdout.match(/replica \d \(pid \d+\): token [0-9a-f]{8}, 2 assets/g), result.stdout).toHaveLength(
          3
        )
        expect(result.stdout).toContain("holding 1 distinct token(s)")
        expect(result.stdout).toContain("Logins on the mock server: 1; refreshes: 0")
        expect(result.stdout.trimEnd().endsWith("Logins on the mock server: 1")).toBe(true)
      })
  )
})
