/**
 * The Redis store in one process against a real redis-server: the shared contract, the stored
 * bytes and their time to live, the compare-and-set, the lock (lease, extension, waits, loss),
 * encryption, an unreachable, stalled or forgetful Redis, an application's own client, and the
 * configuration. Fleets of real processes are in `Fleet.test.ts`.
 */
import {
  AmpConfig,
  AuthApi,
  EncryptionKey,
  MockAmp,
  TokenData,
  TokenMetrics,
  TokenService,
  TokenStore
} from "@amp-effect/core"
import { LogCapture, SpanCapture, TokenStoreContract } from "@amp-effect/core/testing"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  ConfigProvider,
  Context,
  DateTime,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  Redacted,
  type Scope,
  TestClock
} from "effect"
import * as Net from "node:net"
import { createClient, RESP_TYPES } from "redis"
import { reconnectDelay, secretsOf, timeoutAfterIo } from "../src/internal/redisTokenStore.js"
import * as RedisConfig from "../src/RedisConfig.js"
import * as RedisMetrics from "../src/RedisMetrics.js"
import * as RedisTokenStore from "../src/RedisTokenStore.js"
import { RedisServer } from "../src/testing/index.js"
import * as SharedServer from "./utils/SharedServer.js"

const { plain, sampleToken, storeContract } = TokenStoreContract
const { withSpans } = SpanCapture

const { account, freshToken, pollUntil } = SharedServer
const { command, freshPrefix, redis, suite } = SharedServer.perFile("test")

const makeStore = (options?: Partial<RedisTokenStore.Options>) =>
  Effect.gen(function*() {
    const keyPrefix = options?.keyPrefix ?? freshPrefix()
    const store = yield* RedisTokenStore.make({ url: redis().url, account, ...options, keyPrefix })
    return { store, keys: RedisTokenStore.keys(account, keyPrefix) }
  })

const counter = (metric: Metric.Metric.Counter<number>, tag?: readonly [string, string]) =>
  Effect.map(Metric.value(tag === undefined ? metric : Metric.tagged(metric, tag[0], tag[1])), (state) => state.count)

/** How much `metric` grew while `effect` ran. */
const growth = <A, E, R>(
  metric: Metric.Metric.Counter<number>,
  tag: readonly [string, string] | undefined,
  effect: Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const before = yield* counter(metric, tag)
    const result = yield* effect
    return { result, grew: (yield* counter(metric, tag)) - before }
  })

// -----------------------------------------------------------------------------
// The contract
// -----------------------------------------------------------------------------

suite("contract", () => {
  storeContract(
    "RedisTokenStore (real redis-server, a key prefix per test)",
    Layer.unwrapEffect(
      Effect.sync(() => RedisTokenStore.layer({ url: redis().url, account, keyPrefix: freshPrefix() }))
    )
  )
})

// -----------------------------------------------------------------------------
// Keys and stored bytes
// -----------------------------------------------------------------------------

suite("RedisTokenStore: keys and stored values", () => {
  it("keys are named from a hash of base URL and username, with one Cluster hash tag", () => {
    const keys = RedisTokenStore.keys(account)
    expect(keys.token).toMatch(/^amp-effect:\{[0-9a-f]{32}\}:token$/)
    expect(keys.lock).toBe(keys.token.replace(/:token$/, ":lock"))
    expect(keys.token).not.toContain("svc-issuer")
    // A trailing slash names the same account; another user or server does not.
    expect(RedisTokenStore.keys({ ...account, baseUrl: `${account.baseUrl}/` })).toEqual(keys)
    expect(RedisTokenStore.keys({ ...account, username: "other" }).token).not.toBe(keys.token)
    expect(RedisTokenStore.keys({ ...account, baseUrl: "https://amp-test.blockstream.com/api" }).token).not.toBe(
      keys.token
    )
    expect(RedisTokenStore.keys(account, "staging/app").token).toMatch(/^staging\/app:\{[0-9a-f]{32}\}:token$/)
  })

  it.scopedLive("save writes a JSON envelope whose key expires with the token", () =>
    Effect.gen(function*() {
      const { keys, store } = yield* makeStore()
      const data = freshToken("eyJ.plain.sig")
      yield* store.save(data)
      const raw = JSON.parse(String(yield* command("GET", keys.token)))
      expect(raw).toEqual({
        v: 1,
        exp: data.expiresAt.epochMillis,
        // A fingerprint of the token, for the compare-and-set: not the token, nor any part of it.
        fp: expect.stringMatching(/^[0-9a-f]{32}$/),
        data: {
          token: "eyJ.plain.sig",
          expires_at: new Date(data.expiresAt.epochMillis).toISOString(),
          obtained_at: new Date(data.obtainedAt.epochMillis).toISOString()
        }
      })
      const expireTime = Number(yield* command("PEXPIRETIME", keys.token))
      expect(Math.abs(expireTime - data.expiresAt.epochMillis)).toBeLessThan(5_000)
      expect(store.description).toBe(`redis ${redis().url} ${keys.token}`)
    }))

  it.scopedLive("a key whose token expired reads as none; an expired token is not written at all", () =>
    Effect.gen(function*() {
      const { keys, store } = yield* makeStore()
      // Expires 300 ms from now: Redis drops the key then.
      yield* store.save(sampleToken("short", Date.now() - 24 * 3600_000 + 300))
      expect(Number(yield* command("PTTL", keys.token))).toBeGreaterThan(0)
      yield* pollUntil(command("PTTL", keys.token), (ttl) => Number(ttl) === -2).pipe(
        Effect.timeout(Duration.seconds(10))
      )
      expect(Option.isNone(yield* store.load)).toBe(true)

      yield* store.save(sampleToken("expired", Date.now() - 25 * 3600_000))
      expect(yield* command("EXISTS", keys.token)).toBe(0)
    }))
})

// -----------------------------------------------------------------------------
// No fleet split: what a renewal saves is what the process serves
// -----------------------------------------------------------------------------

/** A token service over `store` and an AMP that answers logins and refreshes with `tokens`, in order. */
const serviceOver = (
  store: TokenStore.TokenStore["Type"],
  tokens: ReadonlyArray<string>,
  during?: Effect.Effect<void>
) => {
  let calls = 0
  const next = Effect.zipRight(during ?? Effect.void, Effect.sync(() => Redacted.make(tokens[calls++]!)))
  const api = AuthApi.AuthApi.of({ obtain: next, refresh: () => next })
  return TokenService.make().pipe(
    Effect.provide(Layer.merge(Layer.succeed(AuthApi.AuthApi, api), Layer.succeed(TokenStore.TokenStore, store)))
  )
}

const storedValue = (store: TokenStore.TokenStore["Type"]) =>
  Effect.map(store.load, Option.map((data) => Redacted.value(data.token)))

suite("RedisTokenStore: a renewal and the fleet agree on the token", () => {
  // Issue 17: a refresh whose token expired in the same second as the one it replaced (JWT `exp`
  // has whole seconds) was refused by the compare-and-set, and served all the same.
  it.scoped("a refresh expiring in the same second as the token it replaces is saved, and served", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const exp = Math.floor(Date.now() / 1000) + 3600
      const tokens = [MockAmp.jwt({ exp, jti: "login" }), MockAmp.jwt({ exp, jti: "refresh" })]
      const { store } = yield* makeStore()
      const service = yield* serviceOver(store, tokens)
      expect(Redacted.value(yield* service.getToken)).toBe(tokens[0])
      expect(yield* storedValue(store)).toEqual(Option.some(tokens[0]))
      const rejections = yield* growth(RedisMetrics.saveRejections, undefined, service.forceRefresh)
      expect(Redacted.value(rejections.result)).toBe(tokens[1])
      expect(rejections.grew).toBe(0)
      expect(yield* storedValue(store)).toEqual(Option.some(tokens[1]))
      expect(Redacted.value(yield* service.getToken)).toBe(tokens[1])
    }))

  it.scoped("a renewal whose save is refused (another process saved a later token meanwhile) adopts that token", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.now())
      const exp = Math.floor(Date.now() / 1000) + 3600
      const mine = MockAmp.jwt({ exp, jti: "mine" })
      const theirs = MockAmp.jwt({ exp: exp + 60, jti: "theirs" })
      const { keys, store } = yield* makeStore()
      // Another process on the same keys: it took the lock over (this one's lease ran out during
      // its login) and saved its own, later token before this login answered.
      const other = yield* RedisTokenStore.make({ url: redis().url, account, keyPrefix: keys.token.split(":")[0]! })
      const otherSaves = Effect.orDie(Effect.asVoid(
        other.save(TokenData.TokenData.fromToken(Redacted.make(theirs), DateTime.unsafeMake(Date.now())))
      ))
      const service = yield* serviceOver(store, [mine], otherSaves)
      const logs = LogCapture.make()
      const rejections = yield* growth(RedisMetrics.saveRejections, undefined, logs.provide(service.getToken))
      expect(rejections.grew).toBe(1)
      expect(yield* storedValue(store)).toEqual(Option.some(theirs))
      expect(Redacted.value(rejections.result)).toBe(theirs)
      expect(Redacted.value(yield* service.getToken)).toBe(theirs)
      expect(logs.lines.some((line) => line.text.includes(mine.split(".")[1]!))).toBe(false)
    }))
})

// -----------------------------------------------------------------------------
// Compare-and-set
// -----------------------------------------------------------------------------

suite("RedisTokenStore: save is a compare-and-set on the expiry", () => {
  it.scopedLive("an older token never replaces a newer one: refused, counted, warned, never an error", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { store } = yield* makeStore()
      const now = Date.now()
      const newer = sampleToken("newer", now + 60_000)
      yield* store.save(newer)
      const older = yield* growth(RedisMetrics.saveRejections, undefined, logs.provide(store.save(freshToken("older"))))
      expect(older.grew).toBe(1)
      expect(Option.map(yield* store.load, plain)).toEqual(Option.some(plain(newer)))
      expect(logs.warnings().some((line) => line.includes("Kept the token already in Redis"))).toBe(true)
      expect(logs.lines.some((line) => line.text.includes("older") || line.text.includes("newer"))).toBe(false)

      // The same expiry is refused too: the first of two equal tokens stays.
      const same = yield* growth(RedisMetrics.saveRejections, undefined, store.save(sampleToken("same", now + 60_000)))
      expect(same.grew).toBe(1)
      expect(Option.map(yield* store.load, plain)).toEqual(Option.some(plain(newer)))

      const newest = freshToken("newest", 120_000)
      yield* store.save(newest)
      expect(Option.map(yield* store.load, plain)).toEqual(Option.some(plain(newest)))
    }))

  it.scopedLive("a value that is not an envelope is overwritten by the next save, and loads as none meanwhile", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { keys, store } = yield* makeStore()
      yield* command("SET", keys.token, "{\"exp\": \"garbage\", \"token\": \"eyJ.leak.me\"")
      const loaded = yield* growth(RedisMetrics.corrupt, ["reason", "unreadable"], logs.provide(store.load))
      expect(Option.isNone(loaded.result)).toBe(true)
      expect(loaded.grew).toBe(1)
      expect(logs.warnings().some((line) => line.includes("cannot be used") && line.includes(keys.token))).toBe(true)
      expect(logs.warnings().some((line) => line.includes("; treating it as missing, so a new token will be obtained")))
        .toBe(true)
      expect(logs.lines.some((line) => line.text.includes("eyJ.leak.me"))).toBe(false)
      const data = freshToken("replacement")
      yield* store.save(data)
      expect(Option.map(yield* store.load, plain)).toEqual(Option.some(plain(data)))
    }))

  it.scopedLive("works after Redis forgot its scripts (SCRIPT FLUSH, as after a restart)", () =>
    Effect.gen(function*() {
      const { store } = yield* makeStore()
      yield* store.save(freshToken("first"))
      yield* command("SCRIPT", "FLUSH")
      yield* command("CONFIG", "RESETSTAT")
      const second = freshToken("second", 1000)
      yield* store.save(second)
      expect(Option.map(yield* store.load, plain)).toEqual(Option.some(plain(second)))
      const stats = String(yield* command("INFO", "commandstats"))
      // EVALSHA was refused (NOSCRIPT), then EVAL sent the script.
      expect(stats).toMatch(/cmdstat_evalsha:calls=\d+.*failed_calls=1/)
      expect(stats).toMatch(/cmdstat_eval:calls=1,/)
    }))
})

// -----------------------------------------------------------------------------
// Encryption
// -----------------------------------------------------------------------------

suite("RedisTokenStore: encryption at rest", () => {
  const token = "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl"

  it.scopedLive("the stored bytes hold no part of the token; it round-trips", () =>
    Effect.gen(function*() {
      const key = EncryptionKey.generate()
      const { keys, store } = yield* makeStore({ encryptionKey: key })
      const data = freshToken(token)
      yield* store.save(data)
      const raw = String(yield* command("GET", keys.token))
      for (const part of token.split(".")) expect(raw).not.toContain(part)
      expect(raw).not.toContain("expires_at")
      const envelope = JSON.parse(raw)
      expect(Object.keys(envelope).sort()).toEqual(["data", "exp", "fp", "iv", "kid", "v"])
      for (const part of token.split(".")) expect(envelope.fp).not.toContain(part)
      expect(envelope.kid).toBe(yield* EncryptionKey.id(key))
      expect(Option.map(yield* store.load, plain)).toEqual(Option.some(plain(data)))
    }))

  it.scopedLive("a value under an unknown key id, with no key, or tampered, reads as none with a warning", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const keyPrefix = freshPrefix()
      const writer = yield* makeStore({ keyPrefix, encryptionKey: EncryptionKey.generate() })
      yield* writer.store.save(freshToken(token))
      const stranger = EncryptionKey.generate()
      const wrongKey = yield* makeStore({ keyPrefix, encryptionKey: stranger })
      const unknown = yield* growth(RedisMetrics.corrupt, ["reason", "unknown-key"], logs.provide(wrongKey.store.load))
      expect(Option.isNone(unknown.result)).toBe(true)
      expect(unknown.grew).toBe(1)
      const strangerId = yield* EncryptionKey.id(stranger)
      expect(logs.warnings().some((line) => line.includes(`not among the configured keys (${strangerId})`))).toBe(true)

      const noKey = yield* makeStore({ keyPrefix })
      const none = yield* growth(RedisMetrics.corrupt, ["reason", "no-key"], noKey.store.load)
      expect(Option.isNone(none.result)).toBe(true)
      expect(none.grew).toBe(1)

      // exp is bound to the ciphertext: editing it breaks decryption.
      const raw = JSON.parse(String(yield* command("GET", writer.keys.token)))
      yield* command("SET", writer.keys.token, JSON.stringify({ ...raw, exp: raw.exp + 1 }))
      const tampered = yield* growth(RedisMetrics.corrupt, ["reason", "undecryptable"], writer.store.load)
      expect(Option.isNone(tampered.result)).toBe(true)
      expect(tampered.grew).toBe(1)
      expect(logs.lines.some((line) => line.text.includes(token.split(".")[1]!))).toBe(false)
    }))

  it.scopedLive("rotation: the first key encrypts, every key decrypts; a clear value still reads", () =>
    Effect.gen(function*() {
      const keyPrefix = freshPrefix()
      const [oldKey, newKey] = [EncryptionKey.generate(), EncryptionKey.generate()]
      const plainStore = yield* makeStore({ keyPrefix })
      const data = freshToken(token)
      yield* plainStore.store.save(data)
      const before = yield* makeStore({ keyPrefix, encryptionKey: oldKey })
      expect(Option.map(yield* before.store.load, plain)).toEqual(Option.some(plain(data)))
      const later = freshToken(token, 1000)
      yield* before.store.save(later)
      const rotated = yield* makeStore({ keyPrefix, encryptionKey: [newKey, oldKey] })
      expect(Option.map(yield* rotated.store.load, plain)).toEqual(Option.some(plain(later)))
      const latest = freshToken(token, 2000)
      yield* rotated.store.save(latest)
      expect(JSON.parse(String(yield* command("GET", rotated.keys.token))).kid).toBe(yield* EncryptionKey.id(newKey))
    }))
})

// -----------------------------------------------------------------------------
// The lock
// -----------------------------------------------------------------------------

suite("RedisTokenStore: the lock", () => {
  it.scopedLive("is a key with this process as owner and the lease as TTL, deleted on release", () =>
    Effect.gen(function*() {
      const { keys, store } = yield* makeStore({ lockLease: Duration.seconds(5) })
      const seen = yield* store.withLock(Effect.all([command("GET", keys.lock), command("PTTL", keys.lock)]))
      const owner = JSON.parse(String(seen[0]))
      expect(owner.pid).toBe(process.pid)
      expect(typeof owner.host).toBe("string")
      expect(owner.nonce).toMatch(/^[0-9a-z]{14}$/) // the lock kit's nonce, fresh per acquisition
      expect(Number(seen[1])).toBeGreaterThan(0)
      expect(Number(seen[1])).toBeLessThanOrEqual(5000)
      expect(yield* command("EXISTS", keys.lock)).toBe(0)
    }))

  it.scopedLive("the lease is extended while the effect runs, so a renewal longer than the lease keeps it", () =>
    Effect.gen(function*() {
      const lease = 1000
      const { keys, store } = yield* makeStore({ lockLease: Duration.millis(lease) })
      const lost = yield* growth(
        RedisMetrics.lockLost,
        undefined,
        store.withLock(Effect.gen(function*() {
          const taken = Date.now()
          const owner = yield* command("GET", keys.lock)
          // Past two leases: without extension the key would be gone by then.
          const seen = yield* pollUntil(command("GET", keys.lock), () => Date.now() - taken > 2 * lease)
          return { owner, seen, ttl: Number(yield* command("PTTL", keys.lock)) }
        }))
      )
      expect(lost.result.seen).toBe(lost.result.owner)
      expect(lost.result.ttl).toBeGreaterThan(0)
      expect(lost.grew).toBe(0)
    }))

  it.scopedLive("waits for another owner's lock, counting the wait; fails after lockTimeout naming the holder", () =>
    Effect.gen(function*() {
      const { keys, store } = yield* makeStore({ lockTimeout: Duration.millis(400) })
      yield* command("SET", keys.lock, JSON.stringify({ host: "elsewhere", pid: 4242, nonce: "n" }), "PX", "300")
      const waited = yield* growth(TokenMetrics.lockWaits, undefined, store.withLock(Effect.succeed("mine")))
      expect(waited.result).toBe("mine")
      expect(waited.grew).toBe(1)

      yield* command("SET", keys.lock, JSON.stringify({ host: "elsewhere", pid: 4242, nonce: "n" }), "PX", "60000")
      const error = yield* Effect.flip(store.withLock(Effect.succeed("never")))
      expect(error._tag).toBe("TokenStoreError")
      expect(error.operation).toBe("lock")
      expect(error.message).toContain("still held by process 4242 on elsewhere after waiting")
      expect(error.message).toContain(keys.lock)
    }))

  it.scopedLive("a lock lost while held (lease ran out, taken by another) is counted and not deleted", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { keys, store } = yield* makeStore({ lockLease: Duration.seconds(30) })
      const other = JSON.stringify({ host: "elsewhere", pid: 7, nonce: "x" })
      const lost = yield* growth(
        RedisMetrics.lockLost,
        undefined,
        logs.provide(store.withLock(command("SET", keys.lock, other, "PX", "60000")))
      )
      expect(lost.grew).toBe(1)
      expect(yield* command("GET", keys.lock)).toBe(other)
      expect(
        logs.warnings().some((line) =>
          line.includes(`The Redis lock ${keys.lock} was taken over by another process while held`)
        )
      ).toBe(true)
    }))

  it.scopedLive("fibers of one process queue for the lock: never two at once", () =>
    Effect.gen(function*() {
      const { store } = yield* makeStore()
      let inside = 0
      let most = 0
      const critical = Effect.gen(function*() {
        inside++
        most = Math.max(most, inside)
        yield* Effect.sleep(Duration.millis(5))
        inside--
      })
      yield* Effect.all(Array.from({ length: 10 }, () => store.withLock(critical)), { concurrency: "unbounded" })
      expect(most).toBe(1)
    }))
})

// -----------------------------------------------------------------------------
// Redis down, stalled
// -----------------------------------------------------------------------------

suite("RedisTokenStore: Redis unreachable or stalled", () => {
  it.scopedLive("down at start: the store is built; load fails fast; the lock proceeds (warned, counted) or fails", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const port = yield* Effect.promise(() => RedisServer.unusedPort())
      const url = `redis://:hunter2-password@127.0.0.1:${port}`
      const started = Date.now()
      const store = yield* logs.provide(
        RedisTokenStore.make({ url: Redacted.make(url), account, commandTimeout: Duration.seconds(5) })
      )
      const loadError = yield* Effect.flip(store.load)
      expect(loadError.operation).toBe("load")
      expect(loadError.message).toContain("Redis is unreachable")
      expect(loadError.message).toContain("ECONNREFUSED")
      const proceeded = yield* growth(
        RedisMetrics.unavailable,
        ["operation", "lock"],
        logs.provide(store.withLock(Effect.succeed("renewed")))
      )
      expect(proceeded.result).toBe("renewed")
      expect(proceeded.grew).toBe(1)
      expect(logs.warnings().some((line) => line.includes("renewing without it"))).toBe(true)
      // Nothing waited for the 5 s command timeout: the refused connection was enough.
      expect(Date.now() - started).toBeLessThan(4_000)
      expect(store.description).not.toContain("hunter2")
      expect(logs.lines.some((line) => line.text.includes("hunter2"))).toBe(false)
      expect(loadError.message).not.toContain("hunter2")

      const strict = yield* RedisTokenStore.make({ url, account, whenUnavailable: "fail" })
      const lockError = yield* Effect.flip(strict.withLock(Effect.succeed("never")))
      expect(lockError._tag).toBe("TokenStoreError")
      expect(lockError.operation).toBe("lock")
      expect(lockError.message).toContain("Redis is unreachable")
      expect(lockError.message).not.toContain("hunter2")
    }))

  it.scopedLive("stalled (SIGSTOP): commands time out; a late lock is released once Redis answers again", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const own = yield* RedisServer.scoped()
      const keyPrefix = freshPrefix()
      const keys = RedisTokenStore.keys(account, keyPrefix)
      const store = yield* RedisTokenStore.make({
        url: own.url,
        account,
        keyPrefix,
        commandTimeout: Duration.millis(300),
        lockLease: Duration.seconds(60)
      })
      own.pause()
      yield* Effect.addFinalizer(() => Effect.sync(() => own.resume()))
      const loadError = yield* Effect.flip(store.load)
      expect(loadError.message).toContain("did not answer GET within 300 ms")
      expect(yield* logs.provide(store.withLock(Effect.succeed("proceeded")))).toBe("proceeded")
      // Still stalled after another command timeout: the release sent after the SET timed out
      // has timed out too by now, so nothing in this process waits for its answer any more.
      yield* Effect.flip(store.load)
      own.resume()
      // The SET NX ran when Redis woke, and the release queued behind it deleted the lock
      // (its lease is 60 s: only the release can explain its absence within this wait).
      const settled = Effect.all({
        lockSet: Effect.map(
          Effect.promise(() => own.command("INFO", "commandstats")),
          (stats) => /cmdstat_set:calls=1,/.test(String(stats))
        ),
        exists: Effect.promise(() => own.command("EXISTS", keys.lock))
      })
      const seen = yield* pollUntil(settled, ({ exists, lockSet }) => lockSet && exists === 0).pipe(
        Effect.timeout(Duration.seconds(10))
      )
      expect(seen).toEqual({ lockSet: true, exists: 0 })
      expect(logs.warnings().some((line) => line.includes("did not answer SET within 300 ms"))).toBe(true)
      expect(Option.isNone(yield* store.load)).toBe(true)
    }))
})

describe("command timeouts in a process starved of CPU", () => {
  it.scopedLive("an answer that arrived while the process was blocked wins over the timeout that expired meanwhile", () =>
    Effect.gen(function*() {
      // A loopback connection: the far end writes, this end waits for the bytes.
      const server = Net.createServer()
      const accepted = new Promise<Net.Socket>((resolve) => server.once("connection", resolve))
      yield* Effect.promise(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve)))
      yield* Effect.addFinalizer(() => Effect.sync(() => server.close()))
      const client = Net.connect((server.address() as Net.AddressInfo).port, "127.0.0.1")
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const far = yield* Effect.promise(() => accepted)
      const answer = Effect.async<string>((resume) => {
        client.once("data", (data) => resume(Effect.succeed(data.toString())))
      })
      const fiber = Effect.runFork(
        timeoutAfterIo(answer, Duration.millis(100), () => "timed out" as const).pipe(Effect.either)
      )
      // Let both sides of the race start (the timer set, the listener added).
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      far.write("OK") // into this end's socket buffer at once…
      const blockedUntil = Date.now() + 400
      while (Date.now() < blockedUntil) {
        // …while this process is busy for four timeouts: it reads the bytes only afterwards.
      }
      const outcome = yield* Fiber.join(fiber)
      expect(outcome).toEqual(Either.right("OK"))
      // A command that really gets no answer still times out.
      const silent = yield* timeoutAfterIo(Effect.never, Duration.millis(50), () => "timed out" as const).pipe(
        Effect.either
      )
      expect(silent).toEqual(Either.left("timed out"))
    }))
})

// -----------------------------------------------------------------------------
// An application's client
// -----------------------------------------------------------------------------

suite("RedisTokenStore.layerFromClient", () => {
  it.scopedLive("uses the application's client and leaves it open, listeners removed", () =>
    Effect.gen(function*() {
      const client = createClient({ url: redis().url })
      client.on("error", () => {})
      yield* Effect.promise(() => client.connect())
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const listeners = client.listenerCount("error") + client.listenerCount("ready")
      const keyPrefix = freshPrefix()
      const data = freshToken("shared")
      yield* Effect.gen(function*() {
        const store = yield* RedisTokenStore.makeFromClient(client, { account, keyPrefix })
        yield* store.withLock(store.save(data))
        expect(store.description).toContain("an application's client")
      }).pipe(Effect.scoped)
      expect(client.isOpen).toBe(true)
      expect(client.listenerCount("error") + client.listenerCount("ready")).toBe(listeners)
      const reply = JSON.parse(
        String(yield* Effect.promise(() => client.get(RedisTokenStore.keys(account, keyPrefix).token)))
      )
      expect(reply.data.token).toBe("shared")
    }))

  it.scopedLive("a client that was never connected fails with a message that says so", () =>
    Effect.gen(function*() {
      const client = createClient({ url: redis().url })
      const store = yield* RedisTokenStore.makeFromClient(client, { account, keyPrefix: freshPrefix() })
      const error = yield* Effect.flip(store.load)
      expect(error.message).toContain("the Redis client is closed")
    }))
})

// -----------------------------------------------------------------------------
// Spans
// -----------------------------------------------------------------------------

suite("RedisTokenStore: spans", () => {
  it.scopedLive("load, save, withLock and lockWait are spans of store redis", () =>
    Effect.gen(function*() {
      const { keys, store } = yield* makeStore()
      const { spans } = yield* withSpans(store.withLock(Effect.zipRight(store.load, store.save(freshToken("traced")))))
      expect(spans.map((span) => span.name).sort()).toEqual([
        "TokenStore.load",
        "TokenStore.lockWait",
        "TokenStore.save",
        "TokenStore.withLock"
      ])
      expect(spans.every((span) => span.attributes.get("store") === "redis")).toBe(true)
      const load = spans.find((span) => span.name === "TokenStore.load")
      expect(load?.attributes.get("key")).toBe(keys.token)
    }))
})

// -----------------------------------------------------------------------------
// Messages
// -----------------------------------------------------------------------------

suite("RedisTokenStore: what it says", () => {
  it.scopedLive("a lock whose owner value cannot be read is held by 'another process'", () =>
    Effect.gen(function*() {
      for (const value of ["garbage", JSON.stringify({ host: "elsewhere" }), JSON.stringify({ pid: 5 })]) {
        const { keys, store } = yield* makeStore({ lockTimeout: Duration.millis(200) })
        yield* command("SET", keys.lock, value, "PX", "60000")
        const error = yield* Effect.flip(store.withLock(Effect.void))
        expect(error.message).toBe(
          `Could not lock the token in Redis at ${redis().url} (key ${keys.lock}): ` +
            "still held by another process after waiting 200ms"
        )
      }
    }))

  it.scopedLive("an expired token is not saved, with a debug line naming the key", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { keys, store } = yield* makeStore()
      const expired = sampleToken("expired", Date.now() - 25 * 3600_000)
      const held = yield* logs.provide(store.save(expired))
      expect(held).toBe(expired)
      expect(logs.lines.some((line) =>
        line.level === "DEBUG" && line.text.includes(`Not saving an already expired token to Redis (${keys.token})`)
      )).toBe(true)
    }))

  it.scopedLive("a refused save says which token was kept, and answers it", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { keys, store } = yield* makeStore()
      const now = Date.now()
      const newer = sampleToken("newer", now + 60_000)
      const older = sampleToken("older", now)
      yield* store.save(newer)
      const held = yield* logs.provide(store.save(older))
      expect(plain(held)).toEqual(plain(newer))
      expect(logs.warnings()).toEqual([
        expect.stringContaining(
          `Kept the token already in Redis (${keys.token}): it expires at ${
            new Date(plain(newer).expiresAt).toISOString()
          }, not before this process's new one (${new Date(plain(older).expiresAt).toISOString()})`
        )
      ])
    }))

  it.scopedLive("a refused save of a token this process cannot read fails, naming Redis and the key", () =>
    Effect.gen(function*() {
      const { keys, store } = yield* makeStore()
      const sealed = yield* makeStore({ encryptionKey: EncryptionKey.generate(), keyPrefix: keys.token.split(":")[0]! })
      yield* sealed.store.save(freshToken("sealed", 60_000))
      const error = yield* Effect.flip(store.save(freshToken("mine")))
      expect(error).toMatchObject({ _tag: "TokenStoreError", store: "redis", operation: "save" })
      expect(error.message).toContain(`Could not save the token to Redis at ${redis().url} (key ${keys.token})`)
      expect(error.message).toContain("it keeps a token that expires later, which this process cannot read")
    }))

  it("the URL's password, in both its spellings, is what messages must never quote", () => {
    expect(secretsOf("redis://user:p%40ss@cache:6379")).toEqual(["p%40ss", "p@ss"])
    expect(secretsOf("redis://:hunter2@cache:6379")).toEqual(["hunter2"])
    expect(secretsOf("redis://cache:6379")).toEqual([])
    expect(secretsOf("redis://:%E0%A4%A@cache:6379")).toEqual(["%E0%A4%A"])
  })
})

// -----------------------------------------------------------------------------
// Options, defaults, recovery
// -----------------------------------------------------------------------------

/** The message of the defect `effect` dies with. */
const defectOf = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) =>
  Effect.map(
    Effect.exit(Effect.scoped(effect)),
    (exit) =>
      Exit.isFailure(exit)
        ? Option.map(Cause.dieOption(exit.cause), (error) => (error as Error).message)
        : Option.none()
  )

suite("RedisTokenStore: options, defaults and recovery", () => {
  it.scopedLive("invalid options are defects that name the option", () =>
    Effect.gen(function*() {
      const client = createClient({ url: redis().url })
      const fromClient = (options: Partial<RedisTokenStore.StoreOptions>) =>
        defectOf(RedisTokenStore.makeFromClient(client, { account, ...options }))
      expect(yield* fromClient({ lockLease: Duration.zero })).toEqual(
        Option.some("RedisTokenStore: lockLease must be a positive, finite duration")
      )
      expect(yield* fromClient({ commandTimeout: Duration.infinity })).toEqual(
        Option.some("RedisTokenStore: commandTimeout must be a positive, finite duration")
      )
      expect(yield* fromClient({ keyPrefix: "a{b}" })).toEqual(
        Option.some("RedisTokenStore: keyPrefix \"a{b}\" must be 1 to 64 letters, digits or .:_-/")
      )
      expect(yield* fromClient({ lockLease: Duration.millis(1), commandTimeout: Duration.millis(1) })).toEqual(
        Option.none()
      )
      expect(yield* defectOf(RedisTokenStore.make({ url: "http://user:s3cret@cache", account }))).toEqual(
        Option.some("RedisTokenStore: url must be a redis:// or rediss:// URL")
      )
    }))

  it("the client reconnects after 50 ms doubling up to 1 s, each delay jittered by ±25 %", () => {
    const delays = (retries: number) => Array.from({ length: 200 }, () => reconnectDelay(retries))
    for (const [retries, base] of [[0, 50], [1, 100], [4, 800], [5, 1000], [30, 1000]] as const) {
      const seen = delays(retries)
      expect(Math.min(...seen)).toBeGreaterThanOrEqual(Math.round(base * 0.75))
      expect(Math.max(...seen)).toBeLessThanOrEqual(Math.round(base * 1.25))
      // Spread over the range, in whole milliseconds.
      expect(Math.max(...seen) - Math.min(...seen)).toBeGreaterThan(base * 0.3)
      expect(seen.every(Number.isInteger)).toBe(true)
    }
  })

  it.scopedLive("the lock's lease is 10 s unless configured", () =>
    Effect.gen(function*() {
      const { keys, store } = yield* makeStore()
      const ttl = Number(yield* store.withLock(command("PTTL", keys.lock)))
      expect(ttl).toBeGreaterThan(5_000)
      expect(ttl).toBeLessThanOrEqual(10_000)
    }))

  it.scoped("a token expiring at this very millisecond is not written", () =>
    Effect.gen(function*() {
      const { keys, store } = yield* makeStore()
      const data = sampleToken("edge", Date.now())
      yield* TestClock.setTime(data.expiresAt.epochMillis)
      expect(yield* store.save(data)).toBe(data)
      expect(yield* command("EXISTS", keys.token)).toBe(0)
    }))

  it.scopedLive("slow at start (a stalled server): built with a warning, and used once it answers", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const own = yield* RedisServer.scoped()
      own.pause()
      yield* Effect.addFinalizer(() => Effect.sync(() => own.resume()))
      const store = yield* logs.provide(RedisTokenStore.make({ url: own.url, account, commandTimeout: "300 millis" }))
      expect(logs.warnings()).toEqual([
        expect.stringContaining(`Redis at ${own.url} is slow to answer (no connection within 300 ms)`)
      ])
      own.resume()
      const loaded = yield* pollUntil(Effect.either(store.load), Either.isRight).pipe(Effect.timeout("10 seconds"))
      expect(loaded).toEqual(Either.right(Option.none()))
    }))

  it.scopedLive("down at start, then up: load failures are counted, and the store uses Redis once it is back", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() => RedisServer.unusedPort())
      const store = yield* LogCapture.make().provide(
        RedisTokenStore.make({ url: `redis://127.0.0.1:${port}`, account, keyPrefix: freshPrefix() })
      )
      const failed = yield* growth(RedisMetrics.unavailable, ["operation", "load"], Effect.flip(store.load))
      expect(failed.result.operation).toBe("load")
      expect(failed.grew).toBe(1)
      const unsaved = yield* growth(
        RedisMetrics.unavailable,
        ["operation", "save"],
        Effect.flip(store.save(freshToken("x")))
      )
      expect(unsaved.result.operation).toBe("save")
      expect(unsaved.grew).toBe(1)
      yield* RedisServer.scoped({ port })
      yield* pollUntil(Effect.either(store.load), Either.isRight).pipe(Effect.timeout("10 seconds"))
      const data = freshToken("back")
      yield* store.save(data)
      expect(Option.map(yield* store.load, plain)).toEqual(Option.some(plain(data)))
    }))

  it.scopedLive("a client whose replies are buffers (withTypeMapping) fits", () =>
    Effect.gen(function*() {
      const client = createClient({ url: redis().url })
      client.on("error", () => {})
      yield* Effect.promise(() => client.connect())
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const buffers = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer, [RESP_TYPES.SIMPLE_STRING]: Buffer })
      const keyPrefix = freshPrefix()
      const store = yield* RedisTokenStore.makeFromClient(buffers, {
        account,
        keyPrefix,
        lockTimeout: "200 millis",
        encryptionKey: EncryptionKey.generate()
      })
      const data = freshToken("buffered")
      yield* store.withLock(store.save(data))
      expect(Option.map(yield* store.load, plain)).toEqual(Option.some(plain(data)))
      // A refused save reads the kept token from the script's answer, a buffer too.
      expect(plain(yield* store.save(freshToken("older", -60_000)))).toEqual(plain(data))
      const lock = RedisTokenStore.keys(account, keyPrefix).lock
      yield* command("SET", lock, JSON.stringify({ host: "elsewhere", pid: 4242, nonce: "n" }), "PX", "60000")
      const error = yield* Effect.flip(store.withLock(Effect.void))
      expect(error.message).toContain("still held by process 4242 on elsewhere")
    }))

  it.scopedLive("layerConfig reads the key prefix, the encryption key and the account from the environment", () =>
    Effect.gen(function*() {
      const keyPrefix = freshPrefix()
      const key = EncryptionKey.generate()
      const env = ConfigProvider.fromMap(
        new Map([
          ["AMP_REDIS_URL", redis().url],
          ["AMP_REDIS_KEY_PREFIX", keyPrefix],
          ["AMP_TOKEN_ENCRYPTION_KEY", Redacted.value(EncryptionKey.toBase64(key))],
          ["AMP_API_BASE_URL", account.baseUrl],
          ["AMP_USERNAME", account.username]
        ])
      )
      const layer = RedisTokenStore.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(env)))
      const store = Context.get(yield* Layer.build(layer), TokenStore.TokenStore)
      yield* store.save(freshToken("configured"))
      const raw = JSON.parse(String(yield* command("GET", RedisTokenStore.keys(account, keyPrefix).token)))
      expect(raw.kid).toBe(yield* EncryptionKey.id(key))
    }))
})

// -----------------------------------------------------------------------------
// Configuration
// -----------------------------------------------------------------------------

describe("RedisConfig", () => {
  const withEnv = (env: Record<string, string>) =>
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.effect("reads the URL (redacted), the prefix (amp-effect by default) and no key by default", () =>
    Effect.gen(function*() {
      const config = yield* RedisConfig.load.pipe(withEnv({ AMP_REDIS_URL: "redis://:pw@cache:6379/2" }))
      expect(Redacted.value(config.url)).toBe("redis://:pw@cache:6379/2")
      expect(String(config.url)).not.toContain("pw")
      expect(config.keyPrefix).toBe("amp-effect")
      expect(config.encryptionKeys).toEqual([])
      expect(RedisConfig.describeUrl(Redacted.value(config.url))).toBe("redis://cache:6379/2")
    }))

  it.effect("refuses a missing or non-Redis URL without quoting it", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.flip(AmpConfig.read(RedisConfig.url).pipe(withEnv({})))
      expect(missing.message).toContain("AMP_REDIS_URL is not set")
      const wrong = yield* Effect.flip(
        AmpConfig.read(RedisConfig.url).pipe(withEnv({ AMP_REDIS_URL: "http://user:s3cret@cache" }))
      )
      expect(wrong).toBeInstanceOf(AmpConfig.AmpConfigError)
      expect(wrong.message).toContain("AMP_REDIS_URL is invalid: not a Redis URL")
      expect(wrong.message).not.toContain("s3cret")
    }))

  it.effect("refuses a prefix with braces or spaces", () =>
    Effect.gen(function*() {
      for (const prefix of ["a{b}", "has space", "x".repeat(65)]) {
        const error = yield* Effect.flip(
          AmpConfig.read(RedisConfig.keyPrefix).pipe(withEnv({ AMP_REDIS_KEY_PREFIX: prefix }))
        )
        expect(error.variable).toBe("AMP_REDIS_KEY_PREFIX")
      }
      expect(yield* RedisConfig.keyPrefix.pipe(withEnv({ AMP_REDIS_KEY_PREFIX: "prod:issuer" }))).toBe("prod:issuer")
    }))

  it.effect("reads one or several base64 keys of 32 bytes; a bad one is named, never quoted", () =>
    Effect.gen(function*() {
      const [a, b] = [EncryptionKey.generate(), EncryptionKey.generate()]
      const text = `${Redacted.value(EncryptionKey.toBase64(a))}, ${Redacted.value(EncryptionKey.toBase64(b))}`
      const keys = yield* EncryptionKey.config.pipe(withEnv({ AMP_TOKEN_ENCRYPTION_KEY: text }))
      expect(yield* Effect.forEach(keys, EncryptionKey.id)).toEqual([
        yield* EncryptionKey.id(a),
        yield* EncryptionKey.id(b)
      ])
      expect(String(keys[0]!.bytes)).toBe("<redacted>")
      const short = Buffer.alloc(16, 7).toString("base64")
      const error = yield* Effect.flip(
        AmpConfig.read(EncryptionKey.config).pipe(withEnv({ AMP_TOKEN_ENCRYPTION_KEY: `${text},${short}` }))
      )
      expect(error.message).toContain("in key 3 of 3, the key is 16 bytes, expected 32")
      expect(error.message).not.toContain(short)
      const notBase64 = yield* Effect.flip(
        AmpConfig.read(EncryptionKey.config).pipe(withEnv({ AMP_TOKEN_ENCRYPTION_KEY: "not base64!" }))
      )
      expect(notBase64.message).toContain("not base64")
      expect(notBase64.message).not.toContain("not base64!")
    }))

  it.effect("layerConfig needs AMP_USERNAME to name the keys", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Layer.build(RedisTokenStore.layerConfig()).pipe(Effect.scoped, withEnv({ AMP_REDIS_URL: "redis://cache:6379" }))
      )
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) expect(String(exit.cause)).toContain("AMP_USERNAME")
    }))
})
