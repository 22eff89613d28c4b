/**
 * The fake AMP, in memory: its routes, tokens, faults and counters through the in-memory
 * `HttpClient`, under `TestClock`, and the library's clients (`AuthApi`, `TokenService`,
 * `AmpClient`) run against it with no network. What needs a socket (a real reset, a hang
 * until the server closes, thousands of connections) is in `@amp-effect/node`'s
 * `MockAmpServer.test.ts`.
 */
import { HttpClient, type HttpClientError, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Either, Encoding, Exit, Fiber, Layer, Option, Redacted, TestClock } from "effect"
import * as AmpClient from "../src/AmpClient.js"
import * as AuthApi from "../src/AuthApi.js"
import * as Jwt from "../src/Jwt.js"
import * as MockAmp from "../src/MockAmp.js"
import * as TokenService from "../src/TokenService.js"
import * as TokenStore from "../src/TokenStore.js"
import { adjustUntilDone, awaitSleeps, macrotask } from "./utils/TestTime.js"

const { MockFault, mockAssets } = MockAmp
type Amp = MockAmp.MockAmp.Service

interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly text: string
}

/** Sends `request` through the mock's in-memory client and reads the whole answer. */
const send = (amp: Amp, request: HttpClientRequest.HttpClientRequest): Effect.Effect<Answer> =>
  amp.httpClient.execute(request).pipe(
    Effect.flatMap((response) =>
      Effect.map(response.text, (text) => ({ status: response.status, headers: response.headers, text }))
    ),
    Effect.orDie
  )

/** The transport failure of a request expected to get no answer. */
const sendFailure = (amp: Amp, request: HttpClientRequest.HttpClientRequest) =>
  amp.httpClient.execute(request).pipe(
    Effect.flatMap((response) => Effect.dieMessage(`expected a transport error, got HTTP ${response.status}`)),
    Effect.flip
  )

const get = (amp: Amp, path: string, token?: string) =>
  send(
    amp,
    HttpClientRequest.get(`${amp.baseUrl}${path}`).pipe(
      token === undefined ? (request) => request : HttpClientRequest.setHeader("authorization", `token ${token}`)
    )
  )

const obtainRequest = (amp: Amp, username = "mock_user", password = "mock_pass") =>
  HttpClientRequest.post(`${amp.baseUrl}/user/obtain_token`).pipe(
    HttpClientRequest.bodyUnsafeJson({ username, password })
  )

const obtain = (amp: Amp, username?: string, password?: string) => send(amp, obtainRequest(amp, username, password))

const tokenOf = (answer: Answer): string => {
  expect(answer.status).toBe(200)
  return (JSON.parse(answer.text) as { token: string }).token
}

const obtainToken = (amp: Amp) => Effect.map(obtain(amp), tokenOf)

const refresh = (amp: Amp, token: string) => get(amp, "/user/refresh-token", token)

const decodeSegment = (segment: string): Record<string, unknown> =>
  JSON.parse(Either.getOrThrow(Encoding.decodeBase64UrlString(segment)))

const payloadOf = (token: string) => decodeSegment(token.split(".")[1]!)

/** Lets other fibers run until the mock has received `n` requests to `endpoint`. */
const awaitCount = (amp: Amp, endpoint: MockAmp.MockEndpoint | "total", n: number) =>
  Effect.gen(function*() {
    while ((yield* amp.counters)[endpoint] < n) yield* Effect.yieldNow()
  })

describe("MockAmp", () => {
  describe("tokens", () => {
    it("jwt: an HS256 header, the payload as base64url JSON, the same token for the same payload", () => {
      const token = MockAmp.jwt({ sub: "x", exp: 1704196800, note: "é ü" })
      const [header, payload, signature] = token.split(".")
      expect(decodeSegment(header!)).toEqual({ typ: "JWT", alg: "HS256" })
      expect(decodeSegment(payload!)).toEqual({ sub: "x", exp: 1704196800, note: "é ü" })
      expect(signature!.length).toBeGreaterThan(0)
      expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)
      expect(MockAmp.jwt({ sub: "x", exp: 1704196800, note: "é ü" })).toBe(token)
      expect(Option.map(Jwt.expiry(token), (date) => date.epochMillis)).toEqual(Option.some(1704196800_000))
    })

    it.effect("mintToken: iat and exp follow the Clock, exp rounds down, jti makes tokens unique", () =>
      Effect.gen(function*() {
        const first = payloadOf(yield* MockAmp.mintToken())
        expect(first).toMatchObject({ sub: "mock_user", iat: 0, exp: 24 * 3600 })
        expect(typeof first.jti).toBe("string")
        expect(payloadOf(yield* MockAmp.mintToken()).jti).not.toBe(first.jti)

        yield* TestClock.adjust("90500 millis")
        const later = payloadOf(yield* MockAmp.mintToken({ subject: "alice", lifetime: "10 minutes", jti: 7 }))
        expect(later).toEqual({ sub: "alice", iat: 90, exp: 690, jti: 7 })
        // 90.5 s + 1.2 s = 91.7 s: never later than the real expiry
        expect(payloadOf(yield* MockAmp.mintToken({ lifetime: "1200 millis" })).exp).toBe(91)
      }))
  })

  describe("obtain_token", () => {
    it.effect("issues a JWT-shaped token for the right credentials, with exp - iat = lifetime", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        const answer = yield* obtain(amp)
        expect(answer.headers["content-type"]).toBe("application/json")
        const token = tokenOf(answer)
        const parts = token.split(".")
        expect(parts).toHaveLength(3)
        expect(decodeSegment(parts[0]!)).toEqual({ typ: "JWT", alg: "HS256" })
        const payload = payloadOf(token)
        expect(payload.sub).toBe("mock_user")
        // Under TestClock "now" is 0
        expect(payload.iat).toBe(0)
        expect(payload.exp).toBe(24 * 60 * 60)
        expect(typeof payload.jti).toBe("string")
        expect(yield* amp.issuedTokens).toEqual([token])
      }))

    it.effect("follows the TestClock and the configured lifetime and credentials", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make({ username: "alice", password: "s3cret", tokenLifetime: "10 minutes" })
        yield* TestClock.adjust("1 hour")
        // The default credentials are not accepted when others are configured
        expect((yield* obtain(amp)).status).toBe(400)
        const payload = payloadOf(tokenOf(yield* obtain(amp, "alice", "s3cret")))
        expect(payload.sub).toBe("alice")
        expect(payload.iat).toBe(3600)
        expect(payload.exp).toBe(3600 + 600)

        yield* amp.setTokenLifetime("90 seconds")
        const changed = payloadOf(tokenOf(yield* obtain(amp, "alice", "s3cret")))
        expect(Number(changed.exp) - Number(changed.iat)).toBe(90)
      }))

    it.effect("rejects wrong credentials, malformed and oversized bodies with 4xx and the wrong method with 405", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        const wrong = yield* obtain(amp, "mock_user", "nope")
        expect(wrong.status).toBe(400)
        expect(JSON.parse(wrong.text)).toEqual({ non_field_errors: ["Unable to log in with provided credentials."] })
        expect(JSON.parse((yield* obtain(amp, "someone", "mock_pass")).text)).toEqual(JSON.parse(wrong.text))

        const url = `${amp.baseUrl}/user/obtain_token`
        const notJson = yield* send(amp, HttpClientRequest.post(url).pipe(HttpClientRequest.bodyText("{oops")))
        expect(notJson.status).toBe(400)
        expect(JSON.parse(notJson.text)).toEqual({ detail: "JSON parse error - request body is not valid JSON." })
        const missingField = yield* send(
          amp,
          HttpClientRequest.post(url).pipe(HttpClientRequest.bodyUnsafeJson({ username: "mock_user" }))
        )
        expect(missingField.status).toBe(400)
        expect(JSON.parse(missingField.text)).toEqual({
          username: ["This field is required."],
          password: ["This field is required."]
        })
        // A body of `size` bytes with the right username and a wrong password
        const sized = (size: number) => {
          const password = "x".repeat(size - JSON.stringify({ username: "mock_user", password: "" }).length)
          return send(
            amp,
            HttpClientRequest.post(url).pipe(HttpClientRequest.bodyUnsafeJson({ username: "mock_user", password }))
          )
        }
        // 64 KiB is still read as a login; one byte more is not
        expect((yield* sized(64 * 1024)).status).toBe(400)
        const huge = yield* sized(64 * 1024 + 1)
        expect(huge.status).toBe(413)
        expect(JSON.parse(huge.text)).toEqual({ detail: "Request too large." })

        const wrongMethod = yield* get(amp, "/user/obtain_token")
        expect(wrongMethod.status).toBe(405)
        expect(JSON.parse(wrongMethod.text)).toEqual({ detail: "Method \"GET\" not allowed." })

        expect(yield* amp.issuedTokens).toEqual([])
        expect((yield* amp.counters).obtain).toBe(7)
      }))

    it.effect("issues a unique token every time and records each one, counting exactly", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        const tokens = yield* Effect.all(Array.from({ length: 200 }, () => obtainToken(amp)), {
          concurrency: "unbounded"
        })
        expect(new Set(tokens).size).toBe(200)
        expect(new Set(tokens.map((token) => payloadOf(token).jti)).size).toBe(200)
        expect([...(yield* amp.issuedTokens)].sort()).toEqual([...tokens].sort())
        expect(yield* amp.counters).toEqual({
          obtain: 200,
          refresh: 0,
          info: 0,
          assets: 0,
          changelog: 0,
          unauthorized: 0,
          total: 200
        })
      }))
  })

  describe("refresh-token", () => {
    it.effect("exchanges a valid token for a new one; the old one stays valid", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        const token = yield* obtainToken(amp)
        yield* TestClock.adjust("1 hour")
        const renewed = tokenOf(yield* refresh(amp, token))
        expect(renewed).not.toBe(token)
        expect(payloadOf(renewed).iat).toBe(3600)
        expect(payloadOf(renewed).exp).toBe(3600 + 86400)
        expect((yield* refresh(amp, token)).status).toBe(200)
        expect((yield* refresh(amp, renewed)).status).toBe(200)
        expect(yield* amp.counters).toEqual({
          obtain: 1,
          refresh: 3,
          info: 0,
          assets: 0,
          changelog: 0,
          unauthorized: 0,
          total: 4
        })
        expect(yield* amp.issuedTokens).toHaveLength(4)
      }))

    it.effect("answers 401 with WWW-Authenticate to garbage, missing, Bearer-scheme and unknown tokens", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        const token = yield* obtainToken(amp)
        const url = `${amp.baseUrl}/user/refresh-token`
        const withHeader = (value: string) =>
          send(amp, HttpClientRequest.get(url, { headers: { authorization: value } }))

        const garbage = yield* refresh(amp, "garbage")
        expect(garbage.status).toBe(401)
        expect(JSON.parse(garbage.text)).toEqual({ detail: "Invalid token." })
        expect(garbage.headers["www-authenticate"]).toBe("Token")

        // A well-formed JWT this mock never issued
        expect((yield* refresh(amp, MockAmp.jwt(payloadOf(token)) + "x")).status).toBe(401)

        const missing = yield* send(amp, HttpClientRequest.get(url))
        expect(missing.status).toBe(401)
        expect(JSON.parse(missing.text)).toEqual({ detail: "Authentication credentials were not provided." })
        const bearer = yield* withHeader(`Bearer ${token}`)
        expect(bearer.status).toBe(401)
        const twoWords = yield* withHeader(`token ${token} extra`)
        expect(JSON.parse(twoWords.text)).toEqual({ detail: "Invalid token header." })
        expect(JSON.parse((yield* withHeader("token")).text)).toEqual({ detail: "Invalid token header." })
        // The keyword is case-insensitive and any whitespace separates it, as in Django REST framework
        expect((yield* withHeader(`Token ${token}`)).status).toBe(200)
        expect((yield* withHeader(`token \t ${token}`)).status).toBe(200)

        const counters = yield* amp.counters
        expect(counters.unauthorized).toBe(6)
        expect(counters.refresh).toBe(8)
      }))

    it.effect("rejects a token once the TestClock reaches its expiry", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make({ tokenLifetime: "1 hour" })
        const token = yield* obtainToken(amp)
        yield* TestClock.adjust(Duration.subtract(Duration.hours(1), Duration.millis(1)))
        const renewed = tokenOf(yield* refresh(amp, token))

        yield* TestClock.adjust("1 millis")
        const expired = yield* refresh(amp, token)
        expect(expired.status).toBe(401)
        expect(JSON.parse(expired.text)).toEqual({ detail: "Invalid token." })
        // The token issued just before is still good
        expect((yield* refresh(amp, renewed)).status).toBe(200)
      }))

    it.effect("revokeAll invalidates every token issued so far, not later ones; revoke only the one", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        const first = yield* obtainToken(amp)
        const second = yield* obtainToken(amp)
        yield* amp.revokeAll
        expect((yield* refresh(amp, first)).status).toBe(401)
        expect((yield* refresh(amp, second)).status).toBe(401)
        expect((yield* get(amp, "/assets/", second)).status).toBe(401)
        const third = yield* obtainToken(amp)
        const fourth = yield* obtainToken(amp)
        expect((yield* refresh(amp, third)).status).toBe(200)
        expect((yield* amp.counters).unauthorized).toBe(3)

        yield* amp.revoke(third)
        expect((yield* get(amp, "/changelog", third)).status).toBe(401)
        expect((yield* get(amp, "/changelog", fourth)).status).toBe(200)
      }))
  })

  describe("other endpoints", () => {
    it.effect("serves info without auth, assets and changelog with auth, 404 otherwise; resetCounters", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        const info = yield* get(amp, "/info")
        expect(info.status).toBe(200)
        expect(JSON.parse(info.text)).toEqual({ version: "mock-1.0" })

        expect((yield* get(amp, "/assets/")).status).toBe(401)
        expect((yield* get(amp, "/changelog")).status).toBe(401)

        const token = yield* obtainToken(amp)
        const list = yield* get(amp, "/assets/", token)
        expect(list.status).toBe(200)
        expect(JSON.parse(list.text)).toEqual(mockAssets)
        expect(mockAssets.length).toBeGreaterThanOrEqual(2)

        const one = yield* get(amp, `/assets/${mockAssets[1]!.asset_uuid}`, token)
        expect(one.status).toBe(200)
        expect(JSON.parse(one.text)).toEqual(mockAssets[1])

        const unknownAsset = yield* get(amp, "/assets/00000000-0000-0000-0000-000000000000", token)
        expect(unknownAsset.status).toBe(404)
        expect(JSON.parse(unknownAsset.text)).toEqual({ detail: "Not found." })

        const changelog = yield* get(amp, "/changelog", token)
        expect(changelog.status).toBe(200)
        expect(JSON.parse(changelog.text)).toEqual({
          "mock-1.0": { added: ["user/obtain_token", "user/refresh-token", "assets", "info", "changelog"] }
        })

        expect((yield* get(amp, "/nope")).status).toBe(404)
        expect((yield* send(amp, HttpClientRequest.get("http://amp.mock.invalid/info"))).status).toBe(404)

        expect(yield* amp.counters).toEqual({
          obtain: 1,
          refresh: 0,
          info: 1,
          assets: 4,
          changelog: 2,
          unauthorized: 2,
          total: 10
        })
        yield* amp.resetCounters
        expect(yield* amp.counters).toEqual({
          obtain: 0,
          refresh: 0,
          info: 0,
          assets: 0,
          changelog: 0,
          unauthorized: 0,
          total: 0
        })
        expect(yield* amp.requests).toEqual([])
      }))

    it.effect("accepts paths with or without the trailing slash, as Django REST framework does", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        expect((yield* get(amp, "/info/")).status).toBe(200)
        const token = tokenOf(
          yield* send(
            amp,
            HttpClientRequest.post(`${amp.baseUrl}/user/obtain_token/`).pipe(
              HttpClientRequest.bodyUnsafeJson({ username: "mock_user", password: "mock_pass" })
            )
          )
        )
        expect((yield* get(amp, "/assets", token)).status).toBe(200)
        expect((yield* get(amp, "/user/refresh-token/", token)).status).toBe(200)
        expect((yield* get(amp, `/assets/${mockAssets[0]!.asset_uuid}/`, token)).status).toBe(200)
        expect(yield* amp.counters).toMatchObject({ info: 1, obtain: 1, assets: 2, refresh: 1, total: 5 })
      }))

    it.effect("accepts doubled slashes in a path, as the paths without them", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        expect((yield* get(amp, "//info")).status).toBe(200)
        const token = yield* obtainToken(amp)
        expect((yield* get(amp, "/assets//", token)).status).toBe(200)
        expect(yield* amp.counters).toMatchObject({ info: 1, assets: 1 })
      }))

    it.effect("survives malformed percent-escapes in the path", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        const token = yield* obtainToken(amp)
        expect((yield* get(amp, "/assets/%E0%A4%A", token)).status).toBe(404)
        expect((yield* get(amp, "/info")).status).toBe(200)
      }))

    it.effect("serves the assets it is given", () =>
      Effect.gen(function*() {
        const asset: MockAmp.MockAsset = { ...mockAssets[0]!, asset_uuid: "uuid-1", domain: null, ticker: null }
        const amp = yield* MockAmp.make({ assets: [asset] })
        const token = yield* obtainToken(amp)
        expect(JSON.parse((yield* get(amp, "/assets/", token)).text)).toEqual([asset])
        expect(JSON.parse((yield* get(amp, "/assets/uuid-1", token)).text)).toEqual(asset)
        expect((yield* get(amp, `/assets/${mockAssets[1]!.asset_uuid}`, token)).status).toBe(404)
      }))

    it.effect("logs every request in arrival order: endpoint, method, full URL, Authorization", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        const token = yield* obtainToken(amp)
        yield* get(amp, "/assets/", token)
        yield* send(amp, HttpClientRequest.get("https://other.host/api/nope?x=1"))
        yield* get(amp, "/info")
        expect(yield* amp.requests).toEqual([
          {
            endpoint: "obtain",
            method: "POST",
            url: `${amp.baseUrl}/user/obtain_token`,
            authorization: undefined
          },
          { endpoint: "assets", method: "GET", url: `${amp.baseUrl}/assets/`, authorization: `token ${token}` },
          { endpoint: undefined, method: "GET", url: "https://other.host/api/nope?x=1", authorization: undefined },
          { endpoint: "info", method: "GET", url: `${amp.baseUrl}/info`, authorization: undefined }
        ])
      }))

    it.effect("mocks in the same test are independent", () =>
      Effect.gen(function*() {
        const a = yield* MockAmp.make()
        const b = yield* MockAmp.make({ password: "other" })
        const token = yield* obtainToken(a)
        expect((yield* obtain(b)).status).toBe(400)
        expect((yield* refresh(b, token)).status).toBe(401)
        expect((yield* a.counters).obtain).toBe(1)
        expect((yield* b.counters).obtain).toBe(1)
      }))
  })

  describe("scripted faults", () => {
    it.effect("are consumed in order, per endpoint, then the endpoint behaves normally", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        yield* amp.script(
          "obtain",
          MockFault.rateLimited("7"),
          MockFault.status(503),
          MockFault.malformed(),
          { _tag: "Status", status: 500, body: "boom", headers: { "Content-Type": "text/plain" } },
          MockFault.status(204)
        )
        // Faults are per endpoint: info is unaffected
        expect((yield* get(amp, "/info")).status).toBe(200)

        const limited = yield* obtain(amp)
        expect(limited.status).toBe(429)
        expect(limited.headers["retry-after"]).toBe("7")
        expect(JSON.parse(limited.text)).toEqual({ detail: "Request was throttled." })

        const unavailable = yield* obtain(amp)
        expect(unavailable.status).toBe(503)
        expect(unavailable.headers["retry-after"]).toBeUndefined()
        expect(JSON.parse(unavailable.text)).toEqual({ detail: "HTTP 503" })

        const malformed = yield* obtain(amp)
        expect(malformed.status).toBe(200)
        expect(malformed.text).toBe("{\"token\":")
        expect(malformed.headers["content-type"]).toBe("application/json")

        const custom = yield* obtain(amp)
        expect(custom.status).toBe(500)
        expect(custom.text).toBe("boom")
        expect(custom.headers["content-type"]).toBe("text/plain")

        const noContent = yield* obtain(amp)
        expect(noContent.status).toBe(204)
        expect(noContent.text).toBe("")

        expect((yield* obtain(amp)).status).toBe(200)
        expect((yield* amp.counters).obtain).toBe(6)
        // Faulted requests issue no token
        expect(yield* amp.issuedTokens).toHaveLength(1)
      }))

    it.effect("Reset fails the in-memory request with a Transport RequestError, once", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        yield* amp.script("refresh", MockFault.reset)
        const token = yield* obtainToken(amp)
        const error = yield* sendFailure(
          amp,
          HttpClientRequest.get(`${amp.baseUrl}/user/refresh-token`).pipe(
            HttpClientRequest.setHeader("authorization", `token ${token}`)
          )
        )
        expect(error).toMatchObject(
          { _tag: "RequestError", reason: "Transport" } satisfies Partial<
            HttpClientError.RequestError
          >
        )
        expect((yield* refresh(amp, token)).status).toBe(200)
        expect((yield* amp.counters).refresh).toBe(2)
        expect(yield* amp.issuedTokens).toHaveLength(2)
      }))

    it.effect("Hang never answers: the client's timeout cuts it, the next request is answered", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        yield* amp.script("info", MockFault.hang)
        const hung = yield* Effect.fork(get(amp, "/info").pipe(Effect.timeout("30 seconds")))
        yield* awaitCount(amp, "info", 1)
        // Other requests are answered while one hangs
        expect((yield* get(amp, "/info")).status).toBe(200)
        yield* TestClock.adjust("29 seconds")
        expect(Option.isNone(yield* Fiber.poll(hung))).toBe(true)
        yield* TestClock.adjust("1 second")
        expect(Exit.isFailure(yield* Fiber.await(hung))).toBe(true)
        expect((yield* amp.counters).info).toBe(2)
      }))

    it.effect("Delay answers normally once the mock's TestClock has moved, without blocking others", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        yield* amp.script("info", MockFault.delay("1 hour"))
        const delayed = yield* Effect.fork(get(amp, "/info"))
        yield* awaitSleeps(1)
        expect((yield* get(amp, "/info")).status).toBe(200)
        yield* TestClock.adjust(Duration.subtract(Duration.hours(1), Duration.millis(1)))
        yield* macrotask
        expect(Option.isNone(yield* Fiber.poll(delayed))).toBe(true)
        yield* TestClock.adjust("1 millis")
        const answer = yield* Fiber.join(delayed)
        expect(answer.status).toBe(200)
        expect(JSON.parse(answer.text)).toEqual({ version: "mock-1.0" })
      }))

    it.effect("the mock's time is the Clock of the fiber that made it, whoever sends the request", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        yield* TestClock.adjust("2 hours")
        // The request runs on the real clock; the token is still dated by the TestClock
        const token = yield* obtainToken(amp).pipe(Effect.withClock(Clock.make()))
        expect(payloadOf(token).iat).toBe(7200)
      }))

    it.effect("latency delays obtain and refresh only", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make({ latency: "1 hour" })
        const login = yield* Effect.fork(obtainToken(amp))
        yield* awaitSleeps(1)
        expect((yield* get(amp, "/info")).status).toBe(200)
        yield* macrotask
        expect(Option.isNone(yield* Fiber.poll(login))).toBe(true)
        yield* TestClock.adjust("1 hour")
        const token = yield* Fiber.join(login)
        expect(payloadOf(token).iat).toBe(3600)

        const renewal = yield* Effect.fork(refresh(amp, token))
        yield* awaitSleeps(1)
        yield* TestClock.adjust(Duration.subtract(Duration.hours(1), Duration.millis(1)))
        yield* macrotask
        expect(Option.isNone(yield* Fiber.poll(renewal))).toBe(true)
        yield* TestClock.adjust("1 millis")
        expect(payloadOf(tokenOf(yield* Fiber.join(renewal))).iat).toBe(7200)
      }))
  })

  describe("the library's clients in memory", () => {
    const retry = { maxAttempts: 4, baseDelay: Duration.millis(100), maxDelay: Duration.seconds(2) }
    const credentials = (amp: Amp) => ({
      baseUrl: amp.baseUrl,
      username: "mock_user",
      password: Redacted.make("mock_pass"),
      retry,
      requestTimeout: Duration.hours(1)
    })
    /** AmpClient, TokenService and AuthApi over the mock's in-memory client and a memory store. */
    const clients = (amp: Amp) =>
      AmpClient.layer({ baseUrl: amp.baseUrl, retry, requestTimeout: Duration.seconds(30) }).pipe(
        Layer.provideMerge(TokenService.layer()),
        Layer.provideMerge(AuthApi.layer(credentials(amp))),
        Layer.provide(Layer.merge(Layer.succeed(HttpClient.HttpClient, amp.httpClient), TokenStore.layerMemory))
      )

    it.effect("layerHttpClient: AuthApi retries a 503, a reset and a 429 under TestClock, then logs in", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.MockAmp
        const api = yield* AuthApi.AuthApi
        yield* amp.script("obtain", MockFault.status(503), MockFault.reset, MockFault.rateLimited("1"))
        const token = yield* adjustUntilDone(yield* Effect.fork(api.obtain))
        expect(yield* amp.issuedTokens).toEqual([Redacted.value(token)])
        expect((yield* amp.counters).obtain).toBe(4)
        // The 429 asked for a second, and the client waited it on the TestClock
        expect(yield* Clock.currentTimeMillis).toBeGreaterThanOrEqual(1_000)
      }).pipe(
        Effect.provide(
          Layer.unwrapEffect(
            Effect.map(MockAmp.MockAmp, (amp) => AuthApi.layer(credentials(amp)))
          ).pipe(Layer.provideMerge(MockAmp.layerHttpClient()))
        )
      ))

    it.scoped("AuthApi cuts a hung login at its request timeout on the TestClock, once per attempt", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        yield* amp.script("obtain", MockFault.hang, MockFault.hang)
        const api = yield* AuthApi.make({
          ...credentials(amp),
          retry: { maxAttempts: 2, baseDelay: Duration.millis(100), maxDelay: Duration.millis(100) },
          requestTimeout: Duration.seconds(5)
        }).pipe(Effect.provideService(HttpClient.HttpClient, amp.httpClient))
        const error = yield* adjustUntilDone(yield* Effect.fork(Effect.flip(api.obtain)), "1 second")
        expect(error).toMatchObject({ _tag: "AuthError", reason: "RequestTimeout" })
        expect((yield* amp.counters).obtain).toBe(2)
        expect(yield* amp.issuedTokens).toEqual([])
      }))

    it.effect("TokenService: login, refresh inside the margin, login again after a revocation", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        yield* Effect.gen(function*() {
          const service = yield* TokenService.TokenService
          const first = yield* service.getToken
          expect(yield* service.getToken).toBe(first)
          expect(yield* amp.counters).toMatchObject({ obtain: 1, refresh: 0 })

          // 24 h tokens, renewed 5 minutes before expiry
          yield* TestClock.adjust(Duration.subtract(Duration.hours(24), Duration.minutes(4)))
          const refreshed = yield* service.getToken
          expect(Redacted.value(refreshed)).not.toBe(Redacted.value(first))
          expect(yield* amp.counters).toMatchObject({ obtain: 1, refresh: 1 })

          yield* amp.revokeAll
          yield* service.forceRefresh
          // The refresh was refused (401), so the service logged in
          expect(yield* amp.counters).toMatchObject({ obtain: 2, refresh: 2, unauthorized: 1 })
          expect(Redacted.value(yield* service.getToken)).toBe((yield* amp.issuedTokens).at(-1))
        }).pipe(Effect.provide(clients(amp)))
      }))

    it.effect("AmpClient: a revoked token is renewed once and the request succeeds", () =>
      Effect.gen(function*() {
        const amp = yield* MockAmp.make()
        yield* Effect.gen(function*() {
          const client = yield* AmpClient.AmpClient
          expect(yield* client.listAssets).toHaveLength(mockAssets.length)
          yield* amp.revokeAll
          expect((yield* client.getAsset(mockAssets[0]!.asset_uuid)).name).toBe(mockAssets[0]!.name)
          // One 401 for the request, one for the refused refresh, then a login
          expect(yield* amp.counters).toMatchObject({ obtain: 2, refresh: 1, assets: 3, unauthorized: 2 })
          const [firstToken, secondToken] = yield* amp.issuedTokens
          const assetCalls = (yield* amp.requests).filter((request) => request.endpoint === "assets")
          expect(assetCalls.map((request) => request.authorization)).toEqual([
            `token ${firstToken}`,
            `token ${firstToken}`,
            `token ${secondToken}`
          ])
          expect(yield* client.info).toEqual(new AmpClient.Info({ version: "mock-1.0" }))
        }).pipe(Effect.provide(clients(amp)))
      }))
  })
})
