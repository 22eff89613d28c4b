/**
 * `amp-token` as its users run it, against the embedded mock AMP server, each test in its own
 * temporary directory, with an environment that holds only what the test gives it.
 *
 * Most scenarios run the command handlers in this process (`Cli.run` with a captured console
 * and a `ConfigProvider` for the environment): the same code as the executable, minus the
 * process start. What only a process can show — stdout holding nothing but the token, exit
 * codes after a signal, no colour when piped — runs the bundled executable, built once for this
 * file, as a child process.
 */
import { TokenService } from "@amp-effect/core"
import { MockAmpServer, MockFault } from "@amp-effect/node/MockAmpServer"
import * as NodeAmp from "@amp-effect/node/NodeAmp"
import { PostgresServer } from "@amp-effect/postgres/testing"
import { RedisServer } from "@amp-effect/redis/testing"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Console, DateTime, Duration, Effect, Option } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as NodePath from "node:path"
import * as Cli from "../src/Cli.js"
import * as Bundle from "./utils/Bundle.js"

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const format = (args: ReadonlyArray<unknown>) => args.map(String).join(" ") + "\n"

/** Runs `amp-token args` in this process with exactly `env` as its environment. */
const amp = (args: ReadonlyArray<string>, env: Record<string, string> = {}, options?: Cli.RunOptions) =>
  Effect.gen(function*() {
    let stdout = ""
    let stderr = ""
    const base = yield* Console.consoleWith(Effect.succeed)
    const captured: Console.Console = {
      ...base,
      log: (...args) => Effect.sync(() => void (stdout += format(args))),
      error: (...args) => Effect.sync(() => void (stderr += format(args))),
      unsafe: {
        ...base.unsafe,
        log: (...args) => void (stdout += format(args)),
        error: (...args) => void (stderr += format(args))
      }
    }
    const code = yield* Cli.run(["node", "amp-token", ...args], options).pipe(
      Effect.withConsole(captured),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
      Effect.provide(NodeContext.layer)
    )
    return { code, stdout, stderr } satisfies Run
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
  const file = NodePath.join(dir, "token.json")
  const env = {
    AMP_API_BASE_URL: server.baseUrl,
    AMP_USERNAME: "mock_user",
    AMP_PASSWORD: "mock_pass",
    AMP_TOKEN_FILE: file,
    API_RETRY_BASE_DELAY_MS: "10",
    API_RETRY_MAX_DELAY_MS: "100"
  }
  return { server, dir, env, file }
})

/** A loopback port where nothing listens: a Redis that is down. */
const closedPort = Effect.async<number>((resume) => {
  const server = Net.createServer().listen(0, "127.0.0.1", () => {
    const { port } = server.address() as Net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

const readJson = (file: string) => Effect.promise(async () => JSON.parse(await Fs.readFile(file, "utf8")))

const exists = (file: string) => Effect.promise(() => Fs.access(file).then(() => true, () => false))

/** A JWT-shaped token whose payload says `exp` (seconds since the epoch). */
const jwtWithExp = (exp: number) => {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
  return `${part({ typ: "JWT", alg: "HS256" })}.${part({ exp })}.c2ln`
}

/** A token file as the Rust client writes it, with the given times. */
const writeTokenFile = (file: string, expiresAt: Date, obtainedAt: Date, token = "opaque-token") =>
  Effect.promise(() =>
    Fs.writeFile(
      file,
      JSON.stringify({ token, expires_at: expiresAt.toISOString(), obtained_at: obtainedAt.toISOString() }),
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

/** What a failure prints: one line on stderr, nothing on stdout. */
const oneLineFailure = (run: Run) => {
  expect(run.code).toBe(1)
  expect(run.stdout).toBe("")
  expect(run.stderr.trim().split("\n")).toHaveLength(1)
  return run.stderr.trim()
}

describe("amp-token", () => {
  it.scopedLive("login, token from the file, status without network or credentials, refresh, clear", () =>
    Effect.gen(function*() {
      const { dir, env, file, server } = yield* setup
      const none = yield* amp(["status", "--json"], { AMP_TOKEN_FILE: file })
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

      const login = yield* amp(["login"], env)
      expect(login.code).toBe(0)
      expect(login.stdout).toMatch(/^Logged in; saved to .*token\.json \(expires \S+, in 23h 59m/)
      const [first] = yield* server.issuedTokens
      expect((yield* readJson(file)).token).toBe(first)
      expect((yield* Effect.promise(() => Fs.stat(file))).mode & 0o777).toBe(0o600)

      // `token` prints the token and nothing else, from the file: no call, no credentials needed
      const token = yield* amp(["token"], { AMP_TOKEN_FILE: file })
      expect(token).toEqual({ code: 0, stdout: `${first}\n`, stderr: "" })
      expect(yield* server.counters).toMatchObject({ obtain: 1, refresh: 0, total: 1 })

      // status: the file and the clock only, no credentials needed
      const json = yield* amp(["status", "--json"], { AMP_TOKEN_FILE: file })
      const human = yield* amp(["status", "--token-file", file])
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

      const refreshed = yield* amp(["refresh"], env)
      expect(refreshed.code).toBe(0)
      expect(refreshed.stdout).toMatch(/^Token renewed; saved to /)
      expect(yield* server.counters).toMatchObject({ obtain: 1, refresh: 1 })
      expect((yield* readJson(file)).token).toBe((yield* server.issuedTokens)[1])

      // with a revoked token, refresh is refused and falls back to a login
      yield* server.revokeAll
      const fallback = yield* amp(["refresh"], env)
      expect(fallback.code).toBe(0)
      expect(fallback.stderr).toContain("logging in instead")
      expect(yield* server.counters).toMatchObject({ obtain: 2, refresh: 2 })
      const all = yield* server.issuedTokens
      expect((yield* readJson(file)).token).toBe(all[2])

      const clear = yield* amp(["clear"], env)
      expect(clear).toMatchObject({ code: 0, stdout: `Removed the token file ${file}\n` })
      expect(yield* exists(file)).toBe(false)
      expect(yield* amp(["clear"], env)).toMatchObject({ code: 0, stdout: `No token file at ${file}\n` })

      // only `token` ever prints a token
      for (const output of [none, login, json, human, refreshed, fallback, clear]) {
        for (const issued of all) expect(output.stdout + output.stderr).not.toContain(issued)
      }
      expect(yield* Effect.promise(() => Fs.readdir(dir))).toEqual([])
    }))

  it.scopedLive("status --json agrees with TokenService.getTokenInfo on the same file", () =>
    Effect.gen(function*() {
      const { env, file } = yield* setup
      expect((yield* amp(["login"], env)).code).toBe(0)
      const status = JSON.parse((yield* amp(["status", "--json"], env)).stdout)
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
      // Computed a moment apart.
      expect(Math.abs(status.expires_in_seconds - Duration.toSeconds(expected.expiresIn))).toBeLessThan(5)
      expect(Math.abs(status.age_seconds - Duration.toSeconds(expected.age))).toBeLessThan(5)
    }))

  it.scopedLive("status and token judge a Rust client's file by the JWT's exp, not its 24-hour expires_at", () =>
    Effect.gen(function*() {
      const { dir, env, server } = yield* setup
      const now = Date.now()
      // The Rust client assumed 24 hours; the JWT says it expired a minute ago.
      const rust = NodePath.join(dir, "rust.json")
      const exp = Math.floor(now / 1000) - 60
      yield* writeTokenFile(rust, new Date(now + 23 * 3600_000), new Date(now - 3600_000), jwtWithExp(exp))
      const status = yield* amp(["status", "--json", "--token-file", rust])
      expect(status.code).toBe(1)
      expect(JSON.parse(status.stdout)).toMatchObject({
        has_token: true,
        is_expired: true,
        expires_in_seconds: 0,
        expires_at: new Date(exp * 1000).toISOString()
      })
      // And `token` does not hand it out: it logs in.
      const token = yield* amp(["token", "--token-file", rust], env)
      expect(token.code).toBe(0)
      expect(token.stdout).toBe(`${(yield* server.issuedTokens)[0]}\n`)
      expect((yield* server.counters).obtain).toBe(1)
    }))

  it.scopedLive("status: an expired token exits 1; one within the refresh margin is 'expires soon' and exits 0", () =>
    Effect.gen(function*() {
      const { dir } = yield* setup
      const now = Date.now()
      const expired = NodePath.join(dir, "expired.json")
      const soon = NodePath.join(dir, "soon.json")
      yield* writeTokenFile(expired, new Date(now - 60_000), new Date(now - 86_400_000))
      yield* writeTokenFile(soon, new Date(now + 60_000), new Date(now - 3_600_000))
      const a = yield* amp(["status", "--json", "--token-file", expired])
      const b = yield* amp(["status", "--json", "--token-file", soon])
      expect(a.code).toBe(1)
      expect(JSON.parse(a.stdout)).toMatchObject({ has_token: true, is_expired: true, expires_in_seconds: 0 })
      expect(b.code).toBe(0)
      expect(JSON.parse(b.stdout)).toMatchObject({ has_token: true, is_expired: false, expires_soon: true })
      expect(JSON.parse(b.stdout).age_seconds).toBeGreaterThanOrEqual(3600)
      // status looks, it does not touch: the expired file is still there
      expect(yield* exists(expired)).toBe(true)
      // The same, for people.
      const expiredText = yield* amp(["status", "--token-file", expired])
      expect(expiredText.code).toBe(1)
      expect(expiredText.stdout).toMatch(
        /^Token file: .*expired\.json\nExpires at: \S+ \(expired\)\nObtained at: \S+ \(1d( \d+s)? ago\)\n/
      )
      expect(expiredText.stdout).toContain("\nExpired: yes\nExpires soon: no\n")
      const soonText = yield* amp(["status", "--token-file", soon])
      expect(soonText.code).toBe(0)
      expect(soonText.stdout).toMatch(/\nExpires at: \S+ \(in \d+s\)\n/)
      expect(soonText.stdout).toContain("\nExpired: no\nExpires soon: yes (the next use renews it)\n")
    }))

  it.scopedLive("token renews a token inside the refresh margin through the refresh endpoint", () =>
    Effect.gen(function*() {
      const { env, file, server } = yield* setup
      expect((yield* amp(["login"], env)).code).toBe(0)
      // Issued tokens live 24 h: a margin of 25 h puts this one inside it.
      const token = yield* amp(["token"], { ...env, AMP_TOKEN_REFRESH_MARGIN_SECONDS: String(25 * 3600) })
      expect(token.code).toBe(0)
      const issued = yield* server.issuedTokens
      expect(token.stdout).toBe(`${issued[1]}\n`)
      expect(yield* server.counters).toMatchObject({ obtain: 1, refresh: 1 })
      expect((yield* readJson(file)).token).toBe(issued[1])
    }))

  it.scopedLive("login failures: wrong password, or a token file that cannot be written; one line, exit 1", () =>
    Effect.gen(function*() {
      const { dir, env, file } = yield* setup
      const blocker = NodePath.join(dir, "not-a-directory")
      yield* Effect.promise(() => Fs.writeFile(blocker, ""))
      const wrong = oneLineFailure(yield* amp(["login"], { ...env, AMP_PASSWORD: "hunter2-wrong" }))
      expect(wrong).toMatch(/^amp-token: wrong credentials: AMP rejected the username or password \(HTTP 400\)/)
      expect(wrong).toMatch(/ \(check AMP_USERNAME and AMP_PASSWORD\)$/)
      expect(wrong).not.toContain("hunter2-wrong")
      expect(yield* exists(file)).toBe(false)

      // the login worked, but the file is the point: not a success
      const unwritable = yield* amp(["login", "--token-file", NodePath.join(blocker, "token.json")], env)
      expect(unwritable.code).toBe(1)
      expect(unwritable.stdout).toBe("")
      expect(unwritable.stderr.trim().split("\n").at(-1)).toMatch(
        /^amp-token: the token was obtained but not saved: Could not save the token file .*not-a-directory/
      )
    }))

  it.scopedLive("token with a token file it cannot use or save: exit 1, one line, no token printed", () =>
    Effect.gen(function*() {
      const { dir, env, server } = yield* setup
      // A directory where the file should be: refused before any login.
      const directory = NodePath.join(dir, "a-directory")
      yield* Effect.promise(() => Fs.mkdir(directory))
      const unusable = oneLineFailure(yield* amp(["token", "--token-file", directory], env))
      expect(unusable).toMatch(/^amp-token: cannot use the token file: Could not load the token file .*a-directory/)
      expect((yield* server.counters).obtain).toBe(0)

      // Below a regular file: refused at the first look, too.
      const blocker = NodePath.join(dir, "not-a-directory")
      yield* Effect.promise(() => Fs.writeFile(blocker, ""))
      const below = oneLineFailure(yield* amp(["token", "--token-file", NodePath.join(blocker, "token.json")], env))
      expect(below).toMatch(/^amp-token: cannot use the token file: .*ENOTDIR/)
      expect((yield* server.counters).obtain).toBe(0)

      // Nothing there, and nothing can be created there (even as root): the login happens, the
      // token is not handed out.
      const unwritable = yield* amp(["token", "--token-file", "/sys/amp-token-test/token.json"], env)
      expect(unwritable.code).toBe(1)
      expect(unwritable.stdout).toBe("")
      expect(unwritable.stderr.trim().split("\n").at(-1)).toMatch(
        /^amp-token: the token was obtained but not saved: Could not save the token file \/sys\/amp-token-test/
      )
      expect((yield* server.counters).obtain).toBe(1)
      for (const issued of yield* server.issuedTokens) expect(unwritable.stderr).not.toContain(issued)
    }))

  it.scopedLive("an unreachable server is named; --base-url and --token-file win over the environment", () =>
    Effect.gen(function*() {
      const { dir, env, server } = yield* setup
      const other = NodePath.join(dir, "elsewhere", "t.json")
      const down = oneLineFailure(
        yield* amp(["token", "--base-url", "http://127.0.0.1:1/api"], { ...env, API_RETRY_MAX_ATTEMPTS: "1" })
      )
      expect(down).toMatch(/^amp-token: server unreachable: AMP obtain_token is unreachable/)

      const flags = yield* amp(["login", "--base-url", server.baseUrl, "--token-file", other], {
        ...env,
        AMP_API_BASE_URL: "http://127.0.0.1:1/api",
        AMP_TOKEN_FILE: NodePath.join(dir, "ignored.json")
      })
      expect(flags.code).toBe(0)
      expect(yield* exists(other)).toBe(true)
      expect(yield* exists(NodePath.join(dir, "ignored.json"))).toBe(false)
      expect((yield* server.counters).obtain).toBe(1)

      const bad = oneLineFailure(yield* amp(["token", "--base-url", "ftp://x"], env))
      expect(bad).toMatch(/^amp-token: configuration: --base-url is invalid: got "ftp:\/\/x"/)
      const blank = oneLineFailure(yield* amp(["--token-file", " ", "token"], env))
      expect(blank).toBe("amp-token: configuration: --token-file is invalid: got \" \", expected a file path")
    }))

  it.scopedLive("a base URL without /api is named as a wrong base URL, not as wrong credentials", () =>
    Effect.gen(function*() {
      const { env, server } = yield* setup
      const line = oneLineFailure(yield* amp(["login", "--base-url", server.baseUrl.replace(/\/api$/, "")], env))
      expect(line).toMatch(/^amp-token: wrong base URL: AMP has no obtain_token endpoint at .*\(HTTP 404\)/)
      expect(line).toContain("check AMP_API_BASE_URL")
      expect(line).not.toContain("wrong credentials")
      expect(line).not.toContain("AMP_PASSWORD")
    }))

  it.scopedLive("options work before or after the command's name; the command's own value wins", () =>
    Effect.gen(function*() {
      const { dir, env, file } = yield* setup
      expect((yield* amp(["login"], env)).code).toBe(0)
      const other = NodePath.join(dir, "other.json")

      const statusDebug = yield* amp(["status", "--json", "--log-level", "debug"], env)
      expect(statusDebug.code).toBe(0)
      expect(JSON.parse(statusDebug.stdout).has_token).toBe(true)
      expect(statusDebug.stderr).toContain(`amp-token: debug: Token file ${file}`)

      const tokenDebug = yield* amp(["token", "--token-file", file, "--log-level", "debug"], {})
      expect(tokenDebug.code).toBe(0)
      expect(tokenDebug.stdout).toBe(`${(yield* readJson(file)).token}\n`)
      expect(tokenDebug.stderr).toContain("amp-token: debug:")

      const before = yield* amp(["--token-file", other, "status"], env)
      expect(before.code).toBe(1)
      expect(before.stdout).toContain(`Token file: ${other}\nNo token.`)

      const both = yield* amp(["--token-file", other, "--log-level", "debug", "status", "--token-file", file], {})
      expect(both.code).toBe(0)
      expect(both.stdout).toContain(`Token file: ${file}`)
      expect(both.stderr).toContain("amp-token: debug:")

      const quiet = yield* amp(["token", "--log-level", "none", "--base-url", "http://127.0.0.1:1/api"], {
        ...env,
        AMP_TOKEN_FILE: other,
        API_RETRY_MAX_ATTEMPTS: "1"
      })
      // --log-level silences logs, never the failure line
      oneLineFailure(quiet)
    }))

  it.scopedLive("a server that does not answer in time is named", () =>
    Effect.gen(function*() {
      const { env, server } = yield* setup
      yield* server.script("obtain", MockFault.hang)
      const line = oneLineFailure(
        yield* amp(["token"], { ...env, API_REQUEST_TIMEOUT_SECONDS: "1", API_RETRY_MAX_ATTEMPTS: "1" })
      )
      expect(line).toMatch(/^amp-token: server not answering: /)
    }))

  it.scopedLive("a server error is reported as the server's own failure", () =>
    Effect.gen(function*() {
      const { env, server } = yield* setup
      yield* server.script("obtain", MockFault.status(503))
      const line = oneLineFailure(yield* amp(["login"], { ...env, API_RETRY_MAX_ATTEMPTS: "1" }))
      expect(line).toMatch(/^amp-token: AMP .*obtain_token.*\(HTTP 503\)/)
    }))

  it.scopedLive("clear removes a corrupt token file too", () =>
    Effect.gen(function*() {
      const { dir, file } = yield* setup
      yield* Effect.promise(() => Fs.writeFile(file, "{ not json", { mode: 0o600 }))
      expect(yield* amp(["clear", "--token-file", file])).toEqual({
        code: 0,
        stdout: `Removed the token file ${file}\n`,
        stderr: ""
      })
      expect(yield* Effect.promise(() => Fs.readdir(dir))).toEqual([])
    }))

  it.scopedLive("rate limiting is reported with the wait the server asked for", () =>
    Effect.gen(function*() {
      const { env, server } = yield* setup
      yield* server.script("obtain", MockFault.rateLimited("120"))
      const line = oneLineFailure(yield* amp(["login"], env))
      expect(line).toBe("amp-token: rate limited: AMP rate limited obtain_token (HTTP 429): the server asks to wait 2m")
      expect((yield* server.counters).obtain).toBe(1)
    }))

  it.scopedLive("a corrupt token file is moved aside with a warning, and a new token obtained", () =>
    Effect.gen(function*() {
      const { dir, env, file, server } = yield* setup
      yield* Effect.promise(() => Fs.writeFile(file, "{ not json", { mode: 0o600 }))
      const run = yield* amp(["token"], env)
      expect(run.code).toBe(0)
      expect(run.stdout).toBe(`${(yield* server.issuedTokens)[0]}\n`)
      expect(run.stderr).toMatch(/^amp-token: warning: The token file .* is not a valid token file .*moved it to/)
      const aside = (yield* Effect.promise(() => Fs.readdir(dir))).filter((name) => name.includes(".corrupt"))
      expect(aside).toHaveLength(1)
    }))

  it.scopedLive("missing credentials are named only when a login is needed; debug logs go to stderr", () =>
    Effect.gen(function*() {
      const { env, server } = yield* setup
      const { AMP_PASSWORD: _, ...noPassword } = env
      const missing = oneLineFailure(yield* amp(["token"], noPassword))
      expect(missing).toBe("amp-token: configuration: AMP_PASSWORD is not set")

      const debug = yield* amp(["token", "--log-level", "debug"], env)
      expect(debug.code).toBe(0)
      expect(debug.stdout).toBe(`${(yield* server.issuedTokens)[0]}\n`)
      expect(debug.stderr).toContain("amp-token: debug:")
      expect(debug.stderr).not.toContain("mock_pass")

      // with a valid token in the file, no credentials are needed at all
      const fromFile = yield* amp(["token"], noPassword)
      expect(fromFile).toEqual({ code: 0, stdout: debug.stdout, stderr: "" })
    }))

  it.effect("usage errors exit 2; --help exits 0 and uses colour codes only when asked to", () =>
    Effect.gen(function*() {
      const noCommand = yield* amp([])
      expect(noCommand.code).toBe(2)
      expect(noCommand.stderr).toContain("choose a command")
      expect((yield* amp(["frobnicate"])).code).toBe(2)
      expect((yield* amp(["status", "--log-level", "loud"])).code).toBe(2)

      const plain = yield* amp(["--help"])
      expect(plain.code).toBe(0)
      expect(plain.stdout).toMatch(/^amp-token\n\namp-token \d+\.\d+\.\d+\n\nUSAGE\n/)
      expect(plain.stdout).toContain("amp-token")
      expect(plain.stdout).toContain("--token-file")
      expect(plain.stdout).not.toContain("\u001b[")
      const colored = yield* amp(["--help"], {}, { colors: true })
      expect(colored.stdout).toContain("\u001b[")
    }))
  it.effect("--help names each option's environment variable", () =>
    Effect.gen(function*() {
      const help = yield* amp(["--help"])
      expect(help.code).toBe(0)
      for (
        const variable of ["AMP_TOKEN_FILE", "AMP_API_BASE_URL", "AMP_TOKEN_STORE", "AMP_REDIS_URL", "AMP_POSTGRES_URL"]
      ) {
        expect(help.stdout).toContain(`$${variable}`)
      }
      // @effect/cli's own line for an option with a fallback `Config`.
      expect(help.stdout).toContain("This option can be set from environment variables.")
    }))

  it.scopedLive("an invalid variable is a usage error naming it, unless its flag is given or it is not used", () =>
    Effect.gen(function*() {
      const { env, server } = yield* setup
      const bad = { ...env, AMP_API_BASE_URL: "ftp://x" }
      const invalid = yield* amp(["token"], bad)
      expect(invalid.code).toBe(2)
      expect(invalid.stdout).toBe("")
      expect(invalid.stderr).toContain("AMP_API_BASE_URL")
      expect((yield* server.counters).total).toBe(0)
      // The flag replaces the variable, which is then not read at all.
      const flag = yield* amp(["--base-url", server.baseUrl, "token"], bad)
      expect(flag).toMatchObject({ code: 0, stdout: `${(yield* server.issuedTokens)[0]}\n` })
      // AMP_REDIS_URL is read only for the Redis store.
      const stale = yield* amp(["token"], { ...env, AMP_REDIS_URL: "http://x" })
      expect(stale).toEqual({ code: 0, stdout: flag.stdout, stderr: "" })
    }))

  it.scopedLive("Redis unreachable: token logs in without it, as the library does; the others fail naming it", () =>
    Effect.gen(function*() {
      const { dir, env, server } = yield* setup
      const { AMP_TOKEN_FILE: _, ...noFile } = env
      const down = ["--store", "redis", "--redis-url", `redis://127.0.0.1:${yield* closedPort}`]
      const token = yield* amp(["token", ...down], noFile)
      expect(token.code).toBe(0)
      expect(token.stdout).toBe(`${(yield* server.issuedTokens)[0]}\n`)
      expect(token.stderr).toMatch(/^amp-token: warning: Could not connect to Redis at redis:\/\/127\.0\.0\.1:\d+ /)
      expect(token.stderr).toContain("the token is kept in memory only")
      expect((yield* server.counters).obtain).toBe(1)

      // login and refresh are for the saved token: not saved, not a success.
      const login = yield* amp(["login", ...down], noFile)
      expect(login.code).toBe(1)
      expect(login.stdout).toBe("")
      expect(login.stderr.trim().split("\n").at(-1)).toMatch(
        /^amp-token: the token was obtained but not saved: .*Redis/
      )
      // status and clear cannot say or do anything without it.
      for (const command of ["status", "clear"]) {
        const run = yield* amp([command, ...down], noFile)
        expect(run.code).toBe(1)
        expect(run.stdout).toBe("")
        expect(run.stderr.trim().split("\n").at(-1)).toMatch(/^amp-token: .*Redis/)
      }
      for (const issued of yield* server.issuedTokens) expect(login.stderr).not.toContain(issued)
      expect(yield* Effect.promise(() => Fs.readdir(dir))).toEqual([])
    }))

  it.scopedLive("Postgres unreachable: token logs in without it, as the library does; the others fail naming it", () =>
    Effect.gen(function*() {
      const { dir, env, server } = yield* setup
      const { AMP_TOKEN_FILE: _, ...noFile } = env
      const url = `postgres://amp:hunter2-pg@127.0.0.1:${yield* closedPort}/amp`
      const down = ["--store", "postgres", "--postgres-url", url]
      const token = yield* amp(["token", ...down], noFile)
      expect(token.code).toBe(0)
      expect(token.stdout).toBe(`${(yield* server.issuedTokens)[0]}\n`)
      expect(token.stderr).toMatch(/^amp-token: warning: .*Postgres at postgres:\/\/127\.0\.0\.1:\d+\/amp /)
      expect((yield* server.counters).obtain).toBe(1)

      // login is for the saved token: not saved, not a success.
      const login = yield* amp(["login", ...down], noFile)
      expect(login.code).toBe(1)
      expect(login.stdout).toBe("")
      expect(login.stderr.trim().split("\n").at(-1)).toMatch(
        /^amp-token: the token was obtained but not saved: .*Postgres/
      )
      // status and clear cannot say or do anything without it.
      const others = []
      for (const command of ["status", "clear"]) {
        const run = yield* amp([command, ...down], noFile)
        expect(run.code).toBe(1)
        expect(run.stdout).toBe("")
        expect(run.stderr.trim().split("\n").at(-1)).toMatch(/^amp-token: .*Postgres/)
        others.push(run)
      }
      for (const run of [token, login, ...others]) {
        expect(run.stderr).not.toContain("hunter2-pg")
        for (const issued of yield* server.issuedTokens) expect(run.stderr).not.toContain(issued)
      }
      expect(yield* Effect.promise(() => Fs.readdir(dir))).toEqual([])
    }))

  it.scopedLive("Postgres configuration: a missing or invalid URL is named, never quoted; unused, it is not read", () =>
    Effect.gen(function*() {
      const { env, server } = yield* setup
      const noUrl = oneLineFailure(yield* amp(["--store", "postgres", "status"], env))
      expect(noUrl).toMatch(/^amp-token: configuration: AMP_POSTGRES_URL /)
      // A bad flag is an error even where the environment holds a good value for it.
      const badFlag = oneLineFailure(
        yield* amp(["status", "--store", "postgres", "--postgres-url", "http://amp:hunter2-pg@x"], {
          ...env,
          AMP_POSTGRES_URL: "postgres://127.0.0.1:1/amp"
        })
      )
      expect(badFlag).toMatch(/^amp-token: configuration: --postgres-url /)
      expect(badFlag).not.toContain("hunter2-pg")
      const badVariable = oneLineFailure(
        yield* amp(["status", "--store", "postgres"], { ...env, AMP_POSTGRES_URL: "http://amp:hunter2-pg@x" })
      )
      expect(badVariable).toMatch(/^amp-token: configuration: AMP_POSTGRES_URL /)
      expect(badVariable).not.toContain("hunter2-pg")
      // AMP_POSTGRES_URL is read only for the Postgres store.
      const stale = yield* amp(["token"], { ...env, AMP_POSTGRES_URL: "http://x" })
      expect(stale).toEqual({ code: 0, stdout: `${(yield* server.issuedTokens)[0]}\n`, stderr: "" })
    }))

  it.scopedLive(
    "AMP_TOKEN_STORE=postgres and AMP_POSTGRES_URL choose the Postgres store without any flag",
    () =>
      Effect.gen(function*() {
        const { env, server } = yield* setup
        const { AMP_TOKEN_FILE: _, ...noFile } = env
        const fromEnv = {
          ...noFile,
          AMP_TOKEN_STORE: "postgres",
          AMP_POSTGRES_URL: `postgres://amp:hunter2-pg@127.0.0.1:${yield* closedPort}/amp`
        }
        const token = yield* amp(["token"], fromEnv)
        expect(token.code).toBe(0)
        expect(token.stdout).toBe(`${(yield* server.issuedTokens)[0]}\n`)
        expect(token.stderr).toMatch(/^amp-token: warning: .*Postgres at postgres:\/\/127\.0\.0\.1:\d+\/amp /)
        const status = oneLineFailure(yield* amp(["status"], fromEnv))
        expect(status).toMatch(/^amp-token: .*Postgres/)
        expect(status).not.toContain("hunter2-pg")
      })
  )
})

// -----------------------------------------------------------------------------
// The fleet's token, in Postgres
// -----------------------------------------------------------------------------

if (PostgresServer.unavailable !== undefined) {
  console.warn(`amp-token --store postgres skipped: ${PostgresServer.unavailable}`)
}

describe.skipIf(PostgresServer.unavailable !== undefined)("amp-token --store postgres", () => {
  it.scopedLive("login, token, status and clear on the fleet's token in Postgres; no file, no password printed", () =>
    Effect.gen(function*() {
      const { dir, env, server } = yield* setup
      const postgres = yield* PostgresServer.scoped()
      const { AMP_TOKEN_FILE: _, ...noFile } = env
      const flags = ["--store", "postgres", "--postgres-url", postgres.url]

      const login = yield* amp([...flags, "login"], noFile)
      expect(login.code).toBe(0)
      expect(login.stdout).toMatch(/^Logged in; saved to postgres postgres:\/\/127\.0\.0\.1:\d+\/postgres .*\(expires /)
      const [first] = yield* server.issuedTokens

      // The URL from the environment; only the username (it keys the row), no password.
      const fromEnv = { AMP_API_BASE_URL: server.baseUrl, AMP_USERNAME: "mock_user", AMP_POSTGRES_URL: postgres.url }
      const token = yield* amp(["--store", "postgres", "token"], fromEnv)
      expect(token).toEqual({ code: 0, stdout: `${first}\n`, stderr: "" })
      expect((yield* server.counters).obtain).toBe(1)

      const status = yield* amp(["status", "--store", "postgres"], fromEnv)
      expect(status.code).toBe(0)
      expect(status.stdout).toMatch(/^Token store: postgres postgres:\/\/127\.0\.0\.1:\d+\/postgres /)
      expect(status.stdout).toContain("Expired: no")

      const clear = yield* amp([...flags, "clear", "--log-level", "debug"], noFile)
      expect(clear.code).toBe(0)
      expect(clear.stdout).toMatch(/^Removed the token from postgres /)
      expect(clear.stderr).toMatch(/^amp-token: debug: Token store: Postgres, AMP API http:\/\/127\.0\.0\.1:\d+\/api\n/)
      expect(yield* amp([...flags, "clear"], noFile)).toMatchObject({
        code: 0,
        stdout: `No token in ${status.stdout.split("\n")[0]!.slice("Token store: ".length)}\n`
      })
      expect((yield* amp(["status", "--json", "--store", "postgres"], fromEnv)).code).toBe(1)
      expect(yield* Effect.promise(() => Fs.readdir(dir))).toEqual([])
      for (const output of [login, token, status, clear]) {
        expect(output.stdout + output.stderr).not.toContain(postgres.password)
        if (output !== token) expect(output.stdout + output.stderr).not.toContain(first)
      }
    }))
})

// -----------------------------------------------------------------------------
// The fleet's token, in Redis
// -----------------------------------------------------------------------------

RedisServer.warnIfSkipped()

describe.skipIf(RedisServer.unavailable !== undefined)("amp-token --store redis", () => {
  it.scopedLive("login, token, status and clear on the fleet's token in Redis; no file anywhere", () =>
    Effect.gen(function*() {
      const { dir, env, server } = yield* setup
      const redis = yield* RedisServer.scoped()
      const { AMP_TOKEN_FILE: _, ...noFile } = env
      const flags = ["--store", "redis", "--redis-url", redis.url]

      const login = yield* amp([...flags, "login"], noFile)
      expect(login.code).toBe(0)
      expect(login.stdout).toMatch(
        /^Logged in; saved to redis redis:\/\/127\.0\.0\.1:\d+ amp-effect:\{[0-9a-f]+\}:token \(expires /
      )
      const [first] = yield* server.issuedTokens

      // From the environment instead of flags; only the username (it names the keys), no password.
      const fromEnv = {
        AMP_API_BASE_URL: server.baseUrl,
        AMP_USERNAME: "mock_user",
        AMP_TOKEN_STORE: "redis",
        AMP_REDIS_URL: redis.url
      }
      const token = yield* amp(["token"], fromEnv)
      expect(token).toEqual({ code: 0, stdout: `${first}\n`, stderr: "" })
      expect((yield* server.counters).obtain).toBe(1)

      const status = yield* amp(["status"], fromEnv)
      expect(status.code).toBe(0)
      expect(status.stdout).toMatch(/^Token store: redis redis:\/\/127\.0\.0\.1:\d+ amp-effect:/)
      expect(status.stdout).toContain("Expired: no")

      const clear = yield* amp([...flags, "clear", "--log-level", "debug"], noFile)
      expect(clear.code).toBe(0)
      expect(clear.stdout).toMatch(/^Removed the token from redis /)
      expect(clear.stderr).toMatch(/^amp-token: debug: Token store: Redis, AMP API http:\/\/127\.0\.0\.1:\d+\/api\n/)
      expect(yield* amp([...flags, "clear"], noFile)).toMatchObject({
        code: 0,
        stdout: `No token in ${status.stdout.split("\n")[0]!.slice("Token store: ".length)}\n`
      })
      expect((yield* amp(["status", "--json"], fromEnv)).code).toBe(1)
      expect(yield* Effect.promise(() => Fs.readdir(dir))).toEqual([])
      for (const output of [login, status, clear]) expect(output.stdout + output.stderr).not.toContain(first)
    }))

  it.scopedLive("a store the CLI cannot keep, or no Redis URL, is a configuration error naming the cause", () =>
    Effect.gen(function*() {
      const { env } = yield* setup
      const memory = oneLineFailure(yield* amp(["token"], { ...env, AMP_TOKEN_STORE: "memory" }))
      expect(memory).toBe(
        "amp-token: configuration: AMP_TOKEN_STORE=\"memory\" is invalid: amp-token keeps the token in a file, in Redis or in Postgres: expected file, redis or postgres"
      )
      const noUrl = oneLineFailure(yield* amp(["--store", "redis", "status"], env))
      expect(noUrl).toMatch(/^amp-token: configuration: AMP_REDIS_URL /)
      const badUrl = oneLineFailure(yield* amp(["status", "--store", "redis", "--redis-url", "http://x"], env))
      expect(badUrl).toMatch(/^amp-token: configuration: --redis-url /)
      expect(badUrl).not.toContain("http://x")
      // A bad flag is an error even where the environment holds a good value for it.
      const badFlag = oneLineFailure(
        yield* amp(["status", "--store", "redis", "--redis-url", "http://x"], {
          ...env,
          AMP_REDIS_URL: "redis://127.0.0.1:1"
        })
      )
      expect(badFlag).toMatch(/^amp-token: configuration: --redis-url /)
      // --store is a choice: a usage error (exit 2), whatever AMP_TOKEN_STORE says.
      const badStore = yield* amp(["status", "--store", "disk"], { ...env, AMP_TOKEN_STORE: "file" })
      expect(badStore.code).toBe(2)
      expect(badStore.stdout).toBe("")
    }))
})

// -----------------------------------------------------------------------------
// The executable
// -----------------------------------------------------------------------------

let bundleDir = ""
let bundle = ""

beforeAll(async () => {
  bundleDir = await Fs.mkdtemp(NodePath.join(Os.tmpdir(), "amp-token-bundle-"))
  bundle = NodePath.join(bundleDir, "amp-token.cjs")
  await Bundle.build(bundleDir)
}, 120_000)

afterAll(() => Fs.rm(bundleDir, { recursive: true, force: true }))

/**
 * Starts the bundled `amp-token args` (or another build's `bin`) with exactly `env` (plus PATH,
 * and a code cache in the bundle's directory, see `Launcher.test.ts`); stdout through a pipe.
 */
const spawn = (args: ReadonlyArray<string>, env: Record<string, string>, bin = bundle) => {
  const child = ChildProcess.spawn(process.execPath, [bin, ...args], {
    env: { PATH: process.env["PATH"] ?? "", XDG_CACHE_HOME: NodePath.join(bundleDir, "cache"), ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (chunk) => stdout += chunk)
  child.stderr.on("data", (chunk) => stderr += chunk)
  const done = Effect.async<Run & { readonly signal: NodeJS.Signals | null }>((resume) => {
    child.once("close", (code, signal) => resume(Effect.succeed({ code: code ?? -1, signal, stdout, stderr })))
  })
  return { child, done }
}

/** Generous: only says "did not hang", never "fast" (a busy machine starts processes slowly). */
const noHang = 60_000

describe("amp-token, the executable", () => {
  it.scopedLive(
    "$(amp-token token): stdout holds the token and nothing else; help is plain when piped",
    () =>
      Effect.gen(function*() {
        const { env, server } = yield* setup
        const token = yield* spawn(["token"], env).done
        expect(token).toEqual({ code: 0, signal: null, stdout: `${(yield* server.issuedTokens)[0]}\n`, stderr: "" })
        const help = yield* spawn(["--help"], {}).done
        expect(help.code).toBe(0)
        expect(help.stdout).toContain("--token-file")
        expect(help.stdout).not.toContain("\u001b[")
      }),
    noHang
  )

  it.scopedLive.skipIf(RedisServer.unavailable !== undefined)(
    "--store redis: the executable loads node-redis from the file beside it, only then",
    () =>
      Effect.gen(function*() {
        const { env, server } = yield* setup
        const redis = yield* RedisServer.scoped()
        const { AMP_TOKEN_FILE: _, ...noFile } = env
        const token = yield* spawn(["token", "--store", "redis", "--redis-url", redis.url], noFile).done
        expect(token).toEqual({ code: 0, signal: null, stdout: `${(yield* server.issuedTokens)[0]}\n`, stderr: "" })
        // A file-store run never reads it: the executable works with redis.cjs gone.
        const withoutRedis = NodePath.join(bundleDir, "without-redis")
        yield* Effect.promise(() => Fs.mkdir(withoutRedis))
        for (const name of ["amp-token.cjs", "cli.cjs"]) {
          yield* Effect.promise(() => Fs.copyFile(NodePath.join(bundleDir, name), NodePath.join(withoutRedis, name)))
        }
        const fileRun = yield* spawn(["token"], env, NodePath.join(withoutRedis, "amp-token.cjs")).done
        expect(fileRun).toEqual({ code: 0, signal: null, stdout: `${(yield* server.issuedTokens)[1]}\n`, stderr: "" })
      }),
    noHang
  )

  it.scopedLive(
    "--store postgres: the executable loads node-postgres from pg.cjs beside it, only then",
    () =>
      Effect.gen(function*() {
        const { env, server } = yield* setup
        const { AMP_TOKEN_FILE: _, ...noFile } = env
        const down = [
          "--store",
          "postgres",
          "--postgres-url",
          `postgres://amp:hunter2-pg@127.0.0.1:${yield* closedPort}/a`
        ]
        // node-postgres ran: it could not connect, and the token came without the store.
        const token = yield* spawn(["token", ...down], noFile).done
        expect(token).toMatchObject({ code: 0, signal: null, stdout: `${(yield* server.issuedTokens)[0]}\n` })
        expect(token.stderr).toMatch(/^amp-token: warning: .*Postgres.*ECONNREFUSED/)
        expect(token.stderr).not.toContain("hunter2-pg")
        // Without pg.cjs: a file-store run works; a Postgres run names what is missing.
        const withoutPg = NodePath.join(bundleDir, "without-pg")
        yield* Effect.promise(() => Fs.mkdir(withoutPg))
        for (const name of ["amp-token.cjs", "cli.cjs"]) {
          yield* Effect.promise(() => Fs.copyFile(NodePath.join(bundleDir, name), NodePath.join(withoutPg, name)))
        }
        const bin = NodePath.join(withoutPg, "amp-token.cjs")
        const fileRun = yield* spawn(["token"], env, bin).done
        expect(fileRun).toEqual({ code: 0, signal: null, stdout: `${(yield* server.issuedTokens)[1]}\n`, stderr: "" })
        const pgRun = yield* spawn(["status", ...down], noFile, bin).done
        expect(pgRun.code).toBe(70)
        expect(pgRun.stderr).toContain("pg.cjs")
      }),
    noHang
  )

  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    it.scopedLive(
      `interrupted by ${signal} against a hung server: exit ${code}, nothing on stdout`,
      () =>
        Effect.gen(function*() {
          const { env, server } = yield* setup
          yield* server.script("obtain", MockFault.hang)
          const run = spawn(["token", "--log-level", "debug"], { ...env, API_REQUEST_TIMEOUT_SECONDS: "600" })
          // Signal once the request is at the server, so the run is surely mid-login.
          while ((yield* server.counters).obtain === 0) yield* Effect.sleep("20 millis")
          run.child.kill(signal)
          const done = yield* run.done
          expect(done.code).toBe(code)
          expect(done.stdout).toBe("")
        }),
      noHang
    )
  }
})
