/**
 * The AMP client against a real HTTP server on 127.0.0.1 (the embedded mock) over Node's HTTP
 * client: what the core's scripted tests cannot show, with real sockets. Time that the library
 * reads from `Clock` (timeouts, backoff) is driven with `TestClock`; real-time bounds are only
 * generous "did not hang" limits.
 */
import { AuthApi, TokenService, TokenStore } from "@amp-effect/core"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, Layer, Logger, LogLevel, Redacted, TestClock } from "effect"
import { MockAmpServer, MockFault } from "../src/MockAmpServer.js"

const options = (
  server: MockAmpServer.Service,
  overrides?: Partial<AuthApi.AuthApiOptions>
): AuthApi.AuthApiOptions => ({
  baseUrl: server.baseUrl,
  username: "mock_user",
  password: Redacted.make("mock_pass"),
  retry: { maxAttempts: 3, baseDelay: Duration.millis(20), maxDelay: Duration.millis(200) },
  // Long enough that a busy machine never cuts an attempt: where a test is about the timeout,
  // it sets its own and drives it with `TestClock`.
  requestTimeout: Duration.seconds(30),
  ...overrides
})

/** Builds the API into the test's scope, so the HTTP client lives as long as the test. */
const api = (opts: AuthApi.AuthApiOptions) =>
  Effect.map(
    Layer.build(AuthApi.layer(opts).pipe(Layer.provide(NodeHttpClient.layerUndici))),
    (context) => context.unsafeMap.get(AuthApi.AuthApi.key) as AuthApi.AuthApi["Type"]
  )

/**
 * Waits until the server has received `n` logins: the signal that an attempt is under way. A
 * real-time limit only turns a hang into a failure.
 */
const receivedLogins = (server: MockAmpServer.Service, n: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 20_000
    while ((yield* server.counters).obtain < n) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`the server never received login ${n}`)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
    }
  })

/**
 * Waits until the library sleeps on a backoff (a `TestClock` sleep due within `within` of now,
 * where the attempts' timeouts are longer) and answers how long it is: the signal that the test
 * can advance the clock. A real-time limit only turns a hang into a failure.
 */
const backoffStarted = (within: Duration.DurationInput = "5 seconds") =>
  Effect.gen(function*() {
    const deadline = Date.now() + 20_000
    while (true) {
      const now = yield* TestClock.currentTimeMillis
      const due = Chunk.filter(yield* TestClock.sleeps(), (end) => end - now <= Duration.toMillis(within))
      if (Chunk.isNonEmpty(due)) return Math.min(...due) - now
      if (Date.now() > deadline) return yield* Effect.dieMessage("no backoff started")
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
    }
  })

describe("AuthApi over HTTP", () => {
  it.scopedLive("obtains and refreshes against the real endpoints", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      const service = yield* api(options(server))
      const token = yield* service.obtain
      const refreshed = yield* service.refresh(token)
      expect(Redacted.value(refreshed)).not.toBe(Redacted.value(token))
      expect(yield* server.issuedTokens).toEqual([Redacted.value(token), Redacted.value(refreshed)])
      const counters = yield* server.counters
      expect([counters.obtain, counters.refresh]).toEqual([1, 1])
    }))

  it.scoped("cuts a hung server at API_REQUEST_TIMEOUT_SECONDS, once per attempt", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      yield* server.script("obtain", MockFault.hang, MockFault.hang)
      const service = yield* api(options(server, {
        retry: { maxAttempts: 2, baseDelay: Duration.millis(10), maxDelay: Duration.millis(10) },
        requestTimeout: Duration.seconds(1)
      }))
      const fiber = yield* Effect.fork(Effect.flip(service.obtain))
      yield* receivedLogins(server, 1)
      yield* TestClock.adjust("999 millis")
      expect(fiber.unsafePoll()).toBeNull() // still waiting for the hung answer
      yield* TestClock.adjust("1 millis") // the first attempt's timeout
      expect(yield* backoffStarted("500 millis")).toBe(10) // capped at the max delay
      yield* TestClock.adjust("10 millis")
      yield* receivedLogins(server, 2)
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "AuthError", reason: "RequestTimeout", timeout: Duration.seconds(1) })
      expect(error.message).toBe("AMP obtain_token did not answer within 1s")
      expect((yield* server.counters).obtain).toBe(2)
    }))

  it.scoped("retries a 503, a reset connection and a 429 with Retry-After, then succeeds", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      yield* server.script("obtain", MockFault.status(503), MockFault.reset, MockFault.rateLimited("1"))
      const service = yield* api(options(server, {
        retry: { maxAttempts: 4, baseDelay: Duration.millis(10), maxDelay: Duration.seconds(2) }
      }))
      const fiber = yield* Effect.fork(service.obtain)
      const first = yield* backoffStarted() // after the 503: 10 ms + up to 20 %
      expect(first).toBeGreaterThanOrEqual(10)
      expect(first).toBeLessThanOrEqual(12)
      yield* TestClock.adjust(first)
      const second = yield* backoffStarted() // after the reset: 20 ms + up to 20 %
      expect(second).toBeGreaterThanOrEqual(20)
      expect(second).toBeLessThanOrEqual(24)
      yield* TestClock.adjust(second)
      expect(yield* backoffStarted()).toBe(1000) // after the 429: what Retry-After asked, not 40 ms
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect((yield* server.counters).obtain).toBe(4)
    }))

  it.scopedLive("a wrong password is one request and a typed error", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      const service = yield* api(options(server, { password: Redacted.make("wrong-password-123") }))
      const error = yield* Effect.flip(service.obtain)
      expect(error).toMatchObject({ _tag: "AuthError", reason: "InvalidCredentials", status: 400 })
      expect(error.message).toContain("Unable to log in")
      expect(error.message).not.toContain("wrong-password-123")
      expect((yield* server.counters).obtain).toBe(1)
    }))

  it.scopedLive("a base URL without /api is NotFound, naming AMP_API_BASE_URL, in one request", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      const root = server.baseUrl.replace(/\/api$/, "")
      const service = yield* api(options(server, { baseUrl: `${root}/` }))
      const error = yield* Effect.flip(service.obtain)
      expect(error).toMatchObject({ _tag: "AuthError", reason: "NotFound", status: 404 })
      expect(error.message).toContain(`no obtain_token endpoint at ${root}/user/obtain_token (HTTP 404)`)
      expect(error.message).toContain("check AMP_API_BASE_URL")
      expect(error.message).toContain("ends in /api")
      expect(yield* server.counters).toMatchObject({ obtain: 0, total: 1 }) // its API lives under /api only
    }))

  it.scopedLive("garbage from the server is MalformedResponse and is not retried", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      yield* server.script("obtain", MockFault.malformed("{\"token\":"))
      const service = yield* api(options(server))
      const error = yield* Effect.flip(service.obtain)
      expect(error).toMatchObject({ _tag: "AuthError", reason: "MalformedResponse", status: 200 })
      expect((yield* server.counters).obtain).toBe(1)
    }))

  it.scopedLive("no password or issued token reaches a log line or an error message", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ cause, message }) => lines.push(`${String(message)} ${String(cause)}`))
      )
      const server = yield* MockAmpServer.make({ tokenLifetime: "4 minutes" })
      const errors: Array<string> = []
      const lifecycle = Effect.gen(function*() {
        const service = yield* TokenService.TokenService
        yield* service.getToken // login
        yield* service.getToken // inside the margin: refresh
        yield* server.script("refresh", MockFault.status(401, { body: "{\"detail\":\"mock_pass\"}" }))
        yield* service.getToken // refresh refused: login
        yield* server.script("obtain", MockFault.status(503, { body: "mock_pass" }), MockFault.status(400))
        errors.push((yield* Effect.flip(service.obtainToken)).message)
        yield* service.clearToken
      })
      const layer = TokenService.layer().pipe(
        Layer.provide(AuthApi.layer(options(server))),
        Layer.provide(Layer.merge(NodeHttpClient.layerUndici, TokenStore.layerMemory))
      )
      yield* lifecycle.pipe(Effect.provide(layer), Effect.provide(capture), Logger.withMinimumLogLevel(LogLevel.All))
      const issued = yield* server.issuedTokens
      expect(issued.length).toBeGreaterThanOrEqual(3)
      expect(lines.length).toBeGreaterThan(0)
      for (const text of [...lines, ...errors]) {
        expect(text).not.toContain("mock_pass")
        for (const token of issued) expect(text).not.toContain(token)
      }
    }))
})
