/**
 * The AMP client against a real HTTP server on 127.0.0.1 (the embedded mock) over Node's HTTP
 * client: what the core's scripted tests cannot show, with real sockets and real time.
 */
import { AuthApi, TokenService, TokenStore } from "@amp-effect/core"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Logger, LogLevel, Redacted } from "effect"
import { MockAmpServer, MockFault } from "../src/MockAmpServer.js"

const options = (
  server: MockAmpServer.Service,
  overrides?: Partial<AuthApi.AuthApiOptions>
): AuthApi.AuthApiOptions => ({
  baseUrl: server.baseUrl,
  username: "mock_user",
  password: Redacted.make("mock_pass"),
  retry: { maxAttempts: 3, baseDelay: Duration.millis(20), maxDelay: Duration.millis(200) },
  requestTimeout: Duration.seconds(1),
  ...overrides
})

/** Builds the API into the test's scope, so the HTTP client lives as long as the test. */
const api = (opts: AuthApi.AuthApiOptions) =>
  Effect.map(
    Layer.build(AuthApi.layer(opts).pipe(Layer.provide(NodeHttpClient.layerUndici))),
    (context) => context.unsafeMap.get(AuthApi.AuthApi.key) as AuthApi.AuthApi["Type"]
  )

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

  it.scopedLive("cuts a hung server at API_REQUEST_TIMEOUT_SECONDS, once per attempt", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      yield* server.script("obtain", MockFault.hang, MockFault.hang)
      const service = yield* api(options(server, {
        retry: { maxAttempts: 2, baseDelay: Duration.millis(10), maxDelay: Duration.millis(10) }
      }))
      const started = Date.now()
      const error = yield* Effect.flip(service.obtain)
      const elapsed = Date.now() - started
      expect(error._tag).toBe("RequestTimeout")
      expect((yield* server.counters).obtain).toBe(2)
      expect(elapsed).toBeGreaterThanOrEqual(2000)
      expect(elapsed).toBeLessThan(10_000)
    }))

  it.scopedLive("retries a 503, a reset connection and a 429 with Retry-After, then succeeds", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      yield* server.script("obtain", MockFault.status(503), MockFault.reset, MockFault.rateLimited("1"))
      const service = yield* api(options(server, {
        retry: { maxAttempts: 4, baseDelay: Duration.millis(10), maxDelay: Duration.seconds(2) }
      }))
      const started = Date.now()
      yield* service.obtain
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000) // the 429 asked for a second
      expect((yield* server.counters).obtain).toBe(4)
    }))

  it.scopedLive("a wrong password is one request and a typed error", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      const service = yield* api(options(server, { password: Redacted.make("wrong-password-123") }))
      const error = yield* Effect.flip(service.obtain)
      expect(error._tag).toBe("InvalidCredentials")
      expect(error.message).toContain("Unable to log in")
      expect(error.message).not.toContain("wrong-password-123")
      expect((yield* server.counters).obtain).toBe(1)
    }))

  it.scopedLive("garbage from the server is MalformedResponse and is not retried", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      yield* server.script("obtain", MockFault.malformed("{\"token\":"))
      const service = yield* api(options(server))
      const error = yield* Effect.flip(service.obtain)
      expect(error._tag).toBe("MalformedResponse")
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
