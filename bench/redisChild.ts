/**
 * A child process of `pnpm bench redis-fleet`: one replica of an application whose token lives
 * in Redis — `NodeAmp.layerWithStore(RedisTokenStore.layerConfig())` from the environment
 * (`AMP_API_BASE_URL`, `AMP_USERNAME`, `AMP_PASSWORD`, `AMP_REDIS_URL`, `AMP_REDIS_KEY_PREFIX`).
 * It gets a token and prints one JSON line with the time that took from its first line.
 *
 * It has a working directory of its own and writes nothing: the processes share no disk.
 */
import * as TokenService from "@amp-effect/core/TokenService"
import * as NodeAmp from "@amp-effect/node/NodeAmp"
import { RedisTokenStore } from "@amp-effect/redis"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Logger, LogLevel } from "effect"

const mainStarted = performance.now()

const program = Effect.gen(function*() {
  const tokens = yield* TokenService.TokenService
  yield* tokens.getToken
  yield* Console.log(JSON.stringify({ fromMainMs: performance.now() - mainStarted }))
})

// Warnings as JSON lines too, so that the bench can say why a figure was missed.
const logger = Logger.make(({ logLevel, message }) => {
  if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) {
    console.log(JSON.stringify({ warning: (Array.isArray(message) ? message : [message]).map(String).join(" ") }))
  }
})

program.pipe(
  Effect.provide(NodeAmp.layerWithStore(RedisTokenStore.layerConfig())),
  Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
  Effect.scoped,
  NodeRuntime.runMain
)
