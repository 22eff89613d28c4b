import { HttpClient, HttpClientResponse } from "@effect/platform"
import type { HttpClientRequest } from "@effect/platform"
import { RequestError } from "@effect/platform/HttpClientError"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Redacted, TestClock } from "effect"
import * as AuthApi from "../src/AuthApi.js"
import * as LogCapture from "./utils/LogCapture.js"

type Reply =
  | { readonly status: number; readonly body?: string; readonly headers?: Record<string, string> }
  | "reset"
  | "hang"

const PASSWORD = "pa55-w0rd-xyz"
const TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDQxOTY4MDB9.c2ln"

/** An HttpClient answering from a script, recording each request. */
const scripted = (replies: Array<Reply>) => {
  const requests: Array<
    { readonly method: string; readonly url: string; readonly headers: Record<string, string>; readonly body: string }
  > = []
  const client = HttpClient.make((request, url) =>
    Effect.suspend(() => {
      requests.push({
        method: request.method,
        url: url.toString(),
        headers: request.headers,
        body: bodyText(request)
      })
      const reply = replies.shift() ?? { status: 200, body: JSON.stringify({ token: TOKEN }) }
      if (reply === "hang") return Effect.never
      if (reply === "reset") {
        return Effect.fail(new RequestError({ request, reason: "Transport", cause: new Error("socket hang up") }))
      }
      return Effect.succeed(HttpClientResponse.fromWeb(
        request,
        new Response(reply.body ?? "", { status: reply.status, headers: reply.headers ?? {} })
      ))
    })
  )
  return { requests, layer: Layer.succeed(HttpClient.HttpClient, client) }
}

const bodyText = (request: HttpClientRequest.HttpClientRequest) =>
  request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""

const options: AuthApi.AuthApiOptions = {
  baseUrl: "https://amp.example/api/",
  username: "alice",
  password: Redacted.make(PASSWORD),
  retry: { maxAttempts: 3, baseDelay: Duration.millis(100), maxDelay: Duration.millis(1000) },
  requestTimeout: Duration.seconds(10)
}

const api = (replies: Array<Reply>) => {
  const http = scripted(replies)
  return Effect.map(
    AuthApi.make(options).pipe(Effect.provide(http.layer)),
    (service) => ({ service, requests: http.requests })
  )
}

describe("AuthApi", () => {
  it.scoped("obtain posts the credentials as JSON to {base}/user/obtain_token", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([])
      const token = yield* service.obtain
      expect(Redacted.value(token)).toBe(TOKEN)
      expect(requests).toHaveLength(1)
      expect(requests[0]!.method).toBe("POST")
      expect(requests[0]!.url).toBe("https://amp.example/api/user/obtain_token")
      expect(requests[0]!.headers["content-type"]).toBe("application/json")
      expect(JSON.parse(requests[0]!.body)).toEqual({ username: "alice", password: PASSWORD })
    }))

  it.scoped("refresh GETs {base}/user/refresh-token with Authorization: token <current>", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([])
      yield* service.refresh(Redacted.make("old-token"))
      expect(requests[0]!.method).toBe("GET")
      expect(requests[0]!.url).toBe("https://amp.example/api/user/refresh-token")
      expect(requests[0]!.headers["authorization"]).toBe("token old-token")
    }))

  it.scoped("a 400 or 401 from obtain is InvalidCredentials, never retried, password scrubbed", () =>
    Effect.gen(function*() {
      for (const status of [400, 401]) {
        const { requests, service } = yield* api([{
          status,
          body: `{"non_field_errors":["Unable to log in with ${PASSWORD}"]}`
        }])
        const error = yield* Effect.flip(service.obtain)
        expect(error).toMatchObject({
          _tag: "AuthError",
          endpoint: "obtain_token",
          reason: "InvalidCredentials",
          status
        })
        expect(requests).toHaveLength(1)
        expect(error.message).toMatch(new RegExp(`^AMP rejected the username or password \\(HTTP ${status}\\): `))
        expect(error.message).toContain("Unable to log in")
        expect(error.message).not.toContain(PASSWORD)
        expect(JSON.stringify(error)).not.toContain(PASSWORD)
      }
    }))

  it.scoped("a 401 from refresh is RefreshRejected, not retried", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([{ status: 401, body: "{\"detail\":\"Invalid token.\"}" }])
      const error = yield* Effect.flip(service.refresh(Redacted.make("old-token")))
      expect(error).toMatchObject({
        _tag: "AuthError",
        endpoint: "refresh-token",
        reason: "RefreshRejected",
        status: 401
      })
      expect(error.message).toBe("AMP refused to refresh the token (HTTP 401): {\"detail\":\"Invalid token.\"}")
      expect(requests).toHaveLength(1)
    }))

  it.scoped("a 404 from obtain is NotFound, naming the URL and AMP_API_BASE_URL, never retried", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([{ status: 404, body: `<h1>Not Found</h1> ${PASSWORD}` }])
      const error = yield* Effect.flip(service.obtain)
      expect(error).toMatchObject({ _tag: "AuthError", endpoint: "obtain_token", reason: "NotFound", status: 404 })
      expect(requests).toHaveLength(1)
      expect(error.message).toBe(
        "AMP has no obtain_token endpoint at https://amp.example/api/user/obtain_token (HTTP 404): check " +
          "AMP_API_BASE_URL, the API's base URL, which ends in /api (such as https://amp-test.blockstream.com/api)"
      )
      expect(JSON.stringify(error)).not.toContain(PASSWORD)
    }))

  it.scoped("a 404 from refresh is a refused refresh (the token service then logs in)", () =>
    Effect.gen(function*() {
      const { service } = yield* api([{ status: 404 }])
      const error = yield* Effect.flip(service.refresh(Redacted.make("old-token")))
      expect(error).toMatchObject({ endpoint: "refresh-token", reason: "RefreshRejected", status: 404 })
    }))

  it.scoped("a connection that keeps failing is a TransportError naming what the transport said", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api(["reset", "reset", "reset"])
      const fiber = yield* Effect.fork(Effect.flip(service.obtain))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ reason: "TransportError", detail: "socket hang up" })
      expect(error.message).toBe("AMP obtain_token is unreachable: socket hang up")
      expect(requests).toHaveLength(3)
    }))

  it.scoped("retries 5xx and transport errors, then succeeds", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([{ status: 503 }, "reset"])
      const fiber = yield* Effect.fork(service.obtain)
      yield* TestClock.adjust("1 seconds")
      expect(Redacted.value(yield* Fiber.join(fiber))).toBe(TOKEN)
      expect(requests).toHaveLength(3)
    }))

  it.scoped("gives up after API_RETRY_MAX_ATTEMPTS with the last error", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([{ status: 500 }, { status: 502 }, { status: 503 }, { status: 504 }])
      const fiber = yield* Effect.fork(Effect.flip(service.obtain))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ reason: "ServerError", status: 503 })
      expect(error.message).toBe("AMP obtain_token failed on the server side (HTTP 503)")
      expect(requests).toHaveLength(3)
    }))

  it.scoped("honours Retry-After in seconds", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([{ status: 429, headers: { "retry-after": "1" } }])
      const fiber = yield* Effect.fork(service.obtain)
      yield* TestClock.adjust("999 millis")
      expect(requests).toHaveLength(1)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      expect(requests).toHaveLength(2)
    }))

  it.scoped("honours Retry-After as an HTTP date", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2024-01-01T00:00:00Z"))
      const { requests, service } = yield* api([{
        status: 429,
        headers: { "retry-after": "Mon, 01 Jan 2024 00:00:01 GMT" }
      }])
      const fiber = yield* Effect.fork(service.obtain)
      yield* TestClock.adjust("999 millis")
      expect(requests).toHaveLength(1)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      expect(requests).toHaveLength(2)
    }))

  it.scoped("fails at once with RateLimited when Retry-After is longer than the max delay", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([{ status: 429, headers: { "retry-after": "3600" } }])
      const error = yield* Effect.flip(service.obtain)
      expect(error).toMatchObject({ reason: "RateLimited", status: 429, retryAfter: Duration.hours(1) })
      expect(error.message).toBe("AMP rate limited obtain_token (HTTP 429): the server asks to wait 1h")
      expect(requests).toHaveLength(1)
    }))

  it.scoped("cuts a hung request at the timeout and retries it", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api(["hang", "hang", "hang"])
      const fiber = yield* Effect.fork(Effect.flip(service.obtain))
      yield* TestClock.adjust("10 seconds")
      expect(requests).toHaveLength(1)
      yield* TestClock.adjust("1 minutes")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ reason: "RequestTimeout", timeout: Duration.seconds(10) })
      expect(error.message).toBe("AMP obtain_token did not answer within 10s")
      expect(requests).toHaveLength(3)
    }))

  const garbage: ReadonlyArray<readonly [string, Reply]> = [
    ["HTML", { status: 200, body: "<html>oops</html>" }],
    ["JSON without token", { status: 200, body: "{\"tok\":\"x\"}" }],
    ["a token with spaces", { status: 200, body: "{\"token\":\"a b\"}" }],
    ["a numeric token", { status: 200, body: "{\"token\":42}" }],
    ["a redirect", { status: 302, body: "" }]
  ]
  for (const [name, reply] of garbage) {
    it.scoped(`answers ${name} with MalformedResponse, not retried`, () =>
      Effect.gen(function*() {
        const { requests, service } = yield* api([reply])
        const error = yield* Effect.flip(service.obtain)
        expect(error).toMatchObject({ _tag: "AuthError", reason: "MalformedResponse" })
        expect(requests).toHaveLength(1)
      }))
  }

  it.scoped("logs each retry without secrets", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { service } = yield* api([{ status: 503, body: PASSWORD }, { status: 503 }])
      const fiber = yield* Effect.fork(logs.provide(service.refresh(Redacted.make(TOKEN))))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      expect(logs.warnings()).toHaveLength(2)
      expect(logs.warnings()[0]).toContain("refresh-token failed on the server side (HTTP 503); retrying in")
      for (const line of logs.lines) {
        expect(line.text).not.toContain(PASSWORD)
        expect(line.text).not.toContain(TOKEN)
      }
    }))
})
