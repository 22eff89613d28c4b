/**
 * The shared-store sections, written once for Redis (`bench/redis.ts`) and Postgres
 * (`bench/postgres.ts`), each of which only describes its store:
 *
 * - <store>-fleet: 16 children (`bench/storeChild.ts`, built and run on the built packages as
 *   an application installs them: `BuiltApp`), each in a directory of its own — they share no
 *   disk, only the store — start at once with nothing stored; the store's lock should let
 *   exactly one of them log in.
 * - <store>-hot-path: cached `getToken` with the store against the memory store, side by side:
 *   the hot path never reaches the store, so they should be the same within 10 %.
 */
import { TokenService, TokenStore } from "@amp-effect/core"
import { MockAmpServer } from "@amp-effect/node/MockAmpServer"
import { Duration, Effect, Layer, type Scope } from "effect"
import * as BuiltApp from "./builtApp.js"
import {
  type Figure,
  type FigureResult,
  interleaved,
  medianOver,
  mockCredentials,
  mockEnv,
  report,
  round,
  runChild,
  serviceLayer,
  target,
  tempDir
} from "./harness.js"

/** What differs between the shared stores. */
export interface SharedStore {
  /** The section prefix (`redis`), and the name in figures (`Redis`). */
  readonly id: string
  readonly name: string
  /** A throwaway server for the scope, by its URL. */
  readonly server: Effect.Effect<{ readonly url: string }, never, Scope.Scope>
  /** The environment that points a fleet child (`bench/storeChild.ts`) at the store. */
  readonly childEnv: (url: string) => Record<string, string>
  /** The store for the hot path, over `url`, for `account`. */
  readonly layer: (
    url: string,
    account: { readonly baseUrl: string; readonly username: string }
  ) => Layer.Layer<TokenStore.TokenStore>
  /** What should have serialised the fleet's first renewal, for the note when it did not. */
  readonly lock: string
}

const processCount = 16
const callsPerSample = 2_000

export const runFleet = (store: SharedStore) =>
  Effect.gen(function*() {
    const shared = yield* store.server
    const server = yield* MockAmpServer.make({ latency: Duration.millis(50) })
    const dirs = yield* Effect.all(Array.from({ length: processCount }, () => tempDir("amp-bench-replica-")))
    const script = (yield* BuiltApp.make(["storeChild.ts"]))("storeChild.ts")
    const started = performance.now()
    const runs = yield* Effect.forEach(dirs, (dir) =>
      Effect.tryPromise({
        try: () =>
          runChild([script], {
            env: {
              ...mockEnv(server),
              BENCH_STORE: store.id,
              ...store.childEnv(shared.url),
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
        `${store.id} fleet: logins (${processCount} processes, no shared disk, one ${store.name})`,
        counters.obtain,
        "calls",
        "==",
        1
      ),
      report(`${store.id} fleet: wall time (${processCount} at once, process start-up included)`, round(wallMs), "ms"),
      report(`${store.id} fleet: slowest child, from main to its token`, round(slowest), "ms")
    ]
    const notes = counters.obtain === 1 ? [] : [
      `${store.id} fleet: ${counters.obtain} of ${processCount} processes logged in: ${store.lock} did not ` +
      `serialise their first renewal${warnings.length === 0 ? "" : `; warnings: ${warnings.join(" | ")}`}`
    ]
    return { figures, notes } satisfies FigureResult
  }).pipe(Effect.scoped)

/** `callsPerSample` calls of `effect` in one fiber. */
const loop = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<void, E> =>
  Effect.suspend(() => {
    let i = 0
    return Effect.whileLoop({ while: () => i < callsPerSample, body: () => effect, step: () => void i++ })
  })

export const runHotPath = (store: SharedStore) =>
  Effect.gen(function*() {
    const shared = yield* store.server
    const server = yield* MockAmpServer.make()
    const service = (store: Layer.Layer<TokenStore.TokenStore>) =>
      Effect.flatMap(
        Layer.build(serviceLayer(server.baseUrl, store)),
        (context) => Effect.provide(TokenService.TokenService, context)
      )
    const inMemory = yield* service(TokenStore.layerMemory)
    const inStore = yield* service(
      store.layer(shared.url, { baseUrl: server.baseUrl, username: mockCredentials.username })
    )
    yield* inMemory.getToken
    yield* inStore.getToken
    const before = yield* server.counters
    const memoryLoop = loop(inMemory.getToken)
    const storeLoop = loop(inStore.getToken)
    const rounds = yield* Effect.promise(() =>
      interleaved([
        ["memory", () => Effect.runSync(memoryLoop)],
        ["store", () => Effect.runSync(storeLoop)]
      ], { rounds: 6, time: 200, iterations: 10, warmupTime: 40, warmupIterations: 3 })
    )
    const after = yield* server.counters
    if (after.total !== before.total) return yield* Effect.dieMessage("the hot path loops reached the server")
    const ratio = medianOver(rounds, (r) => r["store"]! / r["memory"]!)
    const opsPerSecond = (ms: number) => (callsPerSample * 1000) / ms
    const figures: Array<Figure> = [
      report(
        `cached getToken, ${store.name} store`,
        round(medianOver(rounds, (r) => opsPerSecond(r["store"]!))),
        "ops/s"
      ),
      report("cached getToken, memory store", round(medianOver(rounds, (r) => opsPerSecond(r["memory"]!))), "ops/s"),
      target(`cached getToken: ${store.name} store vs memory store (time per call)`, round(ratio), "x", "<=", 1.1)
    ]
    const notes = ratio <= 1.1 ? [] : [
      `${store.id} hot path: getToken with the ${store.name} store took ${round(ratio)}× the memory store's time: ` +
      "the hot path should not reach the store at all (TokenService.getToken)"
    ]
    return { figures, notes } satisfies FigureResult
  }).pipe(Effect.scoped)
