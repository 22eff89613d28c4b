/**
 * The authentication endpoints over the in-memory fake AMP (`MockAmp`): what `obtain` and
 * `refresh` send, and the `AuthError` reason every kind of answer means, under `TestClock`.
 */
import {
  FetchHttpClient,
  HttpClient,
  HttpClientError,
  type HttpClientRequest,
  HttpClientResponse
} from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber, Layer, Metric, Redacted, TestClock } from "effect"
import * as AuthApi from "../src/AuthApi.js"
import * as MockAmp from "../src/MockAmp.js"
import * as LogCapture from "../src/testing/LogCapture.js"
import { withSpans } from "../src/testing/SpanCapture.js"
import * as TokenMetrics from "../src/TokenMetrics.js"
import { adjustUntilDone, awaitSleepUntil, untilDone } from "./utils/TestTime.js"

const { MockFault } = MockAmp

const PASSWORD = "pa55-w0rd-xyz"

const options: AuthApi.AuthApiOptions = {
  baseUrl: "https://amp.example/api/",
  username: "alice",
  password: Redacted.make(PASSWORD),
  retry: { maxAttempts: 3, baseDelay: Duration.millis(100), maxDelay: Duration.millis(1000) },
  requestTimeout: Duration.seconds(10)
}

/** A request as `AuthApi` handed it to the `HttpClient`: headers and body included. */
interface Sent {
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

const bodyText = (request: HttpClientRequest.HttpClientRequest) =>
  request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""

/**
 * `AuthApi.make` over a mock that knows alice's password, with `faults` scripted for `endpoint`.
 * `sent` records what the service handed to the client (the mock logs method, URL and
 * `Authorization`; the body and `Content-Type` are checked here).
 */
const api = (endpoint: MockAmp.MockEndpoint = "obtain", ...faults: ReadonlyArray<MockAmp.MockFault>) =>
  Effect.gen(function*() {
    const mock = yield* MockAmp.make({ username: "alice", password: PASSWORD })
    yield* mock.script(endpoint, ...faults)
    const sent: Array<Sent> = []
    const http = HttpClient.tapRequest(
      mock.httpClient,
      (request) => Effect.sync(() => sent.push({ headers: request.headers, body: bodyText(request) }))
    )
    const service = yield* AuthApi.make(options).pipe(Effect.provideService(HttpClient.HttpClient, http))
    return { mock, sent, service }
  })

/** How many requests the mock received. */
const received = (mock: MockAmp.MockAmp.Service) => Effect.map(mock.counters, (counters) => counters.total)

describe("AuthApi", () => {
  it.scoped("obtain posts the credentials as JSON to {base}/user/obtain_token", () =>
    Effect.gen(function*() {
      const { mock, sent, service } = yield* api()
      const token = yield* service.obtain
      expect([Redacted.value(token)]).toEqual(yield* mock.issuedTokens)
      const requests = yield* mock.requests
      expect(requests).toHaveLength(1)
      expect(requests[0]!.method).toBe("POST")
      expect(requests[0]!.url).toBe("https://amp.example/api/user/obtain_token")
      expect(sent[0]!.headers["content-type"]).toBe("application/json")
      expect(JSON.parse(sent[0]!.body)).toEqual({ username: "alice", password: PASSWORD })
    }))

  it.scoped("a base URL with trailing slashes is the same API", () =>
    Effect.gen(function*() {
      const mock = yield* MockAmp.make({ username: "alice", password: PASSWORD })
      const service = yield* AuthApi.make({ ...options, baseUrl: "https://amp.example/api//" }).pipe(
        Effect.provideService(HttpClient.HttpClient, mock.httpClient)
      )
      yield* service.obtain
      expect((yield* mock.requests).map((request) => request.url)).toEqual([
        "https://amp.example/api/user/obtain_token"
      ])
    }))

  it.scoped("refresh GETs {base}/user/refresh-token with Authorization: token <current>", () =>
    Effect.gen(function*() {
      const { mock, service } = yield* api()
      const current = Redacted.value(yield* service.obtain)
      const renewed = yield* service.refresh(Redacted.make(current))
      expect(yield* mock.issuedTokens).toEqual([current, Redacted.value(renewed)])
      const requests = yield* mock.requests
      expect(requests).toHaveLength(2)
      expect(requests[1]!.method).toBe("GET")
      expect(requests[1]!.url).toBe("https://amp.example/api/user/refresh-token")
      expect(requests[1]!.authorization).toBe(`token ${current}`)
    }))

  it.scoped("a 400 or 401 from obtain is InvalidCredentials, never retried, password scrubbed", () =>
    Effect.gen(function*() {
      for (const status of [400, 401]) {
        const { mock, service } = yield* api(
          "obtain",
          MockFault.status(status, { body: `{"non_field_errors":["Unable to log in with ${PASSWORD}"]}` })
        )
        const error = yield* Effect.flip(service.obtain)
        expect(error).toMatchObject({
          _tag: "AuthError",
          endpoint: "obtain_token",
          reason: "InvalidCredentials",
          status
        })
        expect(yield* received(mock)).toBe(1)
        expect(error.message).toMatch(new RegExp(`^AMP rejected the username or password \\(HTTP ${status}\\): `))
        expect(error.message).toContain("Unable to log in")
        expect(error.message).not.toContain(PASSWORD)
        expect(JSON.stringify(error)).not.toContain(PASSWORD)
      }
    }))

  it.scoped("a wrong password is InvalidCredentials with AMP's own words", () =>
    Effect.gen(function*() {
      const mock = yield* MockAmp.make({ username: "alice", password: "another one" })
      const service = yield* AuthApi.make(options).pipe(Effect.provideService(HttpClient.HttpClient, mock.httpClient))
      const error = yield* Effect.flip(service.obtain)
      expect(error).toMatchObject({ reason: "InvalidCredentials", status: 400 })
      expect(error.message).toBe(
        "AMP rejected the username or password (HTTP 400): " +
          "{\"non_field_errors\":[\"Unable to log in with provided credentials.\"]}"
      )
      expect(yield* received(mock)).toBe(1)
    }))

  it.scoped("a 401 from refresh is RefreshRejected, not retried", () =>
    Effect.gen(function*() {
      const { mock, service } = yield* api()
      // A token the mock never issued: AMP's own 401
      const error = yield* Effect.flip(service.refresh(Redacted.make("old-token")))
      expect(error).toMatchObject({
        _tag: "AuthError",
        endpoint: "refresh-token",
        reason: "RefreshRejected",
        status: 401
      })
      expect(error.message).toBe("AMP refused to refresh the token (HTTP 401): Invalid token.") // the JSON's detail
      expect(yield* received(mock)).toBe(1)
    }))

  it.scoped("a 404 from obtain is NotFound, naming the URL and AMP_API_BASE_URL, never retried", () =>
    Effect.gen(function*() {
      const { mock, service } = yield* api(
        "obtain",
        MockFault.status(404, { body: `<h1>Not Found</h1> ${PASSWORD}` })
      )
      const error = yield* Effect.flip(service.obtain)
      expect(error).toMatchObject({ _tag: "AuthError", endpoint: "obtain_token", reason: "NotFound", status: 404 })
      expect(yield* received(mock)).toBe(1)
      expect(error.message).toBe(
        "AMP has no obtain_token endpoint at https://amp.example/api/user/obtain_token (HTTP 404): check " +
          "AMP_API_BASE_URL, the API's base URL, which ends in /api (such as https://amp-test.blockstream.com/api)"
      )
      expect(JSON.stringify(error)).not.toContain(PASSWORD)
    }))

  it.scoped("a refused refresh's text is scrubbed of the token it carried and of the password", () =>
    Effect.gen(function*() {
      const body = JSON.stringify({ detail: `bad token tok-secret-1 for ${PASSWORD}` })
      const { service } = yield* api("refresh", MockFault.status(401, { body }))
      const error = yield* Effect.flip(service.refresh(Redacted.make("tok-secret-1")))
      expect(error.detail).toBe("bad token <redacted> for <redacted>")
    }))

  it.scoped("a 404 from refresh is a refused refresh (the token service then logs in)", () =>
    Effect.gen(function*() {
      const { service } = yield* api("refresh", MockFault.status(404))
      const error = yield* Effect.flip(service.refresh(Redacted.make("old-token")))
      expect(error).toMatchObject({ endpoint: "refresh-token", reason: "RefreshRejected", status: 404 })
    }))

  it.scoped("a connection that keeps failing is a TransportError naming what the transport said", () =>
    Effect.gen(function*() {
      const { mock, service } = yield* api("obtain", MockFault.reset, MockFault.reset, MockFault.reset)
      const error = yield* adjustUntilDone(yield* Effect.fork(Effect.flip(service.obtain)))
      const said = "The mock AMP dropped the connection (a scripted Reset fault)"
      expect(error).toMatchObject({ reason: "TransportError", detail: said })
      expect(error.message).toBe(`AMP obtain_token is unreachable: ${said}`)
      expect(yield* received(mock)).toBe(3)
    }))

  it.scoped("retries 5xx and transport errors, then succeeds", () =>
    Effect.gen(function*() {
      const { mock, service } = yield* api("obtain", MockFault.status(503), MockFault.reset)
      const token = yield* adjustUntilDone(yield* Effect.fork(service.obtain))
      expect([Redacted.value(token)]).toEqual(yield* mock.issuedTokens)
      expect(yield* received(mock)).toBe(3)
    }))

  it.scoped("gives up after API_RETRY_MAX_ATTEMPTS with the last error", () =>
    Effect.gen(function*() {
      const { mock, service } = yield* api(
        "obtain",
        MockFault.status(500),
        MockFault.status(502),
        MockFault.status(503),
        MockFault.status(504)
      )
      const error = yield* adjustUntilDone(yield* Effect.fork(Effect.flip(service.obtain)))
      expect(error).toMatchObject({ reason: "ServerError", status: 503 })
      expect(error.message).toBe("AMP obtain_token failed on the server side (HTTP 503)")
      expect(yield* received(mock)).toBe(3)
    }))

  /** Forks `obtain` after a 429 asking to wait a second and checks that it waits exactly that. */
  const waitsOneSecond = (retryAfter: string) =>
    Effect.gen(function*() {
      const start = yield* TestClock.currentTimeMillis
      const { mock, service } = yield* api("obtain", MockFault.status(429, { headers: { "retry-after": retryAfter } }))
      const fiber = yield* Effect.fork(service.obtain)
      yield* awaitSleepUntil(start + 1000) // the 429 was read: the wait has started
      yield* TestClock.adjust("999 millis")
      expect(yield* received(mock)).toBe(1)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      expect(yield* received(mock)).toBe(2)
    })

  it.scoped("honours Retry-After in seconds", () => waitsOneSecond("1"))

  it.scoped("honours Retry-After as an HTTP date", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2024-01-01T00:00:00Z"))
      yield* waitsOneSecond("Mon, 01 Jan 2024 00:00:01 GMT")
    }))

  it.scoped("fails at once with RateLimited when Retry-After is longer than the max delay", () =>
    Effect.gen(function*() {
      const { mock, service } = yield* api("obtain", MockFault.status(429, { headers: { "retry-after": "3600" } }))
      const error = yield* Effect.flip(service.obtain)
      expect(error).toMatchObject({ reason: "RateLimited", status: 429, retryAfter: Duration.hours(1) })
      expect(error.message).toBe("AMP rate limited obtain_token (HTTP 429): the server asks to wait 1h")
      expect(yield* received(mock)).toBe(1)
    }))

  it.scoped("cuts a hung request at the timeout and retries it", () =>
    Effect.gen(function*() {
      const { mock, service } = yield* api("obtain", MockFault.hang, MockFault.hang, MockFault.hang)
      const fiber = yield* Effect.fork(Effect.flip(service.obtain))
      while ((yield* received(mock)) < 1) yield* Effect.yieldNow()
      yield* TestClock.adjust("10 seconds")
      expect(yield* received(mock)).toBe(1)
      const error = yield* adjustUntilDone(fiber, "1 second")
      expect(error).toMatchObject({ reason: "RequestTimeout", timeout: Duration.seconds(10) })
      expect(error.message).toBe("AMP obtain_token did not answer within 10s")
      expect(yield* received(mock)).toBe(3)
    }))

  const garbage: ReadonlyArray<readonly [string, MockAmp.MockFault]> = [
    ["HTML", MockFault.malformed("<html>oops</html>")],
    ["JSON without token", MockFault.malformed("{\"tok\":\"x\"}")],
    ["a token with spaces", MockFault.malformed("{\"token\":\"a b\"}")],
    ["a numeric token", MockFault.malformed("{\"token\":42}")]
  ]
  for (const [name, fault] of garbage) {
    it.scoped(`answers ${name} with MalformedResponse, not retried`, () =>
      Effect.gen(function*() {
        const { mock, service } = yield* api("obtain", fault)
        const error = yield* Effect.flip(service.obtain)
        expect(error).toMatchObject({ _tag: "AuthError", reason: "MalformedResponse" })
        expect(yield* received(mock)).toBe(1)
      }))
  }

  it.scoped("a token over 8 KiB is MalformedResponse naming its size, never the token; 8 KiB is fine", () =>
    Effect.gen(function*() {
      const huge = "A".repeat(20 * 1024 * 1024)
      const { service } = yield* api("obtain", MockFault.malformed(JSON.stringify({ token: huge })))
      const error = yield* Effect.flip(service.obtain)
      expect(error).toMatchObject({ reason: "MalformedResponse", status: 200 })
      expect(error.message).toBe(
        "AMP obtain_token answered HTTP 200 with an unexpected body: token: token of 20971520 bytes, over the " +
          "8192-byte limit"
      )
      const limit = yield* api("obtain", MockFault.malformed(JSON.stringify({ token: "B".repeat(8193) })))
      expect((yield* Effect.flip(limit.service.obtain)).detail).toBe(
        "token: token of 8193 bytes, over the 8192-byte limit"
      )
      const fits = yield* api("obtain", MockFault.malformed(JSON.stringify({ token: "C".repeat(8192) })))
      expect(Redacted.value(yield* fits.service.obtain)).toBe("C".repeat(8192))
    }))

  it.scoped("a token answer that is not an object with a token is named without quoting the body", () =>
    Effect.gen(function*() {
      for (
        const [body, detail] of [
          [JSON.stringify("eyJsecret"), "expected a JSON object with a \"token\""],
          [JSON.stringify({ token: ["eyJsecret"] }), "token: expected a string"],
          [JSON.stringify({ token: "eyJ secret" }), "token: expected printable ASCII without whitespace"],
          [JSON.stringify({ tok: "eyJsecret" }), "token: is missing"],
          ["eyJsecret", "the body is not JSON"]
        ] as const
      ) {
        const { service } = yield* api("obtain", MockFault.malformed(body))
        const error = yield* Effect.flip(service.obtain)
        expect(error.detail).toBe(detail)
        expect(error.message).not.toContain("secret")
      }
    }))

  for (const status of [302, 307, 308]) {
    it.scoped(`a ${status} is Redirected, naming the Location's origin, never followed nor retried`, () =>
      Effect.gen(function*() {
        const location = { location: "https://elsewhere.example:8443/api/user/obtain_token?password=x" }
        const { mock, service } = yield* api("obtain", MockFault.status(status, { headers: location }))
        const error = yield* Effect.flip(service.obtain)
        expect(error).toMatchObject({ reason: "Redirected", status, detail: "https://elsewhere.example:8443" })
        expect(error.message).toBe(
          `AMP obtain_token answered HTTP ${status}, a redirect to https://elsewhere.example:8443: AMP does not ` +
            "redirect, so it was not followed and nothing was sent there (check AMP_API_BASE_URL)"
        )
        expect(yield* received(mock)).toBe(1)
        const refresh = yield* api("refresh", MockFault.status(status, { headers: { location: "/elsewhere" } }))
        const refused = yield* Effect.flip(refresh.service.refresh(Redacted.make("old-token")))
        expect(refused).toMatchObject({ reason: "Redirected", status, detail: "https://amp.example" })
        expect(yield* received(refresh.mock)).toBe(1)
      }))
  }

  it.scoped("a redirect without a Location, or with an unreadable one, says so", () =>
    Effect.gen(function*() {
      const none = yield* api("obtain", MockFault.status(301))
      expect((yield* Effect.flip(none.service.obtain)).detail).toBe("no Location")
      const bad = yield* api("obtain", MockFault.status(303, { headers: { location: "http://[::1" } }))
      expect((yield* Effect.flip(bad.service.obtain)).detail).toBe("an unreadable Location")
    }))

  it.scoped("over FetchHttpClient, every request says redirect: \"manual\", whatever the application's RequestInit", () =>
    Effect.gen(function*() {
      const seen: Array<RequestInit | undefined> = []
      const fetch: typeof globalThis.fetch = (_, init) => {
        seen.push(init)
        return Promise.resolve(new Response(JSON.stringify({ token: "tok-1" }), { status: 200 }))
      }
      const http = yield* Layer.build(FetchHttpClient.layer)
      const service = yield* AuthApi.make(options).pipe(Effect.provide(http))
      yield* service.obtain.pipe(Effect.provideService(FetchHttpClient.Fetch, fetch))
      yield* service.obtain.pipe(
        Effect.provideService(FetchHttpClient.RequestInit, { redirect: "follow", keepalive: true }),
        Effect.provideService(FetchHttpClient.Fetch, fetch)
      )
      expect(seen.map((init) => [init?.redirect, init?.keepalive])).toEqual([["manual", undefined], ["manual", true]])
    }))

  it.scoped("what a transport says of a request is scrubbed of the password and the token it carries", () =>
    Effect.gen(function*() {
      const failing = (reason: "Transport" | "Encode") =>
        HttpClient.make((request) =>
          Effect.fail(
            new HttpClientError.RequestError({
              request,
              reason,
              cause: new Error(`failed: ${request.headers["authorization"] ?? "-"} ${bodyText(request)}`)
            })
          )
        )
      const service = (reason: "Transport" | "Encode") =>
        AuthApi.make({ ...options, retry: { ...options.retry!, maxAttempts: 1 } }).pipe(
          Effect.provideService(HttpClient.HttpClient, failing(reason))
        )
      const login = yield* Effect.flip((yield* service("Transport")).obtain)
      expect(login).toMatchObject({ reason: "TransportError" })
      expect(login.detail).toBe("failed: - {\"username\":\"alice\",\"password\":\"<redacted>\"}")
      const refresh = yield* Effect.flip((yield* service("Encode")).refresh(Redacted.make("tok-secret-1")))
      expect(refresh).toMatchObject({ reason: "InvalidRequest" })
      expect(refresh.detail).toBe("Encode: failed: token <redacted>")
    }))

  it.scoped("a 408 is a transient ServerError, retried", () =>
    Effect.gen(function*() {
      const { mock, service } = yield* api("obtain", MockFault.status(408))
      yield* adjustUntilDone(yield* Effect.fork(service.obtain))
      expect(yield* received(mock)).toBe(2)
    }))

  it.scoped("each call is a span with its endpoint, attempts and outcome, counted by outcome", () =>
    Effect.gen(function*() {
      const count = (metric: typeof TokenMetrics.logins, outcome: string) =>
        Effect.map(Metric.value(Metric.tagged(metric, "outcome", outcome)), (state) => state.count)
      const before = [
        yield* count(TokenMetrics.logins, "success"),
        yield* count(TokenMetrics.refreshes, "RefreshRejected")
      ]
      const { service } = yield* api("obtain", MockFault.status(503))
      const { spans } = yield* withSpans(Effect.gen(function*() {
        yield* untilDone(service.obtain)
        yield* Effect.flip(service.refresh(Redacted.make("old-token")))
      }))
      const attributes = (name: string) =>
        spans.filter((span) => span.name === name).map((span) => Object.fromEntries(span.attributes))
      expect(attributes("AuthApi.obtain")).toEqual([{ endpoint: "obtain_token", attempts: 2, outcome: "success" }])
      expect(attributes("AuthApi.refresh")).toMatchObject([
        { endpoint: "refresh-token", attempts: 1, outcome: "RefreshRejected" }
      ])
      expect([
        yield* count(TokenMetrics.logins, "success"),
        yield* count(TokenMetrics.refreshes, "RefreshRejected")
      ]).toEqual([before[0]! + 1, before[1]! + 1])
    }))

  it.scoped("a body that stalls after the headers is cut at the timeout and retried", () =>
    Effect.gen(function*() {
      let sent = 0
      const stalling = HttpClient.make((request) =>
        Effect.sync(() => {
          sent++
          const body = sent === 1 ? new ReadableStream() : JSON.stringify({ token: "tok-2" })
          return HttpClientResponse.fromWeb(request, new Response(body, { status: 200 }))
        })
      )
      const service = yield* AuthApi.make(options).pipe(Effect.provideService(HttpClient.HttpClient, stalling))
      const token = yield* adjustUntilDone(yield* Effect.fork(service.obtain), "1 second")
      expect(Redacted.value(token)).toBe("tok-2")
      expect(sent).toBe(2)
    }))

  it.scoped("3xx is a redirect and 2xx, 4xx and 5xx are not, at each edge", () =>
    Effect.gen(function*() {
      for (
        const [status, reason] of [
          [299, "MalformedResponse"],
          [300, "Redirected"],
          [399, "Redirected"],
          [400, "InvalidCredentials"],
          [499, "InvalidCredentials"],
          [500, "ServerError"],
          [599, "ServerError"]
        ] as const
      ) {
        const { service } = yield* api("obtain", ...Array.from({ length: 3 }, () => MockFault.status(status)))
        expect(yield* untilDone(Effect.flip(service.obtain)), String(status)).toMatchObject({ reason, status })
      }
    }))

  it.scoped("a 429 without Retry-After backs off normally; a padded Retry-After is read", () =>
    Effect.gen(function*() {
      const bare = yield* api("obtain", MockFault.status(429))
      expect(Redacted.value(yield* untilDone(bare.service.obtain))).toMatch(/^eyJ/)
      expect(yield* received(bare.mock)).toBe(2)
      const padded = yield* api("obtain", MockFault.status(429, { headers: { "retry-after": " 3600 " } }))
      expect(yield* Effect.flip(padded.service.obtain)).toMatchObject({ retryAfter: Duration.hours(1) })
    }))

  it.scoped("a Retry-After that is neither seconds nor a date is ignored: the normal backoff", () =>
    Effect.gen(function*() {
      for (const header of ["5 seconds", "x1"]) {
        const limited = MockFault.status(429, { headers: { "retry-after": header } })
        const { mock, service } = yield* api("obtain", limited, limited, limited)
        const error = yield* untilDone(Effect.flip(service.obtain))
        expect(error.retryAfter, header).toBeUndefined()
        expect(error.message).toBe("AMP rate limited obtain_token (HTTP 429, no Retry-After)")
        expect(yield* received(mock)).toBe(3)
      }
    }))

  it.scoped("a refused answer whose body cannot be read is named without a detail", () =>
    Effect.gen(function*() {
      const broken = HttpClient.make((request) =>
        Effect.succeed(HttpClientResponse.fromWeb(
          request,
          new Response(new ReadableStream({ start: (controller) => controller.error(new Error("reset")) }), {
            status: 401
          })
        ))
      )
      const service = yield* AuthApi.make(options).pipe(Effect.provideService(HttpClient.HttpClient, broken))
      const error = yield* Effect.flip(service.refresh(Redacted.make("old-token")))
      expect(error).toMatchObject({ reason: "RefreshRejected", status: 401, detail: "" })
      expect(error.message).toBe("AMP refused to refresh the token (HTTP 401)")
    }))

  it.scoped("an interrupted call is counted as interrupted", () =>
    Effect.gen(function*() {
      const interrupted = Effect.map(
        Metric.value(Metric.tagged(TokenMetrics.logins, "outcome", "interrupted")),
        (state) => state.count
      )
      const before = yield* interrupted
      const { mock, service } = yield* api("obtain", MockFault.hang)
      const fiber = yield* Effect.fork(service.obtain)
      while ((yield* received(mock)) < 1) yield* Effect.yieldNow()
      yield* Fiber.interrupt(fiber)
      expect(yield* interrupted).toBe(before + 1)
    }))

  it.effect("layerConfig reads the credentials and the base URL (trailing slashes ignored) from the config", () =>
    Effect.gen(function*() {
      const mock = yield* MockAmp.make({ username: "carol", password: "c4rol-pass" })
      yield* mock.script("obtain", MockFault.hang)
      const service = yield* Effect.provide(
        AuthApi.AuthApi,
        AuthApi.layerConfig().pipe(Layer.provide(Layer.succeed(HttpClient.HttpClient, mock.httpClient)))
      )
      const fiber = yield* Effect.fork(service.obtain)
      yield* adjustUntilDone(fiber, "1 second")
      const requests = yield* mock.requests
      expect(requests.map((request) => request.url)).toEqual([
        "http://amp.test/api/user/obtain_token",
        "http://amp.test/api/user/obtain_token"
      ])
      expect(yield* mock.issuedTokens).toHaveLength(1) // the second attempt, after a 2 s timeout
    }).pipe(Effect.withConfigProvider(ConfigProvider.fromJson({
      AMP_API_BASE_URL: "http://amp.test/api//",
      AMP_USERNAME: "carol",
      AMP_PASSWORD: "c4rol-pass",
      API_RETRY_MAX_ATTEMPTS: "2",
      API_REQUEST_TIMEOUT_SECONDS: "2"
    }))))

  /** The detail of the `InvalidCredentials` error that a 400 with `body` gives, for `password`. */
  const refusedWith = (password: string, body: string) =>
    Effect.gen(function*() {
      const mock = yield* MockAmp.make({ username: "alice", password })
      yield* mock.script("obtain", MockFault.status(400, { body }))
      const service = yield* AuthApi.make({ ...options, password: Redacted.make(password) }).pipe(
        Effect.provideService(HttpClient.HttpClient, mock.httpClient)
      )
      return (yield* Effect.flip(service.obtain)).detail
    })

  it.scoped("the password is removed from a server's text in every encoding a body may give it", () =>
    Effect.gen(function*() {
      const password = "pa\"ss\\wo rd/é"
      const forms = [
        ["JSON, decoded", JSON.stringify({ detail: `bad ${password}!` })],
        ["JSON-escaped in text", `bad ${JSON.stringify(password).slice(1, -1)}!`],
        ["JSON-escaped twice", JSON.stringify({ detail: `bad ${JSON.stringify(password).slice(1, -1)}!` })],
        ["URL-encoded", `bad ${encodeURIComponent(password)}!`],
        ["URL-encoded, lower-case hex", `bad ${encodeURIComponent(password).toLowerCase().replace("rd", "rd")}!`],
        ["form-encoded", `bad ${new URLSearchParams({ p: password }).toString().slice(2)}!`],
        ["whitespace changed", `bad ${password.replace(" ", "\n\t  ")}!`],
        ["whitespace JSON-escaped", `bad ${JSON.stringify(password.replace(" ", "\n")).slice(1, -1)}!`],
        ["whitespace percent-encoded", `bad ${encodeURIComponent(password.replace(" ", "\r\n"))}!`],
        ["slash escaped", `bad ${JSON.stringify(password).slice(1, -1).replace("/", "\\/")}!`],
        ["unicode-escaped", `bad ${password.replace("\"", "\\u0022").replace("é", "\\u00E9")}!`]
      ]
      for (const [form, body] of forms) {
        expect(yield* refusedWith(password, body!), form).toBe("bad <redacted>!")
      }
    }))

  it.scoped("a server's text is cut short, without control characters, and shown as is when not JSON", () =>
    Effect.gen(function*() {
      expect(yield* refusedWith(PASSWORD, JSON.stringify({ detail: "x".repeat(500) }))).toBe(`${"x".repeat(200)}…`)
      expect(yield* refusedWith(PASSWORD, JSON.stringify({ detail: "a\u001b[31mred\u0007\r\nb\u202ec" }))).toBe(
        "a [31mred b c"
      )
      expect(yield* refusedWith(PASSWORD, "<h1>Bad Request</h1>")).toBe("<h1>Bad Request</h1>")
      expect(yield* refusedWith(PASSWORD, JSON.stringify({ detail: 42 }))).toBe("{\"detail\":42}")
      expect(yield* refusedWith(PASSWORD, "null")).toBe("null")
      expect(yield* refusedWith(PASSWORD, JSON.stringify("just text"))).toBe("\"just text\"")
      expect(yield* refusedWith("two  spaces", "bad two spaces!")).toBe("bad <redacted>!")
      expect(yield* refusedWith(PASSWORD, "  spaced  ")).toBe("spaced")
      expect(yield* refusedWith("  padded pass ", "bad padded pass!")).toBe("bad <redacted>!")
      // Only a slash may come escaped as `\/`.
      expect(yield* refusedWith("pass-word", "bad pass\\/word!")).toBe("bad pass\\/word!")
    }))

  it.scoped("logs each retry without secrets", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mock, service } = yield* api("refresh", MockFault.status(503, { body: PASSWORD }), MockFault.status(503))
      const current = yield* service.obtain
      const fiber = yield* Effect.fork(logs.provide(service.refresh(current)))
      yield* adjustUntilDone(fiber)
      expect(logs.warnings()).toHaveLength(2)
      expect(logs.warnings()[0]).toContain("refresh-token failed on the server side (HTTP 503); retrying in")
      const tokens = yield* mock.issuedTokens
      expect(tokens).toHaveLength(2)
      for (const line of logs.lines) {
        expect(line.text).not.toContain(PASSWORD)
        for (const token of tokens) expect(line.text).not.toContain(token)
      }
    }))
})
