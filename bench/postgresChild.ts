/**
 * A child process of `pnpm bench postgres-fleet`: one replica of an application whose token
 * lives in Postgres — `NodeAmp.layerWithStore(PostgresTokenStore.layerConfig())` from the
 * environment (`AMP_API_BASE_URL`, `AMP_USERNAME`, `AMP_PASSWORD`, `AMP_POSTGRES_URL`,
 * `AMP_POSTGRES_TABLE`). It gets a token and prints one JSON line with the time that took from
 * its first line; warnings too, so that the bench can say why a figure was missed.
 */
import * as TokenService from "@amp-effect/core/TokenService"
import * as NodeAmp from "@amp-effect/node/NodeAmp"
import { PostgresTokenStore } from "@amp-effect/postgres"
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

program.pipe(
  Effect.provide(NodeAmp.layerWithStore(PostgresTokenStore.layerConfig())),
  Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
  Effect.scoped,
  NodeRuntime.runMain
)
