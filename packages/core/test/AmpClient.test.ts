/**
 * The authenticated client over an in-memory AMP (an `HttpClient` that plays the server: it
 * issues tokens, checks them, revokes them and counts every call). `@amp-effect/core` knows
 * nothing of Node, so the real loopback server is exercised by the examples' and CLI tests.
 */
import { Headers, HttpClient, HttpClientResponse } from "@effect/platform"
import type { HttpClientRequest } from "@effect/platform"
import { RequestError } from "@effect/platform/HttpClientError"
import { describe, expect, it } from "@effect/vitest"
import {
  ConfigProvider,
  Deferred,
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
  TestClock,
  Tracer
} from "effect"
import * as AmpClient from "../src/AmpClient.js"
import { ApiError } from "../src/AmpHttpError.js"
import * as AuthApi from "../src/AuthApi.js"
import * as TokenService from "../src/TokenService.js"
import * as TokenStore from "../src/TokenStore.js"

const baseUrl = "https://amp.test/api"
const password = "s3cret-pass"

type Endpoint = "obtain" | "refresh" | "assets" | "changelog" | "info" | "other"

/** What a scripted request does instead of the normal answer. */
type Fault =
  | { readonly status: number; readonly headers?: Record<string, string>; readonly body?: string }
  | { readonly transport: true }
  | { readonly hang: true }
  | { readonly waitFor: Deferred.Deferred<void> }

const assetJson = {
  asset_uuid: "uuid-1",
  asset_id: "aa".repeat(32),
  name: "One",
  ticker: "ONE",
  precision: 0,
  domain: null,
  is_registered: true,
  is_authorized: true,
  is_locked: false,
  issuer: 7
}

/** A small AMP: tokens `tok-1`, `tok-2`, ...; `revokeAll` makes the issued ones answer 401. */
const makeFakeAmp = () => {
  const counters: Record<Endpoint, number> = { obtain: 0, refresh: 0, assets: 0, changelog: 0, info: 0, other: 0 }
  const faults: Record<Endpoint, Array<Fault>> = {
    obtain: [],
    refresh: [],
    assets: [],
    changelog: [],
    info: [],
    other: []
  }
  const valid = new Set<string>()
  const seen: Array<{ readonly method: string; readonly url: string; readonly authorization: string | undefined }> = []
  let issued = 0
  const issue = () => {
    const token = `tok-${++issued}`
    valid.add(token)
    return json(200, { token })
  }
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(typeof body === "string" ? body : JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json", ...headers }
    })
  const endpointOf = (path: string): Endpoint => {
    if (path === "/api/user/obtain_token") return "obtain"
    if (path === "/api/user/refresh-token") return "refresh"
    if (path.startsWith("/api/assets/")) return "assets"
    if (path === "/api/changelog") return "changelog"
    if (path === "/api/info") return "info"
    return "other"
  }
  const authorized = (request: HttpClientRequest.HttpClientRequest) => {
    const header = request.headers["authorization"]
    return header !== undefined && header.startsWith("token ") && valid.has(header.slice(6))
  }
  const answer = (endpoint: Endpoint, request: HttpClientRequest.HttpClientRequest, url: URL): Response => {
    switch (endpoint) {
      case "obtain": {
        const body = request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""
        return JSON.parse(body).password === password
          ? issue()
          : json(400, { non_field_errors: ["Unable to log in with provided credentials."] })
      }
      case "refresh":
        return authorized(request) ? issue() : json(401, { detail: "Invalid token." })
      case "info":
        return json(200, { version: "fake-1" })
      case "changelog":
        return authorized(request) ? json(200, { "fake-1": { added: ["x"] } }) : json(401, { detail: "Invalid token." })
      case "assets": {
        if (!authorized(request)) return json(401, { detail: "Invalid token." })
        if (url.pathname === "/api/assets/") return json(200, [assetJson])
        if (url.pathname === "/api/assets/uuid-1") return json(200, assetJson)
        if (url.pathname === "/api/assets/bad") return json(200, { name: 1 })
        return json(404, { detail: "Not found." })
      }
      default:
        return json(404, { detail: "Not found." })
    }
  }
  const client = HttpClient.make((request, url) =>
    Effect.gen(function*() {
      const endpoint = endpointOf(url.pathname)
      counters[endpoint]++
      seen.push({ method: request.method, url: url.toString(), authorization: request.headers["authorization"] })
      const fault = faults[endpoint].shift()
      if (fault !== undefined) {
        if ("transport" in fault) {
          return yield* new RequestError({ request, reason: "Transport", cause: new Error("connection reset") })
        }
        if ("hang" in fault) return yield* Effect.never
        if ("waitFor" in fault) yield* Deferred.await(fault.waitFor)
        else return HttpClientResponse.fromWeb(request, json(fault.status, fault.body ?? "{}", fault.headers))
      }
      // Let concurrent requests interleave, as they would over a network.
      yield* Effect.yieldNow()
      return HttpClientResponse.fromWeb(request, answer(endpoint, request, url))
    })
  )
  return {
    counters,
    seen,
    script: (endpoint: Endpoint, ...scripted: Array<Fault>) => faults[endpoint].push(...scripted),
    revokeAll: () => valid.clear(),
    revoke: (token: string) => valid.delete(token),
    issuedCount: () => issued,
    layer: Layer.succeed(HttpClient.HttpClient, client)
  }
}

const retry = { maxAttempts: 3, baseDelay: Duration.millis(1), maxDelay: Duration.millis(20) }

/** The client over the fake, with a real AuthApi and TokenService and a memory store. */
const setup = (
  options?: { readonly retryNonIdempotent?: boolean; readonly requestTimeout?: Duration.DurationInput }
) => {
  const amp = makeFakeAmp()
  const requestTimeout = options?.requestTimeout ?? Duration.seconds(5)
  const tokens = TokenService.layer().pipe(
    Layer.provide(
      AuthApi.layer({ baseUrl, username: "user", password: Redacted.make(password), retry, requestTimeout })
    ),
    Layer.provide(TokenStore.layerMemory)
  )
  const layer = AmpClient.layer({
    baseUrl: `${baseUrl}/`,
    retry,
    requestTimeout,
    ...(options?.retryNonIdempotent === undefined ? {} : { retryNonIdempotent: options.retryNonIdempotent })
  }).pipe(Layer.provideMerge(tokens), Layer.provide(amp.layer))
  return { amp, layer }
}

const client = AmpClient.AmpClient

/** Runs `effect` in a fiber of its own while the `TestClock` moves a minute on: its backoffs and timeouts elapse. */
const withinAMinute = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust("1 minute")
    return yield* Fiber.join(fiber)
  })

describe("AmpClient", () => {
  it.effect("prepends the base URL and sends `Authorization: token <t>`; /info goes without a token", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      const assets = yield* amp_.listAssets
      expect(assets).toHaveLength(1)
      const response = yield* amp_.httpClient.get("changelog")
      expect(response.status).toBe(200)
      expect(yield* amp_.info).toEqual(new AmpClient.Info({ version: "fake-1" }))
      const calls = amp.seen.filter((call) => !call.url.includes("/user/"))
      expect(calls).toEqual([
        { method: "GET", url: `${baseUrl}/assets/`, authorization: "token tok-1" },
        { method: "GET", url: `${baseUrl}/changelog`, authorization: "token tok-1" },
        { method: "GET", url: `${baseUrl}/info`, authorization: undefined }
      ])
      expect(amp.counters.obtain).toBe(1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("decodes assets with Schema and reports 404 and malformed bodies as typed errors", () => {
    const { layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      const asset = yield* amp_.getAsset("uuid-1")
      expect(asset).toMatchObject({ assetUuid: "uuid-1", name: "One", ticker: "ONE", isLocked: false })
      expect(asset.domain).toBeUndefined() // null on the wire
      const missing = yield* Effect.flip(amp_.getAsset("nope"))
      expect(missing).toMatchObject({
        _tag: "ApiError",
        reason: "StatusCode",
        method: "GET",
        path: "/api/assets/nope",
        status: 404
      })
      expect(missing.message).toBe("AMP GET /api/assets/nope answered HTTP 404: {\"detail\":\"Not found.\"}")
      const bad = yield* Effect.flip(amp_.getAsset("bad"))
      expect(bad).toMatchObject({ _tag: "ApiError", reason: "MalformedResponse", status: 200 })
      expect(bad.message).toMatch(/^AMP GET \/api\/assets\/bad answered HTTP 200 with an unexpected body: /)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a 401 with a revoked token renews once (refresh refused → login) and the request succeeds", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      yield* amp_.listAssets
      amp.revokeAll()
      const assets = yield* amp_.listAssets
      expect(assets).toHaveLength(1)
      // first login, then for the 401: one refresh (refused: the token is revoked) and one login
      expect(amp.counters).toMatchObject({ obtain: 2, refresh: 1, assets: 3 })
      expect(amp.seen.filter((call) => call.url.endsWith("/assets/")).map((call) => call.authorization)).toEqual([
        "token tok-1",
        "token tok-1",
        "token tok-2"
      ])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a 403 is handled like a 401", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      yield* amp_.listAssets
      amp.script("assets", { status: 403 })
      yield* amp_.listAssets
      // tok-1 is still valid here, so the renewal is a refresh
      expect(amp.counters).toMatchObject({ obtain: 1, refresh: 1, assets: 3 })
    }).pipe(Effect.provide(layer))
  })

  it.effect("50 concurrent requests rejected with the same stale token cause one renewal, not 50", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      yield* amp_.listAssets
      amp.revokeAll()
      const results = yield* Effect.all(Array.from({ length: 50 }, () => amp_.listAssets), { concurrency: "unbounded" })
      expect(results).toHaveLength(50)
      expect(amp.counters.refresh).toBe(1)
      expect(amp.counters.obtain).toBe(2) // the first login + the one renewal
      expect(amp.counters.assets).toBe(1 + 50 + 50)
    }).pipe(Effect.provide(layer))
  })

  it.effect("when another fiber already replaced the rejected token, the new one is used without a call", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      const tokens = yield* TokenService.TokenService
      yield* amp_.listAssets
      const gate = yield* Deferred.make<void>()
      // The request leaves with tok-1 and is held; meanwhile the token is renewed to tok-2 and
      // tok-1 revoked; then the held request is answered 401.
      amp.script("assets", { waitFor: gate })
      const fiber = yield* Effect.fork(amp_.listAssets)
      yield* Effect.yieldNow()
      yield* tokens.forceRefresh
      amp.revoke("tok-1")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(fiber)
      expect(amp.counters).toMatchObject({ obtain: 1, refresh: 1 })
      expect(amp.seen.filter((call) => call.url.endsWith("/assets/")).map((call) => call.authorization)).toEqual([
        "token tok-1",
        "token tok-1",
        "token tok-2"
      ])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a second rejection, after the renewal, is a typed Unauthorized", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      amp.script("changelog", { status: 401 }, { status: 401 })
      const error = yield* Effect.flip(amp_.changelog)
      expect(error).toBeInstanceOf(ApiError)
      expect(error).toMatchObject({ reason: "Unauthorized", method: "GET", path: "/api/changelog", status: 401 })
      expect(error.message).toBe("AMP rejected GET /api/changelog (HTTP 401) even with a renewed token")
      expect(amp.counters).toMatchObject({ changelog: 2, obtain: 1, refresh: 1 })
    }).pipe(Effect.provide(layer))
  })

  it.effect("one renewal per request, across retries: rejected, renewed, 503, retried, rejected again → Unauthorized", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      yield* amp_.listAssets
      amp.script("assets", { status: 401 }, { status: 503 }, { status: 401 })
      const fiber = yield* Effect.fork(Effect.flip(amp_.listAssets))
      yield* TestClock.adjust("1 second") // the retry's backoff
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "ApiError", reason: "Unauthorized", status: 401 })
      // tok-1 rejected → one refresh (tok-2) → 503 → retried with tok-2 → rejected: no second renewal
      expect(amp.counters).toMatchObject({ obtain: 1, refresh: 1, assets: 1 + 3 })
      expect(amp.seen.filter((call) => call.url.endsWith("/assets/")).map((call) => call.authorization)).toEqual([
        "token tok-1",
        "token tok-1",
        "token tok-2",
        "token tok-2"
      ])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a renewal that fails (wrong password) fails the request with the renewal's typed error", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      yield* amp_.listAssets
      amp.revokeAll()
      amp.script("obtain", { status: 400, body: "{\"detail\":\"bad\"}" })
      const error = yield* Effect.flip(amp_.listAssets)
      expect(error).toMatchObject({ _tag: "AuthError", reason: "InvalidCredentials" })
      expect(amp.counters.assets).toBe(2)
    }).pipe(Effect.provide(layer))
  })

  it.effect("transient failures of a GET are retried under the policy: 503, reset, then success", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      amp.script("assets", { status: 503 }, { transport: true })
      expect(yield* withinAMinute(amp_.listAssets)).toHaveLength(1)
      expect(amp.counters.assets).toBe(3)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a GET that keeps failing fails with the last transient error after maxAttempts", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      amp.script("assets", { status: 502 }, { status: 500 }, { status: 503 }, { status: 503 })
      const error = yield* withinAMinute(Effect.flip(amp_.listAssets))
      expect(error).toMatchObject({ _tag: "ApiError", reason: "ServerError", status: 503 })
      expect(error.message).toBe("AMP GET /api/assets/ failed on the server side (HTTP 503)")
      expect(amp.counters.assets).toBe(3)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a POST is not retried unless the caller opts in", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      amp.script("other", { status: 503 }, { status: 503 })
      const error = yield* Effect.flip(amp_.httpClient.post("/things"))
      expect(error).toMatchObject({ _tag: "ApiError", reason: "ServerError", method: "POST", path: "/api/things" })
      expect(amp.counters.other).toBe(1)
      const response = yield* withinAMinute(AmpClient.withRetryNonIdempotent(amp_.httpClient.post("/things")))
      expect(response.status).toBe(404) // the fake knows no /things: the second attempt got through
      expect(amp.counters.other).toBe(1 + 2)
    }).pipe(Effect.provide(layer))
  })

  it.effect("retryNonIdempotent: true retries every method", () => {
    const { amp, layer } = setup({ retryNonIdempotent: true })
    return Effect.gen(function*() {
      const amp_ = yield* client
      amp.script("other", { transport: true })
      expect((yield* withinAMinute(amp_.httpClient.post("/things"))).status).toBe(404)
      expect(amp.counters.other).toBe(2)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a 429 asking for longer than the maximum delay fails at once with the wait", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      amp.script("assets", { status: 429, headers: { "retry-after": "120" } })
      const error = yield* Effect.flip(amp_.listAssets)
      expect(error).toMatchObject({ _tag: "ApiError", reason: "RateLimited", retryAfter: Duration.seconds(120) })
      expect(error.message).toBe("AMP rate limited GET /api/assets/ (HTTP 429): the server asks to wait 2m")
      expect(amp.counters.assets).toBe(1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("each attempt is cut at the request timeout", () => {
    const { amp, layer } = setup({ requestTimeout: Duration.millis(50) })
    return Effect.gen(function*() {
      const amp_ = yield* client
      yield* amp_.listAssets
      amp.script("assets", { hang: true }, { hang: true }, { hang: true })
      const fiber = yield* Effect.fork(Effect.flip(amp_.listAssets))
      yield* TestClock.adjust("49 millis")
      expect(amp.counters.assets).toBe(1 + 1) // the first attempt still waits
      const error = yield* withinAMinute(Fiber.join(fiber))
      expect(error).toMatchObject({ _tag: "ApiError", reason: "RequestTimeout", timeout: Duration.millis(50) })
      expect(error.message).toBe("AMP GET /api/assets/ did not answer within 50ms")
      expect(amp.counters.assets).toBe(1 + 3)
    }).pipe(Effect.provide(layer))
  })

  /** Runs `effect` with a tracer that records every span; answers the `Authorization` attributes seen. */
  const authorizationInSpans = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.gen(function*() {
      const spans: Array<Tracer.Span> = []
      const base = yield* Effect.tracer
      const recording = Tracer.make({
        span: (...args) => {
          const span = base.span(...args)
          spans.push(span)
          return span
        },
        context: (f, fiber) => base.context(f, fiber)
      })
      yield* Effect.withTracer(effect, recording)
      const everything = JSON.stringify(spans.map((span) => [span.name, [...span.attributes.values()].map(String)]))
      expect(everything).not.toMatch(/tok-\d/)
      return spans.flatMap((span) => {
        const value = span.attributes.get("http.request.header.authorization")
        return value === undefined ? [] : [String(value)]
      })
    })

  it.effect("the layer adds Authorization to the redacted names once, when built, for the program it is provided to", () => {
    const { amp, layer } = setup()
    return Effect.gen(function*() {
      // An application that set its own (empty) list before building its layers.
      const inside = yield* Effect.flatMap(client, (amp_) =>
        Effect.zip(
          authorizationInSpans(amp_.listAssets),
          FiberRef.get(Headers.currentRedactedNames)
        )).pipe(Effect.provide(layer), Effect.locally(Headers.currentRedactedNames, []))
      expect(inside).toEqual([["<redacted>"], ["authorization"]]) // the GET; the login sends no token
      expect(amp.seen.some((call) => call.authorization === "token tok-1")).toBe(true)
      // Scoped to the layer: once the program is done, the application's own setting is back.
      expect(yield* FiberRef.get(Headers.currentRedactedNames)).toEqual(
        ["authorization", "cookie", "set-cookie", "x-api-key"]
      )
    })
  })

  it.effect("the Authorization header stays redacted when the list is emptied after the layer was built", () => {
    const { layer } = setup()
    return Effect.gen(function*() {
      const amp_ = yield* client
      yield* amp_.listAssets // the login, outside the emptied region
      const seen = yield* authorizationInSpans(amp_.listAssets).pipe(
        Effect.locally(Headers.currentRedactedNames, [])
      )
      expect(seen).toEqual(["<redacted>"])
    }).pipe(Effect.provide(layer))
  })

  it.effect("... and when a sibling layer built at the same time sets its own list", () => {
    const { layer } = setup()
    // Built concurrently: the sibling's list wins the join, whatever the order.
    const emptied = Layer.locallyScoped(Headers.currentRedactedNames, [])
    return Effect.gen(function*() {
      for (const both of [Layer.merge(emptied, layer), Layer.merge(layer, emptied)]) {
        const seen = yield* authorizationInSpans(Effect.flatMap(client, (amp_) => amp_.listAssets)).pipe(
          Effect.provide(both)
        )
        expect(seen.length).toBeGreaterThan(0)
        for (const value of seen) expect(value).toBe("<redacted>")
      }
    })
  })

  it.effect("errors and log lines never carry the token or the password", () => {
    const { amp, layer } = setup()
    const lines: Array<string> = []
    const capture = Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ message }) => lines.push(JSON.stringify(message)))
    )
    return Effect.gen(function*() {
      const amp_ = yield* client
      yield* amp_.listAssets
      amp.script("assets", { status: 401, body: "{\"detail\":\"token tok-1 is bad\"}" }, { status: 401 })
      const error = yield* Effect.flip(amp_.listAssets)
      const text = JSON.stringify(error) + error.message + lines.join("\n")
      expect(text).not.toContain("tok-1")
      expect(text).not.toContain("tok-2")
      expect(text).not.toContain(password)
    }).pipe(Effect.provide(Layer.merge(layer, capture)), Logger.withMinimumLogLevel(LogLevel.All))
  })

  it.effect("layerConfig reads the base URL, retry policy and timeout from the configuration", () => {
    const amp = makeFakeAmp()
    const layer = AmpClient.layerConfig().pipe(
      Layer.provide(TokenService.layerMock("tok-x")),
      Layer.provide(amp.layer)
    )
    return Effect.gen(function*() {
      const amp_ = yield* client
      yield* Effect.flip(amp_.listAssets) // tok-x is unknown to the fake: 401, renewed to tok-x, 401
      expect(amp.seen[0]).toMatchObject({ url: "http://127.0.0.9:1/api/assets/", authorization: "token tok-x" })
      expect(amp.counters.assets).toBe(2)
    }).pipe(
      Effect.provide(layer),
      Effect.withConfigProvider(ConfigProvider.fromJson({ AMP_API_BASE_URL: "http://127.0.0.9:1/api/" }))
    )
  })

  it.effect("layerConfig fails with AmpConfigError on a bad base URL", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Effect.provide(
          client,
          AmpClient.layerConfig().pipe(
            Layer.provide(TokenService.layerMock()),
            Layer.provide(makeFakeAmp().layer)
          )
        )
      )
      expect(Exit.isFailure(exit)).toBe(true)
      expect(String(Option.getOrThrow(Exit.causeOption(exit)))).toContain("AMP_API_BASE_URL")
    }).pipe(Effect.withConfigProvider(ConfigProvider.fromJson({ AMP_API_BASE_URL: "ftp://nope" }))))
})
