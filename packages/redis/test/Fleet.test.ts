/**
 * Fleets of real processes sharing one token through a real redis-server, and nothing else: each
 * replica has its own directory, so any sharing goes through Redis. The mock AMP server's
 * counters are the proof of how many logins and refreshes the fleet made.
 *
 * One redis-server serves the scenarios that leave it running (each with its own key prefix);
 * those that restart, stop or pause Redis start their own.
 */
import { EncryptionKey, TokenData } from "@amp-effect/core"
import { MockAmpServer, MockFault } from "@amp-effect/node/MockAmpServer"
import { FleetReplicas } from "@amp-effect/node/test/fleet"
import { describe, expect, it } from "@effect/vitest"
import { DateTime, Duration, Effect, Fiber, Redacted, type Scope } from "effect"
import { build } from "esbuild"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll } from "vitest"
import * as RedisTokenStore from "../src/RedisTokenStore.js"
import { RedisServer } from "../src/testing/index.js"

RedisServer.warnIfSkipped()

let shared: RedisServer.RedisServer | undefined
let bundle = ""

beforeAll(async () => {
  if (RedisServer.unavailable !== undefined) return
  ;[shared, bundle] = await Promise.all([
    RedisServer.start(),
    FleetReplicas.bundle(build, fileURLToPath(new URL("fixtures/replica.ts", import.meta.url)))
  ])
}, 120_000)

afterAll(async () => {
  await shared?.stop()
  if (bundle !== "") await Fs.rm(Path.dirname(bundle), { recursive: true, force: true })
})

const suite = RedisServer.unavailable === undefined ? describe : describe.skip

let prefixes = 0
const freshPrefix = () => `fleet-${process.pid}-${prefixes++}`

/** What a replica needs to find AMP (the mock server) and Redis. */
const envFor = (
  server: MockAmpServer.Service,
  redis: RedisServer.RedisServer | string,
  keyPrefix: string,
  extra: Record<string, string> = {}
) => ({
  AMP_API_BASE_URL: server.baseUrl,
  AMP_USERNAME: MockAmpServer.defaultCredentials.username,
  AMP_PASSWORD: MockAmpServer.defaultCredentials.password,
  AMP_REDIS_URL: typeof redis === "string" ? redis : redis.url,
  AMP_REDIS_KEY_PREFIX: keyPrefix,
  ...extra
})

const account = (server: MockAmpServer.Service) => ({
  baseUrl: server.baseUrl,
  username: MockAmpServer.defaultCredentials.username
})

/** The token Redis holds for the mock account under `keyPrefix` (stored in clear), or null. */
const storedToken = (redis: RedisServer.RedisServer, server: MockAmpServer.Service, keyPrefix: string) =>
  Effect.promise(async () => {
    const raw = await redis.command("GET", RedisTokenStore.keys(account(server), keyPrefix).token)
    return raw === null ? null : (JSON.parse(String(raw)).data.token as string)
  })

const lockExists = (redis: RedisServer.RedisServer, server: MockAmpServer.Service, keyPrefix: string) =>
  Effect.promise(() => redis.command("EXISTS", RedisTokenStore.keys(account(server), keyPrefix).lock))

/** Obtains a token from the mock server directly, as another client would have. */
const obtainDirectly = (server: MockAmpServer.Service) =>
  Effect.promise(() =>
    fetch(`${server.baseUrl}/user/obtain_token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(MockAmpServer.defaultCredentials)
    }).then((response) => response.json() as Promise<{ token: string }>)
  )

const fleetTest = <E>(name: string, body: () => Effect.Effect<void, E, Scope.Scope>) =>
  it.scopedLive(name, body, 90_000)

suite("fleet: one token for many processes through Redis", () => {
  fleetTest(
    "1, 2. 16 processes: nothing stored → one login; all inside the refresh margin → one refresh",
    () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const keyPrefix = freshPrefix()
        const replicas = yield* FleetReplicas.startMany(bundle, 16, envFor(server, shared!, keyPrefix))
        let started = Date.now()
        const tokens = yield* FleetReplicas.tokens(replicas, "get")
        const cold = yield* server.counters
        console.log(`scenario 1: 16 processes, nothing stored: ${JSON.stringify(cold)} in ${Date.now() - started} ms`)
        expect(cold.obtain).toBe(1)
        expect(cold.refresh).toBe(0)
        expect(new Set(tokens).size).toBe(1)
        expect(yield* server.issuedTokens).toEqual([tokens[0]])
        expect(yield* storedToken(shared!, server, keyPrefix)).toBe(tokens[0])
        expect(yield* lockExists(shared!, server, keyPrefix)).toBe(0)

        // A day later, as a fleet that ran all along sees it: every replica's token is three
        // minutes from expiry, inside the five-minute margin. The refreshed token lives 48 hours,
        // so that it is outside the margin by their clocks.
        yield* server.setTokenLifetime(Duration.hours(48))
        yield* FleetReplicas.all(replicas, `clock ${24 * 3600_000 - 3 * 60_000}`)
        started = Date.now()
        const refreshed = yield* FleetReplicas.tokens(replicas, "get")
        const warm = yield* server.counters
        console.log(`scenario 2: 16 processes, token in margin: ${JSON.stringify(warm)} in ${Date.now() - started} ms`)
        expect(warm.refresh).toBe(1)
        expect(warm.obtain).toBe(1) // still the one login of the cold start
        expect(new Set(refreshed).size).toBe(1)
        expect(refreshed[0]).not.toBe(tokens[0])
        expect(yield* storedToken(shared!, server, keyPrefix)).toBe(refreshed[0])
        expect(yield* lockExists(shared!, server, keyPrefix)).toBe(0)
        for (const replica of replicas) expect(replica.warnings()).toEqual([])
        expect(yield* FleetReplicas.printedTokens(replicas, server)).toEqual([])
      })
  )

  fleetTest(
    "2'. processes starting with a stored token inside the margin: one refresh, no login",
    () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make({ tokenLifetime: Duration.minutes(2) })
        const keyPrefix = freshPrefix()
        const old = yield* obtainDirectly(server)
        // Two minutes left: inside the default five-minute margin, still refreshable.
        const store = yield* RedisTokenStore.make({ url: shared!.url, account: account(server), keyPrefix })
        yield* store.save(TokenData.TokenData.fromToken(Redacted.make(old.token), DateTime.unsafeMake(Date.now())))
        yield* server.setTokenLifetime(Duration.hours(24))
        yield* server.resetCounters
        const replicas = yield* FleetReplicas.startMany(bundle, 3, envFor(server, shared!, keyPrefix))
        const tokens = yield* FleetReplicas.tokens(replicas, "get")
        const counters = yield* server.counters
        expect(counters.refresh).toBe(1)
        expect(counters.obtain).toBe(0)
        expect(new Set(tokens).size).toBe(1)
        expect(tokens[0]).not.toBe(old.token)
        expect(yield* storedToken(shared!, server, keyPrefix)).toBe(tokens[0])
      })
  )

  fleetTest(
    "3. the lock holder is SIGKILLed mid-login: another renews after the lease; 2 logins; no lock left",
    () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const keyPrefix = freshPrefix()
        const env = envFor(server, shared!, keyPrefix, { LOCK_LEASE_MS: "1000" })
        // The holder's login never gets an answer: it is killed while waiting for it.
        yield* server.script("obtain", MockFault.hang)
        const holder = yield* FleetReplicas.start(bundle, env)
        yield* Effect.fork(holder.send("get"))
        yield* FleetReplicas.pollUntil(server.counters, (counters) => counters.obtain === 1)
        expect(yield* lockExists(shared!, server, keyPrefix)).toBe(1)
        yield* holder.kill
        const killedAt = Date.now()

        const replicas = yield* FleetReplicas.startMany(bundle, 3, env)
        const tokens = yield* FleetReplicas.tokens(replicas, "get")
        const counters = yield* server.counters
        console.log(
          `scenario 3: holder killed mid-login, 3 processes: ${JSON.stringify(counters)}, ${
            Date.now() - killedAt
          } ms after the kill`
        )
        expect(counters.obtain).toBe(2) // the dead holder's, then one for everyone else
        expect(new Set(tokens).size).toBe(1)
        expect(yield* storedToken(shared!, server, keyPrefix)).toBe(tokens[0])
        expect(yield* lockExists(shared!, server, keyPrefix)).toBe(0)
      })
  )

  fleetTest(
    "4. a holder whose lease ran out during a slow login cannot overwrite the newer token",
    () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const keyPrefix = freshPrefix()
        const env = envFor(server, shared!, keyPrefix, { LOCK_LEASE_MS: "500", API_REQUEST_TIMEOUT_SECONDS: "120" })
        yield* server.script("obtain", MockFault.delay(Duration.seconds(2)))
        const slow = yield* FleetReplicas.start(bundle, env)
        const slowAnswer = yield* Effect.fork(slow.send("get"))
        yield* FleetReplicas.pollUntil(server.counters, (counters) => counters.obtain === 1)
        // Paused mid-login: its lease extension stops with it, and the lease runs out.
        slow.process.kill("SIGSTOP")
        yield* Effect.addFinalizer(() => Effect.sync(() => slow.process.kill("SIGCONT")))
        yield* FleetReplicas.pollUntil(
          Effect.all([server.issuedTokens, lockExists(shared!, server, keyPrefix)]),
          ([issued, lock]) => issued.length === 1 && lock === 0
        )
        const [slowToken] = yield* server.issuedTokens

        const taker = yield* FleetReplicas.start(bundle, env)
        const [takerToken] = yield* FleetReplicas.tokens([taker], "get")
        expect(takerToken).not.toBe(slowToken)
        expect(yield* storedToken(shared!, server, keyPrefix)).toBe(takerToken)

        slow.process.kill("SIGCONT")
        const late = yield* Fiber.join(slowAnswer)
        // Its save refused, it serves the token the fleet holds, not its own (issue 17).
        expect(late.token).toBe(takerToken)
        const metrics = yield* FleetReplicas.metrics(slow)
        console.log(
          `scenario 4: ${JSON.stringify(yield* server.counters)}; the late holder's metrics: ${
            JSON.stringify({
              rejections: metrics["amp_token_redis_save_rejections_total"],
              lockLost: metrics["amp_token_redis_lock_lost_total"]
            })
          }`
        )
        expect(metrics["amp_token_redis_save_rejections_total"]).toBe(1)
        expect(metrics["amp_token_redis_lock_lost_total"]).toBe(1)
        expect(yield* storedToken(shared!, server, keyPrefix)).toBe(takerToken)
        expect((yield* server.counters).obtain).toBe(2)
        expect(slow.warnings().some((line) => line.includes("Kept the token already in Redis"))).toBe(true)
        expect(yield* FleetReplicas.printedTokens([slow, taker], server)).toEqual([])
      })
  )

  fleetTest(
    "5. Redis restarted mid-renewal (its scripts gone): the renewal and the next ones still work",
    () =>
      Effect.gen(function*() {
        const redis = yield* RedisServer.scoped()
        const server = yield* MockAmpServer.make()
        const keyPrefix = freshPrefix()
        const env = envFor(server, redis, keyPrefix, { LOCK_LEASE_MS: "600", COMMAND_TIMEOUT_MS: "5000" })
        yield* server.script("obtain", MockFault.delay(Duration.millis(1500)))
        const first = yield* FleetReplicas.start(bundle, env)
        const answer = yield* Effect.fork(FleetReplicas.tokens([first], "get"))
        yield* FleetReplicas.pollUntil(server.counters, (counters) => counters.obtain === 1)
        yield* Effect.promise(() => redis.restart())
        const [token] = yield* Fiber.join(answer)
        // Saved into the restarted Redis, which had to be sent the scripts again.
        expect(yield* storedToken(redis, server, keyPrefix)).toBe(token)
        expect(String(yield* Effect.promise(() => redis.command("INFO", "commandstats")))).toMatch(
          /cmdstat_eval:calls=/
        )
        expect((yield* FleetReplicas.metrics(first))["amp_token_redis_lock_lost_total"]).toBe(1)

        const second = yield* FleetReplicas.start(bundle, env)
        expect(yield* FleetReplicas.tokens([second], "get")).toEqual([token])
        const [refreshed] = yield* FleetReplicas.tokens([first], "refresh")
        expect(refreshed).not.toBe(token)
        expect(yield* storedToken(redis, server, keyPrefix)).toBe(refreshed)
        const counters = yield* server.counters
        console.log(`scenario 5: Redis restarted mid-login: ${JSON.stringify(counters)}`)
        expect(counters.obtain).toBe(1)
        expect(counters.refresh).toBe(1)
        expect(yield* lockExists(redis, server, keyPrefix)).toBe(0)
      })
  )

  fleetTest(
    "6. Redis down at start: tokens served from a local login, failures counted; Redis back: used again",
    () =>
      Effect.gen(function*() {
        const port = yield* Effect.promise(() => RedisServer.unusedPort())
        const server = yield* MockAmpServer.make()
        const keyPrefix = freshPrefix()
        const env = envFor(server, `redis://127.0.0.1:${port}`, keyPrefix, { COMMAND_TIMEOUT_MS: "1000" })
        const replica = yield* FleetReplicas.start(bundle, env)
        const [token] = yield* FleetReplicas.tokens([replica], "get")
        const down = yield* FleetReplicas.metrics(replica)
        expect(down["amp_token_persistence_failures_total{operation=load}"]).toBeGreaterThanOrEqual(1)
        expect(down["amp_token_persistence_failures_total{operation=save}"]).toBe(1)
        expect(down["amp_token_redis_unavailable_total{operation=lock}"]).toBe(1)
        expect(replica.warnings().some((line) => line.includes("renewing without it"))).toBe(true)

        const redis = yield* RedisServer.scoped({ port })
        // The replica reconnects on its own: wait until it has (it and this test's connection).
        yield* FleetReplicas.pollUntil(
          Effect.promise(() => redis.command("INFO", "clients")),
          (info) => Number(/connected_clients:(\d+)/.exec(String(info))?.[1]) >= 2
        )
        const [renewed] = yield* FleetReplicas.tokens([replica], "refresh")
        expect(renewed).not.toBe(token)
        expect(yield* storedToken(redis, server, keyPrefix)).toBe(renewed)
        const back = yield* FleetReplicas.metrics(replica)
        expect(back["amp_token_redis_unavailable_total{operation=lock}"]).toBe(1)
        expect(back["amp_token_persistence_failures_total{operation=save}"]).toBe(1)
        const counters = yield* server.counters
        console.log(`scenario 6: Redis down at start, then back: ${JSON.stringify(counters)}`)
        expect(counters.obtain).toBe(1)
        expect(counters.refresh).toBe(1)
      })
  )

  fleetTest(
    "7. Redis stalled: a valid token answers at once; a renewal times out and a valid token is served",
    () =>
      Effect.gen(function*() {
        const redis = yield* RedisServer.scoped()
        const server = yield* MockAmpServer.make()
        const keyPrefix = freshPrefix()
        const commandTimeout = 2000
        const base = { COMMAND_TIMEOUT_MS: String(commandTimeout), LOCK_LEASE_MS: "30000" }
        const proceeding = yield* FleetReplicas.start(bundle, envFor(server, redis, keyPrefix, base))
        const failing = yield* FleetReplicas.start(
          bundle,
          envFor(server, redis, keyPrefix, { ...base, WHEN_UNAVAILABLE: "fail" })
        )
        const [token] = yield* FleetReplicas.tokens([proceeding], "get")
        expect(yield* FleetReplicas.tokens([failing], "get")).toEqual([token])

        redis.pause()
        yield* Effect.addFinalizer(() => Effect.sync(() => redis.resume()))
        const hot = yield* proceeding.send("get")
        expect(hot.token).toBe(token)
        // The hot path never reaches Redis: had it, it would have waited for the command timeout.
        expect(hot.ms).toBeLessThan(commandTimeout / 2)

        // Three minutes before expiry by their clocks: inside the five-minute refresh margin.
        const ahead = String(24 * 3600_000 - 3 * 60_000)
        yield* FleetReplicas.all([proceeding, failing], `clock ${ahead}`)
        const kept = yield* failing.send("get")
        expect(kept.token).toBe(token)
        expect(kept.ms).toBeGreaterThanOrEqual(commandTimeout * 0.9)
        expect(failing.warnings().some((line) => line.includes("Could not renew the AMP token"))).toBe(true)
        const renewed = yield* proceeding.send("get")
        expect(renewed.error).toBeUndefined()
        expect(renewed.token).not.toBe(token)
        expect(proceeding.warnings().some((line) => line.includes("renewing without it"))).toBe(true)
        const counters = yield* server.counters
        console.log(`scenario 7: Redis stalled: ${JSON.stringify(counters)}; hot getToken ${hot.ms!.toFixed(3)} ms`)
        expect(counters.obtain).toBe(1)
        expect(counters.refresh).toBe(1)

        redis.resume()
        // Once each replica's earlier commands are answered, the locks their late SETs took are
        // released (the lease is 30 s: only the releases can explain their absence).
        yield* FleetReplicas.all([proceeding, failing], "load")
        expect(yield* lockExists(redis, server, keyPrefix)).toBe(0)
      })
  )

  fleetTest("8. the key's TTL matches the token's expiry; an expired key reads as none", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      const keyPrefix = freshPrefix()
      const env = envFor(server, shared!, keyPrefix)
      const replica = yield* FleetReplicas.start(bundle, env)
      const [token] = yield* FleetReplicas.tokens([replica], "get")
      const exp = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).exp * 1000
      const keys = RedisTokenStore.keys(account(server), keyPrefix)
      const expireTime = Number(yield* Effect.promise(() => shared!.command("PEXPIRETIME", keys.token)))
      expect(Math.abs(expireTime - exp)).toBeLessThan(1000)

      // A token with two seconds to live: its key goes with it, and the store reads none.
      yield* server.setTokenLifetime(Duration.seconds(2))
      const shortPrefix = freshPrefix()
      const shortLived = yield* FleetReplicas.start(bundle, envFor(server, shared!, shortPrefix))
      const [short] = yield* FleetReplicas.tokens([shortLived], "get")
      expect(yield* shortLived.send("load")).toEqual({ op: "load", token: short })
      const shortKey = RedisTokenStore.keys(account(server), shortPrefix).token
      yield* FleetReplicas.pollUntil(
        Effect.promise(() => shared!.command("PTTL", shortKey)),
        (ttl) => Number(ttl) === -2
      )
      const gone = yield* shortLived.send("load")
      expect(gone).toEqual({ op: "load", token: null })
      expect(short).not.toBe(token)
      const counters = yield* server.counters
      console.log(`scenario 8: TTL off by ${Math.abs(expireTime - exp)} ms; ${JSON.stringify(counters)}`)
      expect(counters.obtain).toBe(2)
    }))

  fleetTest(
    "9. encryption: the stored bytes hold no token; a wrong key means a warning and a fresh login",
    () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const keyPrefix = freshPrefix()
        const key = EncryptionKey.generate()
        const keyId = yield* EncryptionKey.id(key)
        const env = envFor(server, shared!, keyPrefix, {
          AMP_TOKEN_ENCRYPTION_KEY: Redacted.value(EncryptionKey.toBase64(key))
        })
        const replicas = yield* FleetReplicas.startMany(bundle, 2, env)
        const tokens = yield* FleetReplicas.tokens(replicas, "get")
        expect(new Set(tokens).size).toBe(1)
        const raw = String(
          yield* Effect.promise(() => shared!.command("GET", RedisTokenStore.keys(account(server), keyPrefix).token))
        )
        for (const part of tokens[0]!.split(".")) expect(raw).not.toContain(part)
        expect(JSON.parse(raw).kid).toBe(keyId)

        const stranger = yield* FleetReplicas.start(bundle, {
          ...env,
          AMP_TOKEN_ENCRYPTION_KEY: Redacted.value(EncryptionKey.toBase64(EncryptionKey.generate()))
        })
        const [own] = yield* FleetReplicas.tokens([stranger], "get")
        expect(own).not.toBe(tokens[0])
        expect(stranger.warnings().some((line) => line.includes(`encrypted with key id ${keyId}`))).toBe(true)
        const metrics = yield* FleetReplicas.metrics(stranger)
        expect(metrics["amp_token_redis_corrupt_total{reason=unknown-key}"]).toBeGreaterThanOrEqual(1)
        const counters = yield* server.counters
        console.log(`scenario 9: encrypted fleet of 2, then a wrong key: ${JSON.stringify(counters)}`)
        expect(counters.obtain).toBe(2)
        expect(yield* FleetReplicas.printedTokens([...replicas, stranger], server)).toEqual([])
      })
  )
})
