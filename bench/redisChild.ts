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
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect } from "effect"
import { RedisTokenStore } from "../packages/redis/src/index.js"

const mainStarted = performance.now()

const program = Effect.gen(function*() {
  const tokens = yield* TokenService.TokenService
  yield* tokens.getToken
  yield* Console.log(JSON.stringify({ fromMainMs: performance.now() - mainStarted }))
})

program.pipe(
  Effect.provide(NodeAmp.layerWithStore(RedisTokenStore.layerConfig())),
  Effect.scoped,
  NodeRuntime.runMain
)
