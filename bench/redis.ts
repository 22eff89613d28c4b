/**
 * The Redis token store (`@amp-effect/redis`), against a throwaway `redis-server` started here
 * (on a free loopback port, persistence off; the sections fail with a note when none is
 * installed):
 *
 * - redis-fleet: 16 children (`node redisChild.mjs`, `bench/redisChild.ts` built and run on the
 *   built packages as an application installs them: `BuiltApp`), each in a directory of
 *   its own — they share no disk, only Redis — start at once with nothing stored; the store's
 *   lock should let exactly one of them log in.
 * - redis-hot-path: cached `getToken` with the Redis store against the memory store, side by
 *   side: the hot path never reaches the store, so they should be the same within 10 %.
 */
import { TokenService, TokenStore } from "@amp-effect/core"
import { MockAmpServer } from "@amp-effect/node/MockAmpServer"
import { RedisTokenStore } from "@amp-effect/redis"
import { RedisServer } from "@amp-effect/redis/testing"
import { Duration, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as BuiltApp from "./builtApp.js"
import {
  type Figure,
  type FigureResult,
  interleaved,
  medianOver,
  mockCredentials,
  report,
  round,
  runChild,
  serviceLayer,
  target
} from "./harness.js"

const processCount = 16
const callsPerSample = 2_000

/** A throwaway redis-server for the scope (loopback, a free port, persistence off): the tests' own. */
const redisServer = RedisServer.unavailable === undefined
  ? RedisServer.scoped()
  : Effect.dieMessage(RedisServer.unavailable)

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-bench-replica-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

export const runFleet = Effect.gen(function*() {
  const redis = yield* redisServer
  const server = yield* MockAmpServer.make({ latency: Duration.millis(50) })
  const dirs = yield* Effect.all(Array.from({ length: processCount }, () => tempDir))
  const script = (yield* BuiltApp.make(["redisChild.ts"]))("redisChild.ts")
  const started = performance.now()
  const runs = yield* Effect.forEach(dirs, (dir) =>
    Effect.tryPromise({
      try: () =>
        runChild([script], {
          env: {
            AMP_API_BASE_URL: server.baseUrl,
            AMP_USERNAME: mockCredentials.username,
            AMP_PASSWORD: mockCredentials.password,
            AMP_REDIS_URL: redis.url,
            AMP_REDIS_KEY_PREFIX: "bench",
            HOME: dir,
            TMPDIR: dir
          },
          timeoutMs: 300_000
        }),
      catch: (error) => error
    }), { concurrency: "unbounded" })
  const wallMs = performance.now() - started
  const counters = yield* server.counters
  const slowest = Math.max(
    ...runs.map((run) => Number(run.lines.find((line) => "fromMainMs" in line)?.["fromMainMs"]))
  )
  const warnings = runs.flatMap((run) => run.lines.flatMap((line) => "warning" in line ? [String(line.warning)] : []))
  const figures: Array<Figure> = [
    target(
      `redis fleet: logins (${processCount} processes, no shared disk, one Redis)`,
      counters.obtain,
      "calls",
      "==",
      1
    ),
    report(`redis fleet: wall time (${processCount} at once, process start-up included)`, round(wallMs), "ms"),
    report("redis fleet: slowest child, from main to its token", round(slowest), "ms")
  ]
  const notes = counters.obtain === 1 ? [] : [
    `redis fleet: ${counters.obtain} of ${processCount} processes logged in: the Redis lock did not serialise ` +
    `their first renewal (RedisTokenStore withLock)${
      warnings.length === 0 ? "" : `; warnings: ${warnings.join(" | ")}`
    }`
  ]
  return { figures, notes } satisfies FigureResult
}).pipe(Effect.scoped)

/** `callsPerSample` calls of `effect` in one fiber. */
const loop = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<void, E> =>
  Effect.suspend(() => {
    let i = 0
    return Effect.whileLoop({ while: () => i < callsPerSample, body: () => effect, step: () => void i++ })
  })

export const runHotPath = Effect.gen(function*() {
  const redis = yield* redisServer
  const server = yield* MockAmpServer.make()
  const service = (store: Layer.Layer<TokenStore.TokenStore>) =>
    Effect.flatMap(
      Layer.build(serviceLayer(server.baseUrl, store)),
      (context) => Effect.provide(TokenService.TokenService, context)
    )
  const inMemory = yield* service(TokenStore.layerMemory)
  const inRedis = yield* service(
    RedisTokenStore.layer({
      url: redis.url,
      account: { baseUrl: server.baseUrl, username: mockCredentials.username },
      keyPrefix: "bench-hot-path"
    })
  )
  yield* inMemory.getToken
  yield* inRedis.getToken
  const before = yield* server.counters
  const memoryLoop = loop(inMemory.getToken)
  const redisLoop = loop(inRedis.getToken)
  const rounds = yield* Effect.promise(() =>
    interleaved([
      ["memory", () => Effect.runSync(memoryLoop)],
      ["redis", () => Effect.runSync(redisLoop)]
    ], { rounds: 6, time: 200, iterations: 10, warmupTime: 40, warmupIterations: 3 })
  )
  const after = yield* server.counters
  if (after.total !== before.total) return yield* Effect.dieMessage("the hot path loops reached the server")
  const ratio = medianOver(rounds, (r) => r["redis"]! / r["memory"]!)
  const opsPerSecond = (ms: number) => (callsPerSample * 1000) / ms
  const figures: Array<Figure> = [
    report("cached getToken, Redis store", round(medianOver(rounds, (r) => opsPerSecond(r["redis"]!))), "ops/s"),
    report("cached getToken, memory store", round(medianOver(rounds, (r) => opsPerSecond(r["memory"]!))), "ops/s"),
    target("cached getToken: Redis store vs memory store (time per call)", round(ratio), "x", "<=", 1.1)
  ]
  const notes = ratio <= 1.1 ? [] : [
    `redis hot path: getToken with the Redis store took ${round(ratio)}× the memory store's time: ` +
    "the hot path should not reach the store at all (TokenService.getToken)"
  ]
  return { figures, notes } satisfies FigureResult
}).pipe(Effect.scoped)
