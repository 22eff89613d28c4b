/**
 * Every example runs as its users run it (`tsx examples/<name>.ts`, here `node --import tsx`)
 * against its embedded mock server, exits 0, prints what it promises and leaves no file behind.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const examples = fileURLToPath(new URL("..", import.meta.url))
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href

/** The environment without any AMP_ / API_ variable, so the examples pick the mock server. */
const cleanEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !name.startsWith("AMP_") && !name.startsWith("API_"))
)

const run = (name: string) =>
  Effect.acquireUseRelease(
    Effect.promise(() => Fs.mkdtemp(NodePath.join(Os.tmpdir(), "amp-example-"))),
    (cwd) =>
      Effect.async<{ code: number; stdout: string; stderr: string; files: Array<string> }>((resume) => {
        execFile(
          process.execPath,
          ["--import", tsx, NodePath.join(examples, `${name}.ts`)],
          { cwd, env: cleanEnv, timeout: 120_000 }, // "did not hang", however busy the machine
          (error, stdout, stderr) => {
            const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
            Fs.readdir(cwd).then((files) => resume(Effect.succeed({ code, stdout, stderr, files })))
          }
        )
      }),
    (cwd) => Effect.promise(() => Fs.rm(cwd, { recursive: true, force: true }))
  )

const cases: ReadonlyArray<readonly [string, ReadonlyArray<string | RegExp>]> = [
  ["basic-usage", [
    "The second getToken reused it: true",
    "As a value it prints as: <redacted>",
    "Logins on the mock server: 1"
  ]],
  ["token-info", ["Before the first getToken: no token", /Token expires in: 23h 59m/, "Token is expired: false"]],
  ["manual-management", [
    "Force refresh gave a new token: true",
    "After clearToken: no token",
    "Mock server calls: 2 logins, 1 refresh"
  ]],
  ["concurrent-requests", [
    "AMP API version: mock-1.0",
    "Logins so far: 1",
    /Renewals for the revoked token: 1 refresh \(refused: the token was revoked\), 1 login/
  ]],
  ["testing-with-mocks", ["MSO Mock Security One", "MBT Mock Bond Two (locked)"]],
  ["observability", [
    /span AuthApi\.obtain .* attempts=1 outcome=success/,
    "http.request.header.authorization=<redacted>",
    "amp_token_refresh_fallbacks_total",
    /amp_token_logins_total\{outcome="success"\} \d+/
  ]]
]

describe("examples", { timeout: 150_000 }, () => {
  for (const [name, expected] of cases) {
    it.live(`${name}.ts runs against the mock server`, () =>
      Effect.gen(function*() {
        const result = yield* run(name)
        expect(result.stderr).toBe("")
        expect(result.code).toBe(0)
        expect(result.stdout).toContain("[embedded mock AMP server at http://127.0.0.1:")
        for (const line of expected) {
          if (typeof line === "string") expect(result.stdout).toContain(line)
          else expect(result.stdout).toMatch(line)
        }
        expect(result.files).toEqual([]) // mock credentials: no token file
      }))
  }

  it("each example says in its first lines what it shows and how to run it", async () => {
    for (const [name] of cases) {
      const head = (await Fs.readFile(NodePath.join(examples, `${name}.ts`), "utf8")).split("\n").slice(0, 20).join(
        "\n"
      )
      expect(head.startsWith("/**")).toBe(true)
      expect(head).toContain(`Run: pnpm tsx examples/${name}.ts`)
    }
  })
})
