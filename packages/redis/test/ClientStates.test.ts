/**
 * The store against a scripted client: the states and event orders a real redis-server does not
 * produce on demand (open but never ready, an answer that never comes, an error then ready at
 * once, a lock holder that cannot be read), and the options of the client the store opens.
 */
import { LogCapture } from "@amp-effect/core/testing"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Option } from "effect"
import { EventEmitter } from "node:events"
import * as internal from "../src/internal/redisTokenStore.js"

/** A client whose answers the test writes; it records what it was sent. */
class ScriptedClient extends EventEmitter implements internal.RedisClient {
  isOpen = true
  isReady = true
  readonly sent: Array<{ readonly args: Array<string>; readonly signal: AbortSignal | undefined }> = []
  constructor(readonly answer: (args: Array<string>) => Promise<unknown> = () => new Promise(() => {})) {
    super()
  }
  sendCommand(args: Array<string>, options?: { abortSignal?: AbortSignal }) {
    this.sent.push({ args, signal: options?.abortSignal })
    return this.answer(args)
  }
  commands() {
    return this.sent.map(({ args }) => args[0])
  }
}

const settings = (overrides?: Partial<internal.Settings>): internal.Settings => ({
  where: "redis://scripted:6379",
  secrets: [],
  account: internal.accountHash("https://amp.example.com/api", "svc"),
  keys: internal.keysFor("scripted", "0123"),
  lockLease: Duration.seconds(10),
  lockTimeout: Duration.millis(300),
  commandTimeout: Duration.millis(100),
  encryptionKeys: [],
  whenUnavailable: "fail",
  ...overrides
})

const refused = (message: string) => () => Promise.reject(new Error(message))

describe("RedisTokenStore against a scripted client", () => {
  it.scopedLive("open but never ready: the command waits its timeout, then Redis is unreachable, no listener left", () =>
    Effect.gen(function*() {
      const client = new ScriptedClient()
      client.isReady = false
      const { link, store } = yield* internal.make(client, settings())
      const listeners = client.listenerCount("ready")
      const error = yield* Effect.flip(store.load)
      // No connection error was ever seen: nothing to quote, no "(undefined)".
      expect(error.reason).toBe("Redis is unreachable")
      expect(link.down).toBe(true)
      expect(client.listenerCount("ready")).toBe(listeners)
      expect(client.sent).toEqual([])
    }))

  it.scopedLive("a command that waited for the client to be ready is answered, and leaves no listener behind", () =>
    Effect.gen(function*() {
      const client = new ScriptedClient(() => Promise.resolve(null))
      client.isReady = false
      const { store } = yield* internal.make(client, settings({ commandTimeout: Duration.minutes(1) }))
      const listeners = client.listenerCount("ready")
      const waiting = yield* Effect.fork(store.load)
      yield* Effect.repeat(Effect.zipRight(Effect.yieldNow(), Effect.sync(() => client.listenerCount("ready"))), {
        until: (count) => count > listeners
      })
      client.isReady = true
      client.emit("ready")
      expect(yield* Fiber.join(waiting)).toEqual(Option.none())
      expect(client.listenerCount("ready")).toBe(listeners)
    }))

  it.scopedLive("a command Redis does not answer is abandoned at its timeout: its abort signal fires", () =>
    Effect.gen(function*() {
      const client = new ScriptedClient()
      const { link, store } = yield* internal.make(client, settings())
      const error = yield* Effect.flip(store.load)
      expect(error.reason).toBe("Redis did not answer GET within 100 ms")
      expect(client.sent.map(({ args, signal }) => [args[0], signal?.aborted])).toEqual([["GET", true]])
      // Slow, not gone: the next command still waits for its answer.
      expect(link.down).toBe(false)
    }))

  it.scopedLive("a lock attempt Redis refuses sends no release; one it did not answer in time does", () =>
    Effect.gen(function*() {
      const client = new ScriptedClient(refused("ERR out of memory"))
      const { store } = yield* internal.make(client, settings())
      const error = yield* Effect.flip(store.withLock(Effect.void))
      expect(error.reason).toBe("Redis answered SET with an error: ERR out of memory")
      yield* Effect.sleep(Duration.millis(50)) // room for a release a forked fiber would send
      expect(client.commands()).toEqual(["SET"])

      const silent = new ScriptedClient((args) => args[0] === "SET" ? new Promise(() => {}) : Promise.resolve(0))
      const timedOut = yield* internal.make(silent, settings())
      yield* Effect.flip(timedOut.store.withLock(Effect.void))
      yield* Effect.sleep(Duration.millis(50))
      expect(silent.commands()).toEqual(["SET", "EVAL"])
    }))

  it.scopedLive("a held lock whose holder cannot be read is held by 'another process'", () =>
    Effect.gen(function*() {
      // SET NX answers null: the lock is held; GET of its owner fails.
      const client = new ScriptedClient((args) => args[0] === "SET" ? Promise.resolve(null) : refused("ERR busy")())
      const { store } = yield* internal.make(client, settings())
      const error = yield* Effect.flip(store.withLock(Effect.void))
      expect(error.reason).toMatch(/^still held by another process after waiting /)
      expect(client.commands()).toContain("GET")
    }))

  it.scopedLive("a first connection that errs and is ready at once is up: not marked down, no warning, no listener left", () =>
    Effect.gen(function*() {
      const client = Object.assign(new ScriptedClient(), {
        connect() {
          client.isReady = false
          client.emit("error", new Error("ECONNRESET"))
          client.isReady = true
          client.emit("ready")
          return Promise.resolve()
        }
      })
      const logs = LogCapture.make()
      const { link } = yield* internal.make(client, settings())
      const listeners = [client.listenerCount("ready"), client.listenerCount("error")]
      yield* logs.provide(internal.connectFirst(link))
      expect(link.down).toBe(false)
      expect(logs.warnings()).toEqual([])
      // Its own listeners went with the first connection; the store's stay.
      expect([client.listenerCount("ready"), client.listenerCount("error")]).toEqual(listeners)
    }))
})

describe("the client the store opens", () => {
  it.scopedLive("fails fast while offline, connects and reconnects on the store's terms, never throws a late error", () =>
    Effect.gen(function*() {
      const client = yield* internal.openClient("redis://127.0.0.1:1", Duration.millis(250))
      expect(client.options?.disableOfflineQueue).toBe(true)
      expect(client.options?.socket).toMatchObject({ connectTimeout: 250, reconnectStrategy: internal.reconnectDelay })
      // No store listens any more (closed first, say): an 'error' event must not throw.
      expect(() => client.emit("error", new Error("late"))).not.toThrow()
    }))
})
