/**
 * A child process of `pnpm bench redis-fleet` and `postgres-fleet`: one replica of an application
 * whose token lives in the shared store `BENCH_STORE` names (`redis` or `postgres`) —
 * `NodeAmp.layerWithStore(<Store>.layerConfig())` from the environment (`AMP_API_BASE_URL`,
 * `AMP_USERNAME`, `AMP_PASSWORD`, and the store's own: `AMP_REDIS_URL`, `AMP_REDIS_KEY_PREFIX`,
 * `AMP_POSTGRES_URL`, `AMP_POSTGRES_TABLE`). Neither package loads its driver until its store is
 * opened. The child gets a token and prints one JSON line with the time that took from its first
 * line; warnings too, so that the bench can say why a figure was missed.
 *
 * It has a working directory of its own and writes nothing: the processes share no disk.
 */
import * as TokenService from "@amp-effect/core/TokenService"
import * as NodeAmp from "@amp-effect/node/NodeAmp"
import { PostgresTokenStore } from "@amp-effect/postgres"
import { RedisTokenStore } from "@amp-effect/redis"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Logger, LogLevel } from "effect"

const mainStarted = performance.now()

const program = Effect.gen(function*() {
  const tokens = yield* TokenService.TokenService
  yield* tokens.getToken
  yield* Console.log(JSON.stringify({ fromMainMs: performance.now() - mainStarted }))
})

const logger = Logger.make(({ logLevel, message }) => {
  if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) {
    console.log(JSON.stringify({ warning: (Array.isArray(message) ? message : [message]).map(String).join(" ") }))
  }
})

const store = process.env["BENCH_STORE"] === "postgres"
  ? PostgresTokenStore.layerConfig()
  : RedisTokenStore.layerConfig()

program.pipe(
  Effect.provide(NodeAmp.layerWithStore(store)),
  Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
  Effect.scoped,
  NodeRuntime.runMain
)
