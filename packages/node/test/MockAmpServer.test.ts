import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Scope, TestClock } from "effect"
import * as Http from "node:http"
import { MockAmpServer, mockAssets, MockFault } from "../src/MockAmpServer.js"

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

const send = (url: string, init?: RequestInit): Effect.Effect<Answer> =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    return { status: response.status, headers: response.headers, text: await response.text() }
  })

/** The rejection of a request that is expected to fail at the transport level. */
const sendFailure = (url: string, init?: RequestInit): Effect.Effect<unknown> =>
  Effect.tryPromise({ try: () => fetch(url, init), catch: (error) => error }).pipe(
    Effect.flatMap((response) => Effect.dieMessage(`expected a transport error, got HTTP ${response.status}`)),
    Effect.flip
  )

const obtain = (baseUrl: string, username = "mock_user", password = "mock_pass") =>
  send(`${baseUrl}/user/obtain_token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password })
  })

const obtainToken = (baseUrl: string) =>
  Effect.map(obtain(baseUrl), (answer) => {
    expect(answer.status).toBe(200)
    return (JSON.parse(answer.text) as { token: string }).token
  })

const withToken = (token: string) => ({ headers: { authorization: `token ${token}` } })

const refresh = (baseUrl: string, token: string) => send(`${baseUrl}/user/refresh-token`, withToken(token))

const decodeSegment = (segment: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(segment, "base64url").toString("utf8"))

const payloadOf = (token: string) => decodeSegment(token.split(".")[1]!)

/** Waits (in real time) until the server has received `n` requests in total. */
const awaitTotal = (server: MockAmpServer.Service, n: number) =>
  Effect.promise(async () => {
    for (;;) {
      if ((await Effect.runPromise(server.counters)).total >= n) return
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })

/**
 * The error code of a GET on a brand-new connection (`agent: false`), so a
 * keep-alive socket the client has not yet noticed is closed cannot mask the result.
 */
const freshConnectionErrorCode = (url: string): Effect.Effect<string | undefined> =>
  Effect.async((resume) => {
    const request = Http.get(url, { agent: false }, (response) => {
      response.resume()
      resume(Effect.succeed(undefined))
    })
    request.on("error", (error: NodeJS.ErrnoException) => resume(Effect.succeed(error.code)))
  })

describe("MockAmpServer", () => {
  describe("obtain_token", () => {
    it.scoped("issues a JWT-shaped token for the right credentials, with exp - iat = lifetime", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        expect(server.baseUrl).toBe(`http://127.0.0.1:${server.port}/api`)
        const token = yield* obtainToken(server.baseUrl)
        const parts = token.split(".")
        expect(parts).toHaveLength(3)
        expect(decodeSegment(parts[0]!)).toEqual({ typ: "JWT", alg: "HS256" })
        const payload = payloadOf(token)
        expect(payload.sub).toBe("mock_user")
        // Under TestClock "now" is 0
        expect(payload.iat).toBe(0)
        expect(payload.exp).toBe(24 * 60 * 60)
        expect(typeof payload.jti).toBe("string")
        expect(Buffer.from(parts[2]!, "base64url").length).toBeGreaterThan(0)
      }))

    it.scoped("follows the TestClock and the configured lifetime and credentials", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make({ username: "alice", password: "s3cret", tokenLifetime: "10 minutes" })
        yield* TestClock.adjust("1 hour")
        // The default credentials are not accepted when others are configured
        expect((yield* obtain(server.baseUrl)).status).toBe(400)
        const answer = yield* obtain(server.baseUrl, "alice", "s3cret")
        expect(answer.status).toBe(200)
        const payload = payloadOf((JSON.parse(answer.text) as { token: string }).token)
        expect(payload.sub).toBe("alice")
        expect(payload.iat).toBe(3600)
        expect(payload.exp).toBe(3600 + 600)

        yield* server.setTokenLifetime("90 seconds")
        const changed = yield* obtain(server.baseUrl, "alice", "s3cret")
        const changedPayload = payloadOf((JSON.parse(changed.text) as { token: string }).token)
        expect(Number(changedPayload.exp) - Number(changedPayload.iat)).toBe(90)
      }))

    it.scoped("rejects wrong credentials and malformed bodies with 400", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const wrong = yield* obtain(server.baseUrl, "mock_user", "nope")
        expect(wrong.status).toBe(400)
        expect(JSON.parse(wrong.text)).toEqual({ non_field_errors: ["Unable to log in with provided credentials."] })

        const notJson = yield* send(`${server.baseUrl}/user/obtain_token`, { method: "POST", body: "{oops" })
        expect(notJson.status).toBe(400)
        const missingField = yield* send(`${server.baseUrl}/user/obtain_token`, {
          method: "POST",
          body: JSON.stringify({ username: "mock_user" })
        })
        expect(missingField.status).toBe(400)
        expect(JSON.parse(missingField.text)).toHaveProperty("password")

        const wrongMethod = yield* send(`${server.baseUrl}/user/obtain_token`)
        expect(wrongMethod.status).toBe(405)

        expect(yield* server.issuedTokens).toEqual([])
        expect((yield* server.counters).obtain).toBe(4)
      }))

    it.scoped("omits exp when issueExp is false", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make({ issueExp: false })
        const payload = payloadOf(yield* obtainToken(server.baseUrl))
        expect(payload).not.toHaveProperty("exp")
        expect(payload.iat).toBe(0)
        expect(payload.sub).toBe("mock_user")
      }))

    it.scoped("issues a unique token every time and records each one", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const tokens = yield* Effect.all(Array.from({ length: 200 }, () => obtainToken(server.baseUrl)), {
          concurrency: "unbounded"
        })
        expect(new Set(tokens).size).toBe(200)
        expect(new Set(tokens.map((token) => payloadOf(token).jti)).size).toBe(200)
        expect([...(yield* server.issuedTokens)].sort()).toEqual([...tokens].sort())
        const counters = yield* server.counters
        expect(counters.obtain).toBe(200)
        expect(counters.total).toBe(200)
      }))
  })

  describe("refresh-token", () => {
    it.scoped("exchanges a valid token for a new one; the old one stays valid", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const token = yield* obtainToken(server.baseUrl)
        yield* TestClock.adjust("1 hour")
        const answer = yield* refresh(server.baseUrl, token)
        expect(answer.status).toBe(200)
        const renewed = (JSON.parse(answer.text) as { token: string }).token
        expect(renewed).not.toBe(token)
        expect(payloadOf(renewed).iat).toBe(3600)
        expect(payloadOf(renewed).exp).toBe(3600 + 86400)
        expect((yield* refresh(server.baseUrl, token)).status).toBe(200)
        expect((yield* refresh(server.baseUrl, renewed)).status).toBe(200)
        const counters = yield* server.counters
        expect(counters).toEqual({
          obtain: 1,
          refresh: 3,
          info: 0,
          assets: 0,
          changelog: 0,
          unauthorized: 0,
          total: 4
        })
        expect(yield* server.issuedTokens).toHaveLength(4)
      }))

    it.scoped("answers 401 to garbage, missing, Bearer-scheme and unknown tokens", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const token = yield* obtainToken(server.baseUrl)
        const url = `${server.baseUrl}/user/refresh-token`

        const garbage = yield* send(url, withToken("garbage"))
        expect(garbage.status).toBe(401)
        expect(JSON.parse(garbage.text)).toEqual({ detail: "Invalid token." })

        // A well-formed JWT this server never issued
        const forged = `${token.split(".").slice(0, 2).join(".")}.c2lnbmF0dXJl`
        expect((yield* send(url, withToken(forged))).status).toBe(401)

        expect((yield* send(url)).status).toBe(401)
        expect((yield* send(url, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401)
        // The keyword is case-insensitive, as in Django REST framework
        expect((yield* send(url, { headers: { authorization: `Token ${token}` } })).status).toBe(200)

        const counters = yield* server.counters
        expect(counters.unauthorized).toBe(4)
        expect(counters.refresh).toBe(5)
      }))

    it.scoped("rejects a token once the TestClock reaches its expiry", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make({ tokenLifetime: "1 hour" })
        const token = yield* obtainToken(server.baseUrl)
        yield* TestClock.adjust(Duration.subtract(Duration.hours(1), Duration.millis(1)))
        const lastMoment = yield* refresh(server.baseUrl, token)
        expect(lastMoment.status).toBe(200)
        const renewed = (JSON.parse(lastMoment.text) as { token: string }).token

        yield* TestClock.adjust("1 millis")
        const expired = yield* refresh(server.baseUrl, token)
        expect(expired.status).toBe(401)
        expect(JSON.parse(expired.text)).toEqual({ detail: "Invalid token." })
        // The token issued just before is still good
        expect((yield* refresh(server.baseUrl, renewed)).status).toBe(200)
      }))

    it.scoped("expires tokens without exp on the server's lifetime too", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make({ issueExp: false, tokenLifetime: "2 hours" })
        const token = yield* obtainToken(server.baseUrl)
        yield* TestClock.adjust("119 minutes")
        expect((yield* refresh(server.baseUrl, token)).status).toBe(200)
        yield* TestClock.adjust("1 minute")
        expect((yield* refresh(server.baseUrl, token)).status).toBe(401)
      }))

    it.scoped("revokeAll invalidates every token issued so far, not later ones", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const first = yield* obtainToken(server.baseUrl)
        const second = yield* obtainToken(server.baseUrl)
        yield* server.revokeAll
        expect((yield* refresh(server.baseUrl, first)).status).toBe(401)
        expect((yield* refresh(server.baseUrl, second)).status).toBe(401)
        expect((yield* send(`${server.baseUrl}/assets/`, withToken(second))).status).toBe(401)
        const third = yield* obtainToken(server.baseUrl)
        expect((yield* refresh(server.baseUrl, third)).status).toBe(200)
        expect((yield* server.counters).unauthorized).toBe(3)
      }))
  })

  describe("other endpoints", () => {
    it.scoped("serves info without auth, assets and changelog with auth, 404 otherwise", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const info = yield* send(`${server.baseUrl}/info`)
        expect(info.status).toBe(200)
        expect(JSON.parse(info.text)).toEqual({ version: "mock-1.0" })

        expect((yield* send(`${server.baseUrl}/assets/`)).status).toBe(401)
        expect((yield* send(`${server.baseUrl}/changelog`)).status).toBe(401)

        const token = yield* obtainToken(server.baseUrl)
        const list = yield* send(`${server.baseUrl}/assets/`, withToken(token))
        expect(list.status).toBe(200)
        const assets = JSON.parse(list.text) as ReadonlyArray<{ asset_uuid: string; ticker: string }>
        expect(assets).toEqual(mockAssets)
        expect(assets.length).toBeGreaterThanOrEqual(2)

        const one = yield* send(`${server.baseUrl}/assets/${assets[1]!.asset_uuid}`, withToken(token))
        expect(one.status).toBe(200)
        expect(JSON.parse(one.text)).toEqual(mockAssets[1])

        const unknownAsset = yield* send(
          `${server.baseUrl}/assets/00000000-0000-0000-0000-000000000000`,
          withToken(token)
        )
        expect(unknownAsset.status).toBe(404)

        const changelog = yield* send(`${server.baseUrl}/changelog`, withToken(token))
        expect(changelog.status).toBe(200)
        expect(typeof JSON.parse(changelog.text)).toBe("object")

        expect((yield* send(`${server.baseUrl}/nope`)).status).toBe(404)
        expect((yield* send(`http://127.0.0.1:${server.port}/info`)).status).toBe(404)

        expect(yield* server.counters).toEqual({
          obtain: 1,
          refresh: 0,
          info: 1,
          assets: 4,
          changelog: 2,
          unauthorized: 2,
          total: 10
        })
        yield* server.resetCounters
        expect(yield* server.counters).toEqual({
          obtain: 0,
          refresh: 0,
          info: 0,
          assets: 0,
          changelog: 0,
          unauthorized: 0,
          total: 0
        })
      }))

    it.scoped("survives malformed percent-escapes in the path", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const token = yield* obtainToken(server.baseUrl)
        expect((yield* send(`${server.baseUrl}/assets/%E0%A4%A`, withToken(token))).status).toBe(404)
        expect((yield* send(`${server.baseUrl}/info`)).status).toBe(200)
      }))
  })

  describe("scripted faults", () => {
    it.scoped("are consumed in order, then the endpoint behaves normally", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        yield* server.script(
          "obtain",
          MockFault.rateLimited("7"),
          MockFault.status(503),
          MockFault.malformed("{\"token\":"),
          { _tag: "Status", status: 500, body: "boom", headers: { "Content-Type": "text/plain" } }
        )
        // Faults are per endpoint: info is unaffected
        expect((yield* send(`${server.baseUrl}/info`)).status).toBe(200)

        const limited = yield* obtain(server.baseUrl)
        expect(limited.status).toBe(429)
        expect(limited.headers.get("retry-after")).toBe("7")

        const unavailable = yield* obtain(server.baseUrl)
        expect(unavailable.status).toBe(503)
        expect(unavailable.headers.get("retry-after")).toBeNull()

        const malformed = yield* obtain(server.baseUrl)
        expect(malformed.status).toBe(200)
        expect(malformed.text).toBe("{\"token\":")
        expect(() => JSON.parse(malformed.text)).toThrow()

        const custom = yield* obtain(server.baseUrl)
        expect(custom.status).toBe(500)
        expect(custom.text).toBe("boom")
        expect(custom.headers.get("content-type")).toBe("text/plain")

        expect((yield* obtain(server.baseUrl)).status).toBe(200)
        expect((yield* server.counters).obtain).toBe(5)
        // Faulted requests issue no token
        expect(yield* server.issuedTokens).toHaveLength(1)
      }))

    it.scoped("Reset drops the connection, which the client sees as a transport error", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        yield* server.script("refresh", MockFault.reset)
        const token = yield* obtainToken(server.baseUrl)
        const error = yield* sendFailure(`${server.baseUrl}/user/refresh-token`, withToken(token))
        expect(error).toBeInstanceOf(TypeError)
        expect((yield* refresh(server.baseUrl, token)).status).toBe(200)
        expect((yield* server.counters).refresh).toBe(2)
      }))

    it.scoped("clearScript drops pending faults", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        yield* server.script("info", MockFault.status(502), MockFault.status(502))
        expect((yield* send(`${server.baseUrl}/info`)).status).toBe(502)
        yield* server.clearScript
        expect((yield* send(`${server.baseUrl}/info`)).status).toBe(200)
      }))

    it.scopedLive("Delay answers normally after the delay without blocking other requests", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        yield* server.script("info", MockFault.delay("400 millis"))
        const started = Date.now()
        const delayed = yield* Effect.fork(
          Effect.map(send(`${server.baseUrl}/info`), (answer) => ({ answer, at: Date.now() - started }))
        )
        yield* awaitTotal(server, 1)
        const quick = yield* send(`${server.baseUrl}/info`)
        const quickAt = Date.now() - started
        expect(quick.status).toBe(200)
        expect(quickAt).toBeLessThan(300)
        const { answer, at } = yield* Fiber.join(delayed)
        expect(answer.status).toBe(200)
        expect(JSON.parse(answer.text)).toEqual({ version: "mock-1.0" })
        expect(at).toBeGreaterThanOrEqual(390)
      }))

    it.scoped("Delay follows the TestClock of the fiber that created the server", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        yield* server.script("info", MockFault.delay("1 hour"))
        const fiber = yield* Effect.fork(send(`${server.baseUrl}/info`))
        yield* awaitTotal(server, 1)
        // Real time passes, TestClock time does not: still no answer
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 100)))
        expect((yield* Fiber.poll(fiber))._tag).toBe("None")
        yield* TestClock.adjust("1 hour")
        expect((yield* Fiber.join(fiber)).status).toBe(200)
      }))

    it.scopedLive("latency delays obtain and refresh only", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make({ latency: "250 millis" })
        let started = Date.now()
        const token = yield* obtainToken(server.baseUrl)
        expect(Date.now() - started).toBeGreaterThanOrEqual(240)
        started = Date.now()
        expect((yield* send(`${server.baseUrl}/info`)).status).toBe(200)
        expect(Date.now() - started).toBeLessThan(200)
        yield* server.setLatency("0 millis")
        started = Date.now()
        expect((yield* refresh(server.baseUrl, token)).status).toBe(200)
        expect(Date.now() - started).toBeLessThan(200)
      }))

    it.live("Hang never answers; closing the scope ends the request and the server", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const server = yield* Scope.extend(MockAmpServer.make(), scope)
        yield* server.script("info", MockFault.hang)
        const hung = yield* Effect.fork(sendFailure(`${server.baseUrl}/info`))
        yield* awaitTotal(server, 1)
        // Other requests are still served while one hangs
        expect((yield* send(`${server.baseUrl}/info`)).status).toBe(200)
        yield* Effect.sleep("100 millis")
        expect((yield* Fiber.poll(hung))._tag).toBe("None")

        yield* Scope.close(scope, Exit.void)
        const error = yield* Fiber.join(hung).pipe(Effect.timeout("5 seconds"))
        expect(error).toBeInstanceOf(TypeError)

        expect(yield* freshConnectionErrorCode(`${server.baseUrl}/info`)).toBe("ECONNREFUSED")
      }))
  })

  describe("lifecycle", () => {
    it.live("the server refuses connections once its scope is closed", () =>
      Effect.gen(function*() {
        const { baseUrl, token } = yield* Effect.scoped(
          Effect.gen(function*() {
            const server = yield* MockAmpServer.make()
            // While running, a fresh connection succeeds (so the check below can fail)
            expect(yield* freshConnectionErrorCode(`${server.baseUrl}/info`)).toBeUndefined()
            const token = yield* obtainToken(server.baseUrl)
            // Keep a keep-alive connection open to make sure close also cuts idle connections
            expect((yield* refresh(server.baseUrl, token)).status).toBe(200)
            return { baseUrl: server.baseUrl, token }
          })
        )
        expect(yield* freshConnectionErrorCode(`${baseUrl}/info`)).toBe("ECONNREFUSED")
        // The client's pooled keep-alive connection was cut too: reusing it fails as well
        expect(yield* sendFailure(`${baseUrl}/user/refresh-token`, withToken(token))).toBeInstanceOf(TypeError)
      }))

    it.live("layer provides a running server", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer
        expect((yield* send(`${server.baseUrl}/info`)).status).toBe(200)
        expect((yield* server.counters).info).toBe(1)
      }).pipe(Effect.provide(MockAmpServer.layer())))

    it.scoped("servers in the same scope are independent", () =>
      Effect.gen(function*() {
        const a = yield* MockAmpServer.make()
        const b = yield* MockAmpServer.make({ password: "other" })
        expect(a.port).not.toBe(b.port)
        const token = yield* obtainToken(a.baseUrl)
        expect((yield* obtain(b.baseUrl)).status).toBe(400)
        expect((yield* refresh(b.baseUrl, token)).status).toBe(401)
        expect((yield* a.counters).obtain).toBe(1)
        expect((yield* b.counters).obtain).toBe(1)
      }))

    it.scopedLive("counts exactly under heavy concurrency", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const n = 500
        const answers = yield* Effect.all(
          Array.from({ length: n }, (_, i) => i % 2 === 0 ? send(`${server.baseUrl}/info`) : obtain(server.baseUrl)),
          { concurrency: "unbounded" }
        )
        expect(answers.filter((answer) => answer.status === 200)).toHaveLength(n)
        expect(yield* server.counters).toEqual({
          obtain: n / 2,
          refresh: 0,
          info: n / 2,
          assets: 0,
          changelog: 0,
          unauthorized: 0,
          total: n
        })
        expect(new Set(yield* server.issuedTokens).size).toBe(n / 2)
      }))
  })
})
