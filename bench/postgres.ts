/**
 * The Postgres token store (`@amp-effect/postgres`), against a throwaway PostgreSQL started here
 * (`@amp-effect/postgres/testing`: loopback, a free port, fsync off; the sections fail with a
 * note when none is installed). The same two figures as `bench/redis.ts`, to be read beside them:
 *
 * - postgres-fleet: 16 children (`bench/postgresChild.ts` on the built packages, as an
 *   application installs them), each in a directory of its own, start at once on an empty
 *   database; the advisory lock should let exactly one of them log in.
 * - postgres-hot-path: cached `getToken` with the Postgres store against the memory store, side
 *   by side: the hot path never reaches the store, so they should be the same within 10 %.
 */
import { TokenService, TokenStore } from "@amp-effect/core"
import { MockAmpServer } from "@amp-effect/node/MockAmpServer"
import { PostgresTokenStore } from "@amp-effect/postgres"
import { PostgresServer } from "@amp-effect/postgres/testing"
import { Duration, Effect, Layer, Redacted } from "effect"
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

const postgresServer = PostgresServer.unavailable === undefined
  ? PostgresServer.scoped()
  : Effect.dieMessage(PostgresServer.unavailable)

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-bench-replica-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

export const runFleet = Effect.gen(function*() {
  const postgres = yield* postgresServer
  const server = yield* MockAmpServer.make({ latency: Duration.millis(50) })
  const dirs = yield* Effect.all(Array.from({ length: processCount }, () => tempDir))
  const script = (yield* BuiltApp.make(["postgresChild.ts"]))("postgresChild.ts")
  const started = performance.now()
  const runs = yield* Effect.forEach(dirs, (dir) =>
    Effect.tryPromise({
      try: () =>
        runChild([script], {
          env: {
            AMP_API_BASE_URL: server.baseUrl,
            AMP_USERNAME: mockCredentials.username,
            AMP_PASSWORD: mockCredentials.password,
            AMP_POSTGRES_URL: postgres.url,
            AMP_POSTGRES_TABLE: "bench_fleet",
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
      `postgres fleet: logins (${processCount} processes, no shared disk, one PostgreSQL)`,
      counters.obtain,
      "calls",
      "==",
      1
    ),
    report(`postgres fleet: wall time (${processCount} at once, process start-up included)`, round(wallMs), "ms"),
    report("postgres fleet: slowest child, from main to its token", round(slowest), "ms")
  ]
  const notes = counters.obtain === 1 ? [] : [
    `postgres fleet: ${counters.obtain} of ${processCount} processes logged in: the advisory lock did not ` +
    `serialise their first renewal (PostgresTokenStore withLock)${
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
  const postgres = yield* postgresServer
  const server = yield* MockAmpServer.make()
  const service = (store: Layer.Layer<TokenStore.TokenStore>) =>
    Effect.flatMap(
      Layer.build(serviceLayer(server.baseUrl, store)),
      (context) => Effect.provide(TokenService.TokenService, context)
    )
  const inMemory = yield* service(TokenStore.layerMemory)
  const inPostgres = yield* service(
    PostgresTokenStore.layerUrl({
      url: Redacted.make(postgres.url),
      account: { baseUrl: server.baseUrl, username: mockCredentials.username },
      table: "bench_hot_path"
    })
  )
  yield* inMemory.getToken
  yield* inPostgres.getToken
  const before = yield* server.counters
  const memoryLoop = loop(inMemory.getToken)
  const postgresLoop = loop(inPostgres.getToken)
  const rounds = yield* Effect.promise(() =>
    interleaved([
      ["memory", () => Effect.runSync(memoryLoop)],
      ["postgres", () => Effect.runSync(postgresLoop)]
    ], { rounds: 6, time: 200, iterations: 10, warmupTime: 40, warmupIterations: 3 })
  )
  const after = yield* server.counters
  if (after.total !== before.total) return yield* Effect.dieMessage("the hot path loops reached the server")
  const ratio = medianOver(rounds, (r) => r["postgres"]! / r["memory"]!)
  const opsPerSecond = (ms: number) => (callsPerSample * 1000) / ms
  const figures: Array<Figure> = [
    report("cached getToken, Postgres store", round(medianOver(rounds, (r) => opsPerSecond(r["postgres"]!))), "ops/s"),
    report("cached getToken, memory store", round(medianOver(rounds, (r) => opsPerSecond(r["memory"]!))), "ops/s"),
    target("cached getToken: Postgres store vs memory store (time per call)", round(ratio), "x", "<=", 1.1)
  ]
  const notes = ratio <= 1.1 ? [] : [
    `postgres hot path: getToken with the Postgres store took ${round(ratio)}× the memory store's time: ` +
    "the hot path should not reach the store at all (TokenService.getToken)"
  ]
  return { figures, notes } satisfies FigureResult
}).pipe(Effect.scoped)
