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
  it.effect("obtain posts the credentials as JSON to {base}/user/obtain_token", () =>
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

  it.effect("refresh GETs {base}/user/refresh-token with Authorization: token <current>", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([])
      yield* service.refresh(Redacted.make("old-token"))
      expect(requests[0]!.method).toBe("GET")
      expect(requests[0]!.url).toBe("https://amp.example/api/user/refresh-token")
      expect(requests[0]!.headers["authorization"]).toBe("token old-token")
    }))

  it.effect("a 400 or 401 from obtain is InvalidCredentials, never retried, password scrubbed", () =>
    Effect.gen(function*() {
      for (const status of [400, 401]) {
        const { requests, service } = yield* api([{
          status,
          body: `{"non_field_errors":["Unable to log in with ${PASSWORD}"]}`
        }])
        const error = yield* Effect.flip(service.obtain)
        expect(error._tag).toBe("InvalidCredentials")
        expect(requests).toHaveLength(1)
        expect(error.message).toContain("Unable to log in")
        expect(error.message).not.toContain(PASSWORD)
        expect(JSON.stringify(error)).not.toContain(PASSWORD)
      }
    }))

  it.effect("a 401 from refresh is RefreshRejected, not retried", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([{ status: 401, body: "{\"detail\":\"Invalid token.\"}" }])
      const error = yield* Effect.flip(service.refresh(Redacted.make("old-token")))
      expect(error._tag).toBe("RefreshRejected")
      expect(requests).toHaveLength(1)
    }))

  it.effect("retries 5xx and transport errors, then succeeds", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([{ status: 503 }, "reset"])
      const fiber = yield* Effect.fork(service.obtain)
      yield* TestClock.adjust("1 seconds")
      expect(Redacted.value(yield* Fiber.join(fiber))).toBe(TOKEN)
      expect(requests).toHaveLength(3)
    }))

  it.effect("gives up after API_RETRY_MAX_ATTEMPTS with the last error", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([{ status: 500 }, { status: 502 }, { status: 503 }, { status: 504 }])
      const fiber = yield* Effect.fork(Effect.flip(service.obtain))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error._tag === "ServerError" && error.status).toBe(503)
      expect(requests).toHaveLength(3)
    }))

  it.effect("honours Retry-After in seconds", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([{ status: 429, headers: { "retry-after": "1" } }])
      const fiber = yield* Effect.fork(service.obtain)
      yield* TestClock.adjust("999 millis")
      expect(requests).toHaveLength(1)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      expect(requests).toHaveLength(2)
    }))

  it.effect("honours Retry-After as an HTTP date", () =>
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

  it.effect("fails at once with RateLimited when Retry-After is longer than the max delay", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api([{ status: 429, headers: { "retry-after": "3600" } }])
      const error = yield* Effect.flip(service.obtain)
      expect(error._tag).toBe("RateLimited")
      expect(error.message).toContain("1h")
      expect(requests).toHaveLength(1)
    }))

  it.effect("cuts a hung request at the timeout and retries it", () =>
    Effect.gen(function*() {
      const { requests, service } = yield* api(["hang", "hang", "hang"])
      const fiber = yield* Effect.fork(Effect.flip(service.obtain))
      yield* TestClock.adjust("10 seconds")
      expect(requests).toHaveLength(1)
      yield* TestClock.adjust("1 minutes")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("RequestTimeout")
      expect(error.message).toContain("10s")
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
    it.effect(`answers ${name} with MalformedResponse, not retried`, () =>
      Effect.gen(function*() {
        const { requests, service } = yield* api([reply])
        const error = yield* Effect.flip(service.obtain)
        expect(error._tag).toBe("MalformedResponse")
        expect(requests).toHaveLength(1)
      }))
  }

  it.effect("logs each retry without secrets", () =>
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
