/**
 * The authenticated client over the in-memory fake AMP (`MockAmp.layerHttpClient`: an
 * `HttpClient` that plays the server, issues tokens, checks and revokes them and counts every
 * call). `@amp-effect/core` knows nothing of Node, so the real loopback server is exercised by
 * the examples' and CLI tests.
 */
import { Headers } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import {
  ConfigProvider,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberRef,
  Layer,
  Logger,
  LogLevel,
  Option,
  Redacted,
  TestClock
} from "effect"
import * as AmpClient from "../src/AmpClient.js"
import { ApiError } from "../src/AmpHttpError.js"
import * as AuthApi from "../src/AuthApi.js"
import * as MockAmp from "../src/MockAmp.js"
import { withSpans } from "../src/testing/SpanCapture.js"
import * as TokenService from "../src/TokenService.js"
import * as TokenStore from "../src/TokenStore.js"
import { adjustUntilDone, awaitSleepUntil, untilDone } from "./utils/TestTime.js"

const { MockFault } = MockAmp

const baseUrl = "https://amp.test/api"
const password = "s3cret-pass"

/** The one asset the mock serves: `uuid-1`, with a `null` domain on the wire. */
const asset: MockAmp.MockAsset = { ...MockAmp.mockAssets[0]!, asset_uuid: "uuid-1", domain: null }

const retry = { maxAttempts: 3, baseDelay: Duration.millis(1), maxDelay: Duration.millis(20) }

/** The client over the mock, with a real AuthApi and TokenService and a memory store. */
const setup = (
  options?: { readonly retryNonIdempotent?: boolean; readonly requestTimeout?: Duration.DurationInput }
) => {
  const requestTimeout = options?.requestTimeout ?? Duration.seconds(5)
  const tokens = TokenService.layer().pipe(
    Layer.provide(
      AuthApi.layer({ baseUrl, username: "user", password: Redacted.make(password), retry, requestTimeout })
    ),
    Layer.provide(TokenStore.layerMemory)
  )
  return AmpClient.layer({
    baseUrl: `${baseUrl}/`,
    retry,
    requestTimeout,
    ...(options?.retryNonIdempotent === undefined ? {} : { retryNonIdempotent: options.retryNonIdempotent })
  }).pipe(
    Layer.provideMerge(tokens),
    Layer.provideMerge(MockAmp.layerHttpClient({ username: "user", password, assets: [asset] }))
  )
}

const client = AmpClient.AmpClient

/** The `Authorization` headers of the requests the mock received for `endpoint`, in order. */
const authorizations = (amp: MockAmp.MockAmp.Service, endpoint: MockAmp.MockEndpoint) =>
  Effect.map(
    amp.requests,
    (requests) => requests.filter((request) => request.endpoint === endpoint).map((request) => request.authorization)
  )

/** The tokens the mock issued, oldest first, with a check that there are exactly `n`. */
const issued = (amp: MockAmp.MockAmp.Service, n: number) =>
  Effect.map(amp.issuedTokens, (tokens) => {
    expect(tokens).toHaveLength(n)
    return tokens.map((token) => `token ${token}`)
  })

describe("AmpClient", () => {
  it.effect("prepends the base URL and sends `Authorization: token <t>`; /info goes without a token", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      const assets = yield* amp.listAssets
      expect(assets).toHaveLength(1)
      const response = yield* amp.httpClient.get("changelog")
      expect(response.status).toBe(200)
      expect(yield* amp.info).toEqual(new AmpClient.Info({ version: "mock-1.0" }))
      const [first] = yield* issued(mock, 1)
      const calls = (yield* mock.requests).filter((call) => !call.url.includes("/user/"))
      expect(calls).toEqual([
        { endpoint: "assets", method: "GET", url: `${baseUrl}/assets/`, authorization: first },
        { endpoint: "changelog", method: "GET", url: `${baseUrl}/changelog`, authorization: first },
        { endpoint: "info", method: "GET", url: `${baseUrl}/info`, authorization: undefined }
      ])
      expect((yield* mock.counters).obtain).toBe(1)
    }).pipe(Effect.provide(setup())))

  it.effect("decodes assets with Schema and reports 404 and malformed bodies as typed errors", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      const got = yield* amp.getAsset("uuid-1")
      expect(got).toEqual(
        new AmpClient.Asset({
          assetUuid: "uuid-1",
          assetId: asset.asset_id,
          name: "Mock Security One",
          ticker: "MSO",
          precision: 0,
          isRegistered: true,
          isAuthorized: true,
          isLocked: false
        })
      )
      expect(got.domain).toBeUndefined() // null on the wire
      const missing = yield* Effect.flip(amp.getAsset("nope"))
      expect(missing).toMatchObject({
        _tag: "ApiError",
        reason: "StatusCode",
        method: "GET",
        path: "/api/assets/nope",
        status: 404
      })
      expect(missing.message).toBe("AMP GET /api/assets/nope answered HTTP 404: Not found.") // the JSON's detail
      yield* mock.script("assets", MockFault.malformed("{\"name\":1}"))
      const bad = yield* Effect.flip(amp.getAsset("bad"))
      expect(bad).toMatchObject({ _tag: "ApiError", reason: "MalformedResponse", status: 200 })
      expect(bad.message).toMatch(/^AMP GET \/api\/assets\/bad answered HTTP 200 with an unexpected body: /)
    }).pipe(Effect.provide(setup())))

  it.effect("a typed endpoint names a 400's detail, and what failed to decode by its path", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* mock.script("assets", MockFault.status(400, { body: "{\"detail\":\"bad request\"}" }))
      expect(yield* Effect.flip(amp.listAssets)).toMatchObject({
        reason: "StatusCode",
        status: 400,
        detail: "bad request"
      })
      yield* mock.script("assets", MockFault.malformed("[{\"name\":1}]"))
      expect(yield* Effect.flip(amp.listAssets)).toMatchObject({
        reason: "MalformedResponse",
        detail: "0.asset_uuid: is missing"
      })
    }).pipe(Effect.provide(setup())))

  it.effect("each typed endpoint is a span named after it", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const { spans } = yield* withSpans(
        Effect.all([amp.info, amp.changelog, amp.listAssets, amp.getAsset("uuid-1")])
      )
      const names = new Set(spans.map((span) => span.name))
      for (const name of ["AmpClient.info", "AmpClient.changelog", "AmpClient.listAssets", "AmpClient.getAsset"]) {
        expect(names.has(name), name).toBe(true)
      }
    }).pipe(Effect.provide(setup())))

  it.effect("a 401 with a revoked token renews once (refresh refused → login) and the request succeeds", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* amp.listAssets
      yield* mock.revokeAll
      const assets = yield* amp.listAssets
      expect(assets).toHaveLength(1)
      // first login, then for the 401: one refresh (refused: the token is revoked) and one login
      expect(yield* mock.counters).toMatchObject({ obtain: 2, refresh: 1, assets: 3 })
      const [first, second] = yield* issued(mock, 2)
      expect(yield* authorizations(mock, "assets")).toEqual([first, first, second])
    }).pipe(Effect.provide(setup())))

  it.effect("a 403 is handled like a 401", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* amp.listAssets
      yield* mock.script("assets", MockFault.status(403))
      yield* amp.listAssets
      // the first token is still valid here, so the renewal is a refresh
      expect(yield* mock.counters).toMatchObject({ obtain: 1, refresh: 1, assets: 3 })
    }).pipe(Effect.provide(setup())))

  it.effect("50 concurrent requests rejected with the same stale token cause one renewal, not 50", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* amp.listAssets
      yield* mock.revokeAll
      const results = yield* Effect.all(Array.from({ length: 50 }, () => amp.listAssets), { concurrency: "unbounded" })
      expect(results).toHaveLength(50)
      const counters = yield* mock.counters
      expect(counters.refresh).toBe(1)
      expect(counters.obtain).toBe(2) // the first login + the one renewal
      expect(counters.assets).toBe(1 + 50 + 50)
    }).pipe(Effect.provide(setup())))

  it.effect("when another fiber already replaced the rejected token, the new one is used without a call", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      const tokens = yield* TokenService.TokenService
      yield* amp.listAssets
      const [firstToken] = yield* mock.issuedTokens
      // The request leaves with the first token and is held for a second; meanwhile the token
      // is renewed and the first one revoked; then the held request is answered 401.
      yield* mock.script("assets", MockFault.delay("1 second"))
      const fiber = yield* Effect.fork(amp.listAssets)
      yield* awaitSleepUntil((yield* TestClock.currentTimeMillis) + 1000)
      yield* tokens.forceRefresh
      yield* mock.revoke(firstToken!)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(yield* mock.counters).toMatchObject({ obtain: 1, refresh: 1, unauthorized: 1 })
      const [first, second] = yield* issued(mock, 2)
      expect(yield* authorizations(mock, "assets")).toEqual([first, first, second])
    }).pipe(Effect.provide(setup())))

  it.effect("a second rejection, after the renewal, is a typed Unauthorized", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* mock.script("changelog", MockFault.status(401), MockFault.status(401))
      const error = yield* Effect.flip(amp.changelog)
      expect(error).toBeInstanceOf(ApiError)
      expect(error).toMatchObject({ reason: "Unauthorized", method: "GET", path: "/api/changelog", status: 401 })
      expect(error.message).toBe("AMP rejected GET /api/changelog (HTTP 401) even with a renewed token")
      expect(yield* mock.counters).toMatchObject({ changelog: 2, obtain: 1, refresh: 1 })
    }).pipe(Effect.provide(setup())))

  it.effect("one renewal per request, across retries: rejected, renewed, 503, retried, rejected again → Unauthorized", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* amp.listAssets
      yield* mock.script("assets", MockFault.status(401), MockFault.status(503), MockFault.status(401))
      const error = yield* untilDone(Effect.flip(amp.listAssets)) // through the retry's backoff
      expect(error).toMatchObject({ _tag: "ApiError", reason: "Unauthorized", status: 401 })
      // first rejected → one refresh (second) → 503 → retried with second → rejected: no second renewal
      expect(yield* mock.counters).toMatchObject({ obtain: 1, refresh: 1, assets: 1 + 3 })
      const [first, second] = yield* issued(mock, 2)
      expect(yield* authorizations(mock, "assets")).toEqual([first, first, second, second])
    }).pipe(Effect.provide(setup())))

  it.effect("a renewal that fails (wrong password) fails the request with the renewal's typed error", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* amp.listAssets
      yield* mock.revokeAll
      yield* mock.script("obtain", MockFault.status(400, { body: "{\"detail\":\"bad\"}" }))
      const error = yield* Effect.flip(amp.listAssets)
      expect(error).toMatchObject({ _tag: "AuthError", reason: "InvalidCredentials" })
      expect((yield* mock.counters).assets).toBe(2)
    }).pipe(Effect.provide(setup())))

  it.effect("a renewal that fails transiently is retried by AuthApi only, not again by the request's retries", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* amp.listAssets
      yield* mock.revokeAll
      yield* mock.script("refresh", MockFault.status(400))
      yield* mock.script("obtain", ...Array.from({ length: 9 }, () => MockFault.status(503)))
      const error = yield* untilDone(Effect.flip(amp.listAssets))
      expect(error).toMatchObject({ _tag: "AuthError", reason: "ServerError", status: 503 })
      expect(yield* mock.counters).toMatchObject({ obtain: 1 + 3, refresh: 1, assets: 2 })
    }).pipe(Effect.provide(setup())))

  it.effect("a redirect is a typed Redirected error: not followed, not retried, no renewal", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* amp.listAssets
      yield* mock.script(
        "assets",
        MockFault.status(307, { headers: { location: "https://other.example/api/assets/" } })
      )
      const error = yield* Effect.flip(amp.listAssets)
      expect(error).toMatchObject({
        _tag: "ApiError",
        reason: "Redirected",
        method: "GET",
        path: "/api/assets/",
        status: 307,
        detail: "https://other.example"
      })
      expect(yield* mock.counters).toMatchObject({ obtain: 1, refresh: 0, assets: 2, total: 3 })
      yield* mock.script("info", MockFault.status(301, { headers: { location: "/api/v2/info" } }))
      expect(yield* Effect.flip(amp.info)).toMatchObject({ reason: "Redirected", detail: "https://amp.test" })
    }).pipe(Effect.provide(setup())))

  it.effect("transient failures of a GET are retried under the policy: 503, reset, then success", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* mock.script("assets", MockFault.status(503), MockFault.reset)
      expect(yield* untilDone(amp.listAssets)).toHaveLength(1)
      expect((yield* mock.counters).assets).toBe(3)
    }).pipe(Effect.provide(setup())))

  it.effect("a GET that keeps failing fails with the last transient error after maxAttempts", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* mock.script(
        "assets",
        MockFault.status(502),
        MockFault.status(500),
        MockFault.status(503),
        MockFault.status(503)
      )
      const error = yield* untilDone(Effect.flip(amp.listAssets))
      expect(error).toMatchObject({ _tag: "ApiError", reason: "ServerError", status: 503 })
      expect(error.message).toBe("AMP GET /api/assets/ failed on the server side (HTTP 503)")
      expect((yield* mock.counters).assets).toBe(3)
    }).pipe(Effect.provide(setup())))

  // The mock's only POST is the login; after the first login, an empty POST to it is a 400.
  it.effect("a POST is not retried unless the caller opts in", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* (yield* TokenService.TokenService).getToken
      expect((yield* mock.counters).obtain).toBe(1)
      yield* mock.script("obtain", MockFault.status(503), MockFault.status(503))
      const error = yield* Effect.flip(amp.httpClient.post("/user/obtain_token"))
      expect(error).toMatchObject({
        _tag: "ApiError",
        reason: "ServerError",
        method: "POST",
        path: "/api/user/obtain_token"
      })
      expect((yield* mock.counters).obtain).toBe(1 + 1)
      const response = yield* untilDone(AmpClient.withRetryNonIdempotent(amp.httpClient.post("/user/obtain_token")))
      expect(response.status).toBe(400) // an empty body is no login: the second attempt got through
      expect((yield* mock.counters).obtain).toBe(1 + 1 + 2)
    }).pipe(Effect.provide(setup())))

  it.effect("retryNonIdempotent: true retries every method", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* (yield* TokenService.TokenService).getToken
      yield* mock.script("obtain", MockFault.reset)
      expect((yield* untilDone(amp.httpClient.post("/user/obtain_token"))).status).toBe(400)
      expect((yield* mock.counters).obtain).toBe(1 + 2)
    }).pipe(Effect.provide(setup({ retryNonIdempotent: true }))))

  it.effect("a 429 asking for longer than the maximum delay fails at once with the wait", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* mock.script("assets", MockFault.status(429, { headers: { "retry-after": "120" } }))
      const error = yield* Effect.flip(amp.listAssets)
      expect(error).toMatchObject({ _tag: "ApiError", reason: "RateLimited", retryAfter: Duration.seconds(120) })
      expect(error.message).toBe("AMP rate limited GET /api/assets/ (HTTP 429): the server asks to wait 2m")
      expect((yield* mock.counters).assets).toBe(1)
    }).pipe(Effect.provide(setup())))

  it.effect("each attempt is cut at the request timeout", () =>
    Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* amp.listAssets
      yield* mock.script("assets", MockFault.hang, MockFault.hang, MockFault.hang)
      const fiber = yield* Effect.fork(Effect.flip(amp.listAssets))
      while ((yield* mock.counters).assets < 2) yield* Effect.yieldNow()
      yield* TestClock.adjust("49 millis")
      expect((yield* mock.counters).assets).toBe(1 + 1) // the first attempt still waits
      const error = yield* adjustUntilDone(fiber)
      expect(error).toMatchObject({ _tag: "ApiError", reason: "RequestTimeout", timeout: Duration.millis(50) })
      expect(error.message).toBe("AMP GET /api/assets/ did not answer within 50ms")
      expect((yield* mock.counters).assets).toBe(1 + 3)
    }).pipe(Effect.provide(setup({ requestTimeout: Duration.millis(50) }))))

  /**
   * Runs `effect` with a tracer that records every span; answers the `Authorization` attributes
   * seen, after checking that no span carries a token the mock issued.
   */
  const authorizationInSpans = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.gen(function*() {
      const { spans } = yield* withSpans(effect)
      const everything = JSON.stringify(spans.map((span) => [span.name, [...span.attributes.values()].map(String)]))
      const tokens = yield* (yield* MockAmp.MockAmp).issuedTokens
      expect(tokens.length).toBeGreaterThan(0)
      for (const token of tokens) expect(everything).not.toContain(token)
      return spans.flatMap((span) => {
        const value = span.attributes.get("http.request.header.authorization")
        return value === undefined ? [] : [String(value)]
      })
    })

  it.effect("Authorization shows as <redacted> in spans where the application emptied the list, which stays its own", () =>
    Effect.gen(function*() {
      // An application that set its own (empty) list before building its layers.
      const inside = yield* Effect.gen(function*() {
        const amp = yield* client
        const mock = yield* MockAmp.MockAmp
        const seen = yield* authorizationInSpans(amp.listAssets)
        const names = yield* FiberRef.get(Headers.currentRedactedNames)
        const [first] = yield* issued(mock, 1)
        expect(yield* authorizations(mock, "assets")).toEqual([first])
        return [seen, names]
      }).pipe(Effect.provide(setup()), Effect.locally(Headers.currentRedactedNames, []))
      // The GET (the login sends no token); the pipeline redacts per request, the program's list is untouched.
      expect(inside).toEqual([["<redacted>"], []])
      expect(yield* FiberRef.get(Headers.currentRedactedNames)).toEqual(
        ["authorization", "cookie", "set-cookie", "x-api-key"]
      )
    }))

  it.effect("the Authorization header stays redacted when the list is emptied after the layer was built", () =>
    Effect.gen(function*() {
      const amp = yield* client
      yield* amp.listAssets // the login, outside the emptied region
      const seen = yield* authorizationInSpans(amp.listAssets).pipe(
        Effect.locally(Headers.currentRedactedNames, [])
      )
      expect(seen).toEqual(["<redacted>"])
    }).pipe(Effect.provide(setup())))

  it.effect("... and when a sibling layer built at the same time sets its own list", () => {
    const layer = setup()
    // Built concurrently: the sibling's list wins the join, whatever the order.
    const emptied = Layer.locallyScoped(Headers.currentRedactedNames, [])
    return Effect.gen(function*() {
      for (const both of [Layer.merge(emptied, layer), Layer.merge(layer, emptied)]) {
        const seen = yield* authorizationInSpans(Effect.flatMap(client, (amp) => amp.listAssets)).pipe(
          Effect.provide(both)
        )
        expect(seen.length).toBeGreaterThan(0)
        for (const value of seen) expect(value).toBe("<redacted>")
      }
    })
  })

  it.effect("errors and log lines never carry the token or the password", () => {
    const lines: Array<string> = []
    const capture = Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ message }) => lines.push(JSON.stringify(message)))
    )
    return Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* amp.listAssets
      const [firstToken] = yield* mock.issuedTokens
      yield* mock.script(
        "assets",
        MockFault.status(401, { body: JSON.stringify({ detail: `token ${firstToken} is bad` }) }),
        MockFault.status(401)
      )
      const error = yield* Effect.flip(amp.listAssets)
      expect(error).toMatchObject({ _tag: "ApiError", reason: "Unauthorized" })
      expect(lines.filter((line) => line.includes("AMP rejected the token (HTTP 401); renewing it"))).toHaveLength(1)
      const text = JSON.stringify(error) + error.message + lines.join("\n")
      const tokens = yield* mock.issuedTokens
      expect(tokens).toHaveLength(2)
      for (const token of tokens) expect(text).not.toContain(token)
      expect(text).not.toContain(password)
    }).pipe(Effect.provide(Layer.merge(setup(), capture)), Logger.withMinimumLogLevel(LogLevel.All))
  })

  it.effect("layerConfig reads the base URL, retry policy and timeout from the configuration", () => {
    const layer = AmpClient.layerConfig().pipe(
      Layer.provide(TokenService.layerMock("tok-x")),
      Layer.provideMerge(MockAmp.layerHttpClient())
    )
    return Effect.gen(function*() {
      const amp = yield* client
      const mock = yield* MockAmp.MockAmp
      yield* Effect.flip(amp.listAssets) // tok-x is unknown to the mock: 401, renewed to tok-x, 401
      expect((yield* mock.requests)[0]).toMatchObject({
        url: "http://127.0.0.9:1/api/assets/",
        authorization: "token tok-x"
      })
      expect((yield* mock.counters).assets).toBe(2)
    }).pipe(
      Effect.provide(layer),
      Effect.withConfigProvider(ConfigProvider.fromJson({ AMP_API_BASE_URL: "http://127.0.0.9:1/api/" }))
    )
  })

  it.effect("a URL that cannot be sent is InvalidRequest, named by the URL without its query", () =>
    Effect.gen(function*() {
      const amp = yield* AmpClient.make({ baseUrl: "http://127.0.0.1:99999/api" }).pipe(
        Effect.provide(TokenService.layerMock())
      )
      const error = yield* Effect.flip(amp.info)
      expect(error).toMatchObject({ reason: "InvalidRequest", method: "GET", path: "http://127.0.0.1:99999/api/info" })
      expect(error.message).toMatch(/^Could not send GET http:\/\/127\.0\.0\.1:99999\/api\/info: InvalidUrl/)
      for (const path of ["/info?password=x", "/info#password"]) {
        const withQuery = yield* Effect.flip(amp.httpClient.get(path))
        expect(withQuery).toMatchObject({ reason: "InvalidRequest", path: "http://127.0.0.1:99999/api/info" })
      }
    }).pipe(Effect.provide(MockAmp.layerHttpClient())))

  it.effect("layerConfig fails with AmpConfigError on a bad base URL", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Effect.provide(
          client,
          AmpClient.layerConfig().pipe(
            Layer.provide(TokenService.layerMock()),
            Layer.provide(MockAmp.layerHttpClient())
          )
        )
      )
      expect(Exit.isFailure(exit)).toBe(true)
      expect(String(Option.getOrThrow(Exit.causeOption(exit)))).toContain("AMP_API_BASE_URL")
    }).pipe(Effect.withConfigProvider(ConfigProvider.fromJson({ AMP_API_BASE_URL: "ftp://nope" }))))
})
