/**
 * A child process of `pnpm bench` (client overhead): the mock AMP server in a process of its
 * own, so that the clients measured in the parent do not share a thread with it. Prints one
 * JSON line `{"baseUrl": ...}` when listening and stops when its stdin closes (the parent
 * closes it, or dies).
 */
import { MockAmpServer } from "@amp-effect/node/MockAmpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect } from "effect"

const stdinClosed = Effect.async<void>((resume) => {
  process.stdin.on("end", () => resume(Effect.void)).on("close", () => resume(Effect.void)).resume()
})

Effect.gen(function*() {
  const server = yield* MockAmpServer.make()
  yield* Console.log(JSON.stringify({ baseUrl: server.baseUrl }))
  yield* stdinClosed
}).pipe(Effect.scoped, NodeRuntime.runMain)
