/**
 * `amp-token` as its users run it: a child process (`node --import tsx src/bin.ts`)
 * against the embedded mock AMP server, each test in its own temporary directory, with an
 * environment that holds only what the test gives it.
 */
import { TokenService } from "@amp-effect/core"
import { MockAmpServer, MockFault } from "@amp-effect/node/MockAmpServer"
import * as NodeAmp from "@amp-effect/node/NodeAmp"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, DateTime, Duration, Effect, Option } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const bin = fileURLToPath(new URL("../src/bin.ts", import.meta.url))
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs `amp-token args` in `cwd` with exactly `env` (plus PATH). */
const amp = (cwd: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Effect.Effect<Run> =>
  Effect.async<Run>((resume) => {
    execFile(
      process.execPath,
      ["--import", tsx, bin, ...args],
      { cwd, env: { PATH: process.env.PATH ?? "", ...env }, timeout: 20_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resume(Effect.succeed({ code, stdout, stderr }))
      }
    )
  })

/** A temporary directory for one test, removed afterwards. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => Fs.mkdtemp(NodePath.join(Os.tmpdir(), "amp-token-cli-"))),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
)

/** A mock server, a temp dir, and the environment of a user of that server. */
const setup = Effect.gen(function*() {
  const server = yield* MockAmpServer.make()
  const dir = yield* tempDir
  const env = {
    AMP_API_BASE_URL: server.baseUrl,
    AMP_USERNAME: "mock_user",
    AMP_PASSWORD: "mock_pass",
    API_RETRY_BASE_DELAY_MS: "10",
    API_RETRY_MAX_DELAY_MS: "100"
  }
  return { server, dir, env, file: NodePath.join(dir, "token.json") }
})

const readJson = (file: string) => Effect.promise(async () => JSON.parse(await Fs.readFile(file, "utf8")))

const exists = (file: string) => Effect.promise(() => Fs.access(file).then(() => true, () => false))

/** A token file as the Rust client writes it, with the given times. */
const writeTokenFile = (file: string, expiresAt: Date, obtainedAt: Date) =>
  Effect.promise(() =>
    Fs.writeFile(
      file,
      JSON.stringify({
        token: "opaque-token",
        expires_at: expiresAt.toISOString(),
        obtained_at: obtainedAt.toISOString()
      }),
      { mode: 0o600 }
    )
  )

const statusKeys = [
  "age_seconds",
  "expires_at",
  "expires_in_seconds",
  "expires_soon",
  "has_token",
  "is_expired",
  "obtained_at"
]
const rfc3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/

describe("amp-token", { timeout: 60_000 }, () => {
  it.scopedLive("login, token from the file, status without network or credentials, refresh, clear", () =>
    Effect.gen(function*() {
      const { dir, env, file, server } = yield* setup
      const none = yield* amp(dir, ["status", "--json"])
      expect(none.code).toBe(1)
      expect(JSON.parse(none.stdout)).toEqual({
        has_token: false,
        expires_at: null,
        obtained_at: null,
        expires_in_seconds: null,
        age_seconds: null,
        is_expired: null,
        expires_soon: null
      })

      const login = yield* amp(dir, ["login"], env)
      expect(login.code).toBe(0)
      expect(login.stdout).toMatch(/^Logged in; saved to .*token\.json \(expires \S+, in 23h 59m/)
      const [first] = yield* server.issuedTokens
      expect((yield* readJson(file)).token).toBe(first)
      expect((yield* Effect.promise(() => Fs.stat(file))).mode & 0o777).toBe(0o600)

      // `token` prints the token and nothing else, from the file: no call to the server
      const token = yield* amp(dir, ["token"], env)
      expect(token).toEqual({ code: 0, stdout: `${first}\n`, stderr: "" })
      expect(yield* server.counters).toMatchObject({ obtain: 1, refresh: 0, total: 1 })

      // status: the file and the clock only, no credentials needed
      const [json, human] = yield* Effect.all([
        amp(dir, ["status", "--json"], { AMP_TOKEN_FILE: file }),
        amp(dir, ["status"])
      ], { concurrency: 2 })
      expect(json.code).toBe(0)
      const status = JSON.parse(json.stdout)
      expect(Object.keys(status).sort()).toEqual(statusKeys)
      expect(status).toMatchObject({ has_token: true, is_expired: false, expires_soon: false })
      expect(status.expires_at).toMatch(rfc3339)
      expect(status.obtained_at).toMatch(rfc3339)
      expect(status.expires_in_seconds).toBeGreaterThan(24 * 3600 - 120)
      expect(status.age_seconds).toBeLessThan(120)
      expect(human.code).toBe(0)
      expect(human.stdout).toContain(`Token file: ${file}`)
      expect(human.stdout).toContain("Expired: no")
      expect((yield* server.counters).total).toBe(1)

      const refreshed = yield* amp(dir, ["refresh"], env)
      expect(refreshed.code).toBe(0)
      expect(refreshed.stdout).toMatch(/^Token renewed; saved to /)
      expect(yield* server.counters).toMatchObject({ obtain: 1, refresh: 1 })
      expect((yield* readJson(file)).token).toBe((yield* server.issuedTokens)[1])

      // with a revoked token, refresh is refused and falls back to a login
      yield* server.revokeAll
      const fallback = yield* amp(dir, ["refresh"], env)
      expect(fallback.code).toBe(0)
      expect(fallback.stderr).toContain("logging in instead")
      expect(yield* server.counters).toMatchObject({ obtain: 2, refresh: 2 })
      const all = yield* server.issuedTokens
      expect((yield* readJson(file)).token).toBe(all[2])

      const clear = yield* amp(dir, ["clear"])
      expect(clear).toMatchObject({ code: 0, stdout: `Removed the token file ${file}\n` })
      expect(yield* exists(file)).toBe(false)

      // only `token` ever prints a token
      for (const output of [none, login, json, human, refreshed, fallback, clear]) {
        for (const issued of all) expect(output.stdout + output.stderr).not.toContain(issued)
      }
    }))

  it.scopedLive("status --json agrees with TokenService.getTokenInfo on the same file", () =>
    Effect.gen(function*() {
      const { dir, env, file } = yield* setup
      expect((yield* amp(dir, ["login", "--token-file", file], env)).code).toBe(0)
      const status = JSON.parse((yield* amp(dir, ["status", "--json", "--token-file", file], env)).stdout)
      const info = yield* Effect.flatMap(TokenService.TokenService, (service) => service.getTokenInfo).pipe(
        Effect.provide(NodeAmp.layerWithStore(NodeAmp.layerFileStore(file))),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
      )
      const expected = Option.getOrThrow(info)
      expect(status.has_token).toBe(true)
      expect(status.expires_at).toBe(DateTime.formatIso(expected.expiresAt))
      expect(status.obtained_at).toBe(DateTime.formatIso(expected.obtainedAt))
      expect(status.is_expired).toBe(expected.isExpired)
      expect(status.expires_soon).toBe(expected.expiresSoon)
      // Computed a moment apart, in two processes.
      expect(Math.abs(status.expires_in_seconds - Duration.toSeconds(expected.expiresIn))).toBeLessThan(5)
      expect(Math.abs(status.age_seconds - Duration.toSeconds(expected.age))).toBeLessThan(5)
    }))

  it.scopedLive("status: an expired token exits 1; one within the refresh margin is 'expires soon' and exits 0", () =>
    Effect.gen(function*() {
      const { dir } = yield* setup
      const now = Date.now()
      const expired = NodePath.join(dir, "expired.json")
      const soon = NodePath.join(dir, "soon.json")
      yield* writeTokenFile(expired, new Date(now - 60_000), new Date(now - 86_400_000))
      yield* writeTokenFile(soon, new Date(now + 60_000), new Date(now - 3_600_000))
      const [a, b] = yield* Effect.all([
        amp(dir, ["status", "--json", "--token-file", expired]),
        amp(dir, ["status", "--json", "--token-file", soon])
      ], { concurrency: 2 })
      expect(a.code).toBe(1)
      expect(JSON.parse(a.stdout)).toMatchObject({ has_token: true, is_expired: true, expires_in_seconds: 0 })
      expect(b.code).toBe(0)
      expect(JSON.parse(b.stdout)).toMatchObject({ has_token: true, is_expired: false, expires_soon: true })
      expect(JSON.parse(b.stdout).age_seconds).toBeGreaterThanOrEqual(3600)
      // status looks, it does not touch: the expired file is still there
      expect(yield* exists(expired)).toBe(true)
    }))

  it.scopedLive("login failures: wrong password, or a token file that cannot be written; one line, exit 1", () =>
    Effect.gen(function*() {
      const { dir, env, file } = yield* setup
      const blocker = NodePath.join(dir, "not-a-directory")
      yield* Effect.promise(() => Fs.writeFile(blocker, ""))
      const [wrong, unwritable] = yield* Effect.all([
        amp(dir, ["login"], { ...env, AMP_PASSWORD: "hunter2-wrong" }),
        amp(dir, ["login", "--token-file", NodePath.join(blocker, "token.json")], env)
      ], { concurrency: 2 })
      expect(wrong.code).toBe(1)
      expect(wrong.stdout).toBe("")
      expect(wrong.stderr.trim().split("\n")).toHaveLength(1)
      expect(wrong.stderr).toMatch(/^amp-token: wrong credentials: AMP rejected the username or password \(HTTP 400\)/)
      expect(wrong.stderr).not.toContain("hunter2-wrong")
      expect(yield* exists(file)).toBe(false)

      // the login worked, but the file is the point: not a success
      expect(unwritable.code).toBe(1)
      expect(unwritable.stdout).toBe("")
      expect(unwritable.stderr.trim().split("\n").at(-1)).toMatch(
        /^amp-token: the token was obtained but not saved: Could not save the token file .*not-a-directory/
      )
    }))

  it.scopedLive("an unreachable server is named; --base-url and --token-file win over the environment", () =>
    Effect.gen(function*() {
      const { dir, env, server } = yield* setup
      const other = NodePath.join(dir, "elsewhere", "t.json")
      const [down, flags, bad] = yield* Effect.all([
        amp(dir, ["token", "--base-url", "http://127.0.0.1:1/api"], { ...env, API_RETRY_MAX_ATTEMPTS: "1" }),
        amp(dir, ["login", "--base-url", server.baseUrl, "--token-file", other], {
          ...env,
          AMP_API_BASE_URL: "http://127.0.0.1:1/api",
          AMP_TOKEN_FILE: NodePath.join(dir, "ignored.json")
        }),
        amp(dir, ["token", "--base-url", "ftp://x"], env)
      ], { concurrency: 3 })
      expect(down.code).toBe(1)
      expect(down.stdout).toBe("")
      expect(down.stderr.trim().split("\n")).toHaveLength(1)
      expect(down.stderr).toMatch(/^amp-token: server unreachable: AMP obtain_token is unreachable/)

      expect(flags.code).toBe(0)
      expect(yield* exists(other)).toBe(true)
      expect(yield* exists(NodePath.join(dir, "ignored.json"))).toBe(false)
      expect((yield* server.counters).obtain).toBe(1)

      expect(bad.code).toBe(1)
      expect(bad.stderr).toMatch(/^amp-token: configuration: --base-url="ftp:\/\/x" is invalid/)
    }))

  it.scopedLive("rate limiting is reported with the wait the server asked for", () =>
    Effect.gen(function*() {
      const { dir, env, server } = yield* setup
      yield* server.script("obtain", MockFault.rateLimited("120"))
      const run = yield* amp(dir, ["login"], env)
      expect(run.code).toBe(1)
      expect(run.stderr.trim()).toBe(
        "amp-token: rate limited: AMP rate limited obtain_token (HTTP 429): the server asks to wait 2m"
      )
      expect((yield* server.counters).obtain).toBe(1)
    }))

  it.scopedLive("a corrupt token file is moved aside with a warning, and a new token obtained", () =>
    Effect.gen(function*() {
      const { dir, env, file, server } = yield* setup
      yield* Effect.promise(() => Fs.writeFile(file, "{ not json", { mode: 0o600 }))
      const run = yield* amp(dir, ["token"], env)
      expect(run.code).toBe(0)
      expect(run.stdout).toBe(`${(yield* server.issuedTokens)[0]}\n`)
      expect(run.stderr).toMatch(/^amp-token: warning: The token file .* is not a valid token file .*moved it to/)
      const aside = (yield* Effect.promise(() => Fs.readdir(dir))).filter((name) => name.includes(".corrupt"))
      expect(aside).toHaveLength(1)
    }))

  it.scopedLive("missing credentials are named; --log-level debug logs to stderr, never to stdout", () =>
    Effect.gen(function*() {
      const { dir, env, server } = yield* setup
      const { AMP_PASSWORD: _, ...noPassword } = env
      const [missing, debug] = yield* Effect.all([
        amp(dir, ["token"], noPassword),
        amp(dir, ["token", "--log-level", "debug"], env)
      ], { concurrency: 2 })
      expect(missing.code).toBe(1)
      expect(missing.stderr.trim()).toBe("amp-token: configuration: AMP_PASSWORD is not set")

      expect(debug.code).toBe(0)
      expect(debug.stdout).toBe(`${(yield* server.issuedTokens)[0]}\n`)
      expect(debug.stderr).toContain("amp-token: debug:")
      expect(debug.stderr).not.toContain("mock_pass")
    }))
})
