/**
 * Basic usage: an always-valid AMP token from `TokenService.getToken`.
 *
 * The first call logs in; later calls answer from memory (no lock, no I/O) until the token
 * comes within five minutes of its expiry, when one caller renews it for everyone.
 *
 * Run: pnpm tsx examples/basic-usage.ts                 (embedded mock AMP server)
 *      AMP_API_BASE_URL=https://amp-test.blockstream.com/api AMP_USERNAME=... AMP_PASSWORD=... \
 *        pnpm tsx examples/basic-usage.ts                (a real AMP)
 */
import { TokenService } from "@amp-effect/core"
import { NodeAmp } from "@amp-effect/node"
import { Console, Effect, Option, Redacted } from "effect"
import { runExample } from "./environment.js"

const program = Effect.gen(function*() {
  const tokens = yield* TokenService.TokenService
  const token = yield* tokens.getToken // logs in
  const again = yield* tokens.getToken // from memory
  yield* Console.log(`Got a token of ${Redacted.value(token).length} characters`)
  yield* Console.log(`The second getToken reused it: ${Redacted.value(again) === Redacted.value(token)}`)
  // Tokens are Redacted: printing or logging one by mistake shows nothing.
  yield* Console.log(`As a value it prints as: ${token}`)
  // Take it out of its box at the last moment, where it is sent:
  const header = `token ${Redacted.value(token)}`
  yield* Console.log(`Authorization header ready (${header.length} characters)`)
})

runExample((mock) =>
  program.pipe(
    // NodeAmp.layerConfig: everything from the environment (AMP_*, API_RETRY_*, ...)
    Effect.provide(NodeAmp.layerConfig()),
    Effect.tap(() =>
      Option.match(mock, {
        onNone: () => Effect.void,
        onSome: (server) =>
          Effect.flatMap(server.counters, (counters) => Console.log(`Logins on the mock server: ${counters.obtain}`))
      })
    )
  )
)
