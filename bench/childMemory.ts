/**
 * A child process of `pnpm bench` (memory), run with `--expose-gc`: the heap after 1,000,000
 * cached `getToken` calls against before, both measured after full collections. Prints one
 * JSON line `{"beforeBytes", "afterBytes", "calls"}`.
 */
import * as TokenService from "@amp-effect/core/TokenService"
import { MockAmpServer } from "@amp-effect/node/MockAmpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer } from "effect"
import { serviceLayer } from "./harness.js"

const calls = 1_000_000
const chunk = 10_000

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")

/** The heap in use after collections settle. */
const settledHeap = Effect.sync(() => {
  for (let i = 0; i < 4; i++) gc()
  return process.memoryUsage().heapUsed
})

Effect.gen(function*() {
  const server = yield* MockAmpServer.make()
  const context = yield* Layer.build(serviceLayer(server.baseUrl))
  const tokens = yield* Effect.provide(TokenService.TokenService, context)
  yield* tokens.getToken // the one login; from here on the token is in memory

  let i = 0
  const calling = Effect.whileLoop({ while: () => i < chunk, body: () => tokens.getToken, step: () => void i++ })
  const run = (n: number) =>
    Effect.sync(() => {
      for (let done = 0; done < n; done += chunk) {
        i = 0
        Effect.runSync(calling)
      }
    })
  yield* run(chunk * 10) // warm the JIT, so that compiled code does not count as growth
  const beforeBytes = yield* settledHeap
  yield* run(calls)
  const afterBytes = yield* settledHeap
  const counters = yield* server.counters
  yield* Console.log(JSON.stringify({ beforeBytes, afterBytes, calls, logins: counters.obtain }))
}).pipe(Effect.scoped, NodeRuntime.runMain)
