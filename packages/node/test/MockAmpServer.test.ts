/**
 * The mock AMP over a real socket: what only TCP can show. The routes, tokens, faults and
 * counters themselves are tested in memory in `@amp-effect/core`'s `MockAmp.test.ts`; here the
 * same app is checked on the wire (status lines, headers, bodies), and what needs a connection:
 * a real reset, a hang held until the server's scope closes, closed keep-alive connections,
 * hundreds of concurrent connections, and time that follows the creating fiber's `TestClock`.
 *
 * Nothing here depends on how fast the machine is: events are ordered by the server's counters
 * and by answers, time is the TestClock's, and wall-clock limits only catch a hang.
 */
import { MockAmp } from "@amp-effect/core"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Option, Scope, TestClock, Tracer } from "effect"
import * as Http from "node:http"
import * as Os from "node:os"
import * as MockAmpServerModule from "../src/MockAmpServer.js"
import { MockAmpServer, MockFault } from "../src/MockAmpServer.js"

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

const payloadOf = (token: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8"))

/** Waits (in real time, without a bound: vitest's timeout is the bound) until the server has received `n` requests. */
const awaitTotal = (server: MockAmpServer.Service, n: number) =>
  Effect.promise(async () => {
    for (;;) {
      if ((await Effect.runPromise(server.counters)).total >= n) return
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })

/**
 * Waits (in real time, unbounded) until `n` sleeps wait on the TestClock: the server has
 * started its delays, so moving the clock now wakes them.
 */
const awaitSleeps = (n: number) =>
  Effect.gen(function*() {
    while (Chunk.size(yield* TestClock.sleeps()) < n) {
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
    }
  })

/**
 * The error code of a GET on a brand-new connection (`agent: false`), so a keep-alive socket
 * the client has not yet noticed is closed cannot mask the result.
 */
const freshConnectionErrorCode = (url: string): Effect.Effect<string | undefined> =>
  Effect.async((resume) => {
    const request = Http.get(url, { agent: false }, (response) => {
      response.resume()
      resume(Effect.succeed(undefined))
    })
    request.on("error", (error: NodeJS.ErrnoException) => resume(Effect.succeed(error.code)))
  })

/** A generous limit that only catches a hang: it says nothing about speed. */
const noHang = "20 seconds"

describe("MockAmpServer", () => {
  describe("on the wire", () => {
    it.scoped("speaks AMP's HTTP at baseUrl: status lines, JSON bodies, DRF's 400/401/404/405", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        expect(server.baseUrl).toBe(`http://127.0.0.1:${server.port}/api`)

        const login = yield* obtain(server.baseUrl)
        expect(login.status).toBe(200)
        expect(login.headers.get("content-type")).toBe("application/json")
        const token = (JSON.parse(login.text) as { token: string }).token
        // Under TestClock "now" is 0
        expect(payloadOf(token)).toMatchObject({ sub: "mock_user", iat: 0, exp: 24 * 60 * 60 })

        const wrong = yield* obtain(server.baseUrl, "mock_user", "nope")
        expect(wrong.status).toBe(400)
        expect(JSON.parse(wrong.text)).toEqual({ non_field_errors: ["Unable to log in with provided credentials."] })
        expect((yield* send(`${server.baseUrl}/user/obtain_token`, { method: "POST", body: "{oops" })).status).toBe(400)
        expect((yield* send(`${server.baseUrl}/user/obtain_token`)).status).toBe(405)

        const renewed = yield* refresh(server.baseUrl, token)
        expect(renewed.status).toBe(200)
        const rejected = yield* send(`${server.baseUrl}/user/refresh-token`, {
          headers: { authorization: `Bearer ${token}` }
        })
        expect(rejected.status).toBe(401)
        expect(rejected.headers.get("www-authenticate")).toBe("Token")
        expect(JSON.parse(rejected.text)).toEqual({ detail: "Authentication credentials were not provided." })

        const assets = yield* send(`${server.baseUrl}/assets`, withToken(token))
        expect(JSON.parse(assets.text)).toEqual(MockAmp.mockAssets)
        expect((yield* send(`${server.baseUrl}/info/`)).status).toBe(200)
        expect((yield* send(`${server.baseUrl}/assets/%E0%A4%A`, withToken(token))).status).toBe(404)
        expect((yield* send(`http://127.0.0.1:${server.port}/info`)).status).toBe(404)

        expect(yield* server.counters).toEqual({
          obtain: 4,
          refresh: 2,
          info: 1,
          assets: 1,
          changelog: 0,
          unauthorized: 1,
          total: 10
        })
        const [first, second] = yield* server.requests
        expect(first).toEqual({
          endpoint: "obtain",
          method: "POST",
          url: `${server.baseUrl}/user/obtain_token`,
          authorization: undefined
        })
        expect(second).toMatchObject({ endpoint: "obtain", method: "POST" })
      }))

    it.scoped("Reset drops the connection, which the client sees as a transport error", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        yield* server.script("refresh", MockFault.reset)
        const token = yield* obtainToken(server.baseUrl)
        const error = yield* sendFailure(`${server.baseUrl}/user/refresh-token`, withToken(token))
        expect(error).toBeInstanceOf(TypeError)
        // A reset (RST), not a polite close (FIN, which undici reports as "other side closed")
        expect((error as TypeError).cause).toMatchObject({ code: "ECONNRESET" })
        expect((yield* refresh(server.baseUrl, token)).status).toBe(200)
        expect((yield* server.counters).refresh).toBe(2)
        expect(yield* server.issuedTokens).toHaveLength(2)
      }))

    it.scoped("Delay and latency follow the TestClock of the fiber that made the server, blocking no one else", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make({ latency: "1 hour" })
        yield* server.script("info", MockFault.delay("2 hours"))
        const delayed = yield* Effect.fork(send(`${server.baseUrl}/info`))
        yield* awaitSleeps(1)
        const login = yield* Effect.fork(obtainToken(server.baseUrl))
        yield* awaitSleeps(2)
        // Real time passes while this request is answered; TestClock time does not
        expect((yield* send(`${server.baseUrl}/info`)).status).toBe(200)
        expect(Option.isNone(yield* Fiber.poll(delayed))).toBe(true)
        expect(Option.isNone(yield* Fiber.poll(login))).toBe(true)

        yield* TestClock.adjust("1 hour")
        const token = yield* Fiber.join(login)
        expect(payloadOf(token).iat).toBe(3600)
        expect(Option.isNone(yield* Fiber.poll(delayed))).toBe(true)
        yield* TestClock.adjust("1 hour")
        const answer = yield* Fiber.join(delayed)
        expect(answer.status).toBe(200)
        expect(JSON.parse(answer.text)).toEqual({ version: "mock-1.0" })
      }))

    it.scoped("makes no spans in the tracer of the fiber that made it: it plays a remote server", () =>
      Effect.gen(function*() {
        const names: Array<string> = []
        const base = yield* Effect.tracer
        const recording = Tracer.make({
          span: (...args) => {
            names.push(args[0])
            return base.span(...args)
          },
          context: (f, fiber) => base.context(f, fiber)
        })
        const server = yield* MockAmpServer.make().pipe(Effect.withTracer(recording))
        expect((yield* send(`${server.baseUrl}/info`)).status).toBe(200)
        expect((yield* obtain(server.baseUrl)).status).toBe(200)
        expect(names).toEqual([])
      }))
  })

  describe("lifecycle", () => {
    it.live("Hang never answers; closing the scope ends the request and the server", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const server = yield* Scope.extend(MockAmpServer.make(), scope)
        yield* server.script("info", MockFault.hang)
        const hung = yield* Effect.fork(sendFailure(`${server.baseUrl}/info`))
        yield* awaitTotal(server, 1)
        // Other requests are still served while one hangs, and it still hangs afterwards
        expect((yield* send(`${server.baseUrl}/info`)).status).toBe(200)
        expect(Option.isNone(yield* Fiber.poll(hung))).toBe(true)

        // Closing must not wait for the hung connection
        yield* Scope.close(scope, Exit.void).pipe(
          Effect.disconnect,
          Effect.timeoutFail({ duration: noHang, onTimeout: () => "closing the server hung" })
        )
        const error = yield* Fiber.join(hung).pipe(Effect.timeoutFail({ duration: noHang, onTimeout: () => "hang" }))
        expect(error).toBeInstanceOf(TypeError)

        expect(yield* freshConnectionErrorCode(`${server.baseUrl}/info`)).toBe("ECONNREFUSED")
      }))

    it.live("the server refuses connections once its scope is closed, keep-alive ones included", () =>
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
        ).pipe(Effect.timeoutFail({ duration: noHang, onTimeout: () => "close hung" }))
        expect(yield* freshConnectionErrorCode(`${baseUrl}/info`)).toBe("ECONNREFUSED")
        // The client's pooled keep-alive connection was cut too: reusing it fails as well
        expect(yield* sendFailure(`${baseUrl}/user/refresh-token`, withToken(token))).toBeInstanceOf(TypeError)
      }))

    it.live("MockAmpServer.layer(), the module's layer() and make() provide running servers", () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer
        expect((yield* send(`${server.baseUrl}/info`)).status).toBe(200)
        expect((yield* server.counters).info).toBe(1)

        const other = yield* Effect.provide(MockAmpServer, MockAmpServerModule.layer({ password: "other" }))
        // The layer was released on the way out: its server is gone
        expect(yield* freshConnectionErrorCode(`${other.baseUrl}/info`)).toBe("ECONNREFUSED")

        const third = yield* Effect.scoped(
          Effect.flatMap(MockAmpServerModule.make(), (made) => Effect.as(obtain(made.baseUrl), made))
        )
        expect((yield* third.counters).obtain).toBe(1)
        expect(MockAmpServer.defaultCredentials).toEqual({ username: "mock_user", password: "mock_pass" })
      }).pipe(Effect.provide(MockAmpServer.layer())))

    // The machine's own address on another interface (none on a loopback-only machine).
    const external = Object.values(Os.networkInterfaces()).flat().find((address) =>
      address !== undefined && !address.internal && address.family === "IPv4"
    )?.address

    it.live.skipIf(external === undefined)(
      "listens on the loopback interface only",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const server = yield* MockAmpServer.make()
          expect(yield* freshConnectionErrorCode(`${server.baseUrl}/info`)).toBeUndefined()
          expect(yield* freshConnectionErrorCode(`http://${external}:${server.port}/api/info`)).toBe("ECONNREFUSED")
        }))
    )

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

    it.scopedLive("counts exactly and issues unique tokens under heavy concurrency", () =>
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
        const tokens = answers.filter((_, i) => i % 2 === 1).map((answer) => JSON.parse(answer.text).token as string)
        expect(new Set(tokens).size).toBe(n / 2)
        expect([...(yield* server.issuedTokens)].sort()).toEqual([...tokens].sort())
      }))
  })
})
