/**
 * The Redis store and its connection, against real redis-servers: a command Redis refuses, a
 * Redis gone after start (waited for, then failed fast, then used again), and passwords kept
 * out of the connection errors a message quotes.
 */
import { LogCapture, SpanCapture } from "@amp-effect/core/testing"
import { expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Fiber, Metric, Option } from "effect"
import { createClient } from "redis"
import * as RedisMetrics from "../src/RedisMetrics.js"
import * as RedisTokenStore from "../src/RedisTokenStore.js"
import { RedisServer } from "../src/testing/index.js"
import * as SharedServer from "./utils/SharedServer.js"

const { account, freshToken, pollUntil } = SharedServer

const { command, freshPrefix, redis, suite } = SharedServer.perFile("connection")

const count = (metric: Metric.Metric.Counter<number>, operation: string) =>
  Effect.map(Metric.value(Metric.tagged(metric, "operation", operation)), (state) => state.count)

suite("RedisTokenStore: what Redis answers", () => {
  it.scopedLive("a command Redis refuses fails with Redis's own answer, naming the command", () =>
    Effect.gen(function*() {
      const keyPrefix = freshPrefix()
      const keys = RedisTokenStore.keys(account, keyPrefix)
      const store = yield* RedisTokenStore.make({ url: redis().url, account, keyPrefix })
      // Saved once, Redis knows the script: EVALSHA's error is no NOSCRIPT, so no EVAL follows.
      yield* store.save(freshToken("first"))
      yield* command("DEL", keys.token)
      yield* command("RPUSH", keys.token, "not a string")
      const before = yield* count(RedisMetrics.unavailable, "load")
      const loadError = yield* Effect.flip(store.load)
      expect((yield* count(RedisMetrics.unavailable, "load")) - before).toBe(1)
      expect(loadError.message).toContain("Redis answered GET with an error: WRONGTYPE")
      const saveError = yield* Effect.flip(store.save(freshToken("refused")))
      expect(saveError.operation).toBe("save")
      expect(saveError.message).toContain("Redis answered EVALSHA with an error: WRONGTYPE")
    }))
})

suite("RedisTokenStore: keys, removal, a missing key, closing", () => {
  it("a base URL with trailing slashes names the same account's keys", () => {
    expect(RedisTokenStore.keys({ ...account, baseUrl: `${account.baseUrl}//` })).toEqual(RedisTokenStore.keys(account))
  })

  it.scopedLive("a missing key loads as none, quietly; remove deletes the key in a span of its own", () =>
    Effect.gen(function*() {
      const keyPrefix = freshPrefix()
      const keys = RedisTokenStore.keys(account, keyPrefix)
      const store = yield* RedisTokenStore.make({ url: redis().url, account, keyPrefix })
      const logs = LogCapture.make()
      const corrupt = yield* Metric.value(RedisMetrics.corrupt)
      expect(yield* logs.provide(store.load)).toEqual(Option.none())
      expect(logs.lines).toEqual([])
      expect(yield* Metric.value(RedisMetrics.corrupt)).toEqual(corrupt)
      yield* store.save(freshToken("removed"))
      const { spans } = yield* SpanCapture.withSpans(store.remove)
      expect(spans.map((span) => span.name)).toEqual(["TokenStore.remove"])
      expect(yield* command("EXISTS", keys.token)).toBe(0)
    }))

  it.scopedLive("the store's own client is closed with its scope", () =>
    Effect.gen(function*() {
      const own = yield* RedisServer.scoped()
      const clients = Effect.map(
        Effect.promise(() => own.command("CLIENT", "LIST")),
        (list) => String(list).trim().split("\n").length
      )
      const alone = yield* clients // the inspecting client itself
      yield* Effect.scoped(Effect.gen(function*() {
        yield* RedisTokenStore.make({ url: own.url, account })
        expect(yield* clients).toBe(alone + 1)
      }))
      expect(yield* pollUntil(clients, (n) => n === alone).pipe(Effect.timeout("10 seconds"))).toBe(alone)
    }))
})

suite("RedisTokenStore: Redis gone after start", () => {
  it.scopedLive("a command waits for a reconnection within its timeout; once Redis stayed away, the next fail at once", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() => RedisServer.unusedPort())
      const first = yield* Effect.promise(() => RedisServer.start({ port }))
      const store = yield* RedisTokenStore.make({
        url: first.url,
        account,
        keyPrefix: freshPrefix(),
        commandTimeout: Duration.seconds(2)
      })
      expect(yield* store.load).toEqual(Option.none())
      // Killed, then back (without its data) while a load waits: the load is answered.
      yield* Effect.promise(() => first.stop())
      yield* Effect.sleep(Duration.millis(300)) // the client sees the connection closed
      const waiting = yield* Effect.fork(store.load)
      const second = yield* Effect.promise(() => RedisServer.start({ port }))
      expect(yield* Fiber.join(waiting)).toEqual(Option.none())

      // Killed for good: the first load waits out its timeout, the next fails at once.
      yield* Effect.promise(() => second.stop())
      yield* Effect.sleep(Duration.millis(300))
      const timed = Effect.gen(function*() {
        const started = Date.now()
        const error = yield* Effect.flip(store.load)
        return { error, took: Date.now() - started }
      })
      const waited = yield* timed
      expect(waited.took).toBeGreaterThanOrEqual(1_900)
      expect(waited.error.message).toContain("Redis is unreachable (")
      const atOnce = yield* timed
      expect(atOnce.took).toBeLessThan(1_000)
      expect(atOnce.error.message).toContain("Redis is unreachable (")
      expect(atOnce.error.message).toContain("ECONNREFUSED")
      const removeError = yield* Effect.flip(store.remove)
      expect(removeError.operation).toBe("remove")
      expect(removeError.message).toContain("Redis is unreachable (")

      // Back: used again once the client reconnects.
      yield* RedisServer.scoped({ port })
      const back = yield* pollUntil(Effect.either(store.load), Either.isRight).pipe(Effect.timeout("10 seconds"))
      expect(back).toEqual(Either.right(Option.none()))
    }))
})

suite("RedisTokenStore: an application's client during an outage", () => {
  it.scopedLive("a command that gave up waiting for the client leaves no listener behind", () =>
    Effect.gen(function*() {
      const own = yield* Effect.promise(() => RedisServer.start())
      const client = createClient({ url: own.url, socket: { reconnectStrategy: 100 } })
      client.on("error", () => {})
      yield* Effect.promise(() => client.connect())
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const store = yield* RedisTokenStore.makeFromClient(client, {
        account,
        keyPrefix: freshPrefix(),
        commandTimeout: Duration.millis(500)
      })
      const listeners = client.listenerCount("ready")
      yield* Effect.promise(() => own.stop())
      yield* pollUntil(Effect.sync(() => client.isReady), (ready) => !ready)
      expect((yield* Effect.flip(store.load)).message).toContain("Redis is unreachable")
      expect(client.listenerCount("ready")).toBe(listeners)
    }))
})

suite("RedisTokenStore: passwords in connection errors", () => {
  it.scopedLive("a password quoted by a connection error is redacted, unless too short to be one", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() => RedisServer.unusedPort())
      // Passwords that the refusal's own text contains (connect ECONNREFUSED 127.0.0.1:<port>).
      const logs = LogCapture.make()
      const reasonWith = (password: string) =>
        Effect.gen(function*() {
          const store = yield* logs.provide(
            RedisTokenStore.make({ url: `redis://:${password}@127.0.0.1:${port}`, account })
          )
          return (yield* Effect.flip(store.load)).message
        })
      expect(yield* reasonWith("ECONNREFUSED")).toContain("Redis is unreachable (connect <redacted> 127.0.0.1")
      expect(yield* reasonWith("REFU")).toContain("(connect ECONN<redacted>SED 127.0.0.1")
      // Spelled with an escape in the URL: its decoded form is the one a message would quote.
      expect(yield* reasonWith("ECONN%52EFUSED")).toContain("(connect <redacted> 127.0.0.1")
      // Three characters or fewer would garble every message: kept.
      expect(yield* reasonWith("127")).toContain(`(connect ECONNREFUSED 127.0.0.1:${port})`)
      // The warning at start quotes the same refusal, as redacted as the error.
      expect(logs.warnings()).toContainEqual(expect.stringContaining(
        `Could not connect to Redis at redis://127.0.0.1:${port} (connect <redacted> 127.0.0.1:${port}); `
      ))
      // Refused at start: said once per store, with what happens meanwhile.
      expect(logs.warnings()).toContainEqual(expect.stringContaining(
        `Could not connect to Redis at redis://127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port}); ` +
          "reconnecting in the background, and renewing tokens without it meanwhile"
      ))
    }))
})
