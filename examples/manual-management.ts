/**
 * Manual token management: log in now (`obtainToken`), renew now whatever the expiry says
 * (`forceRefresh`: refresh, falling back to a login), and forget the token (`clearToken`).
 * Most applications never need these: `getToken` does the right thing by itself.
 *
 * Run: pnpm tsx examples/manual-management.ts           (embedded mock AMP server)
 *      AMP_API_BASE_URL=... AMP_USERNAME=... AMP_PASSWORD=... pnpm tsx examples/manual-management.ts
 */
import { TokenService } from "@amp-effect/core"
import { NodeAmp } from "@amp-effect/node"
import { Console, Effect, Option, Redacted } from "effect"
import { runExample } from "./environment.js"

const program = Effect.gen(function*() {
  const tokens = yield* TokenService.TokenService

  const first = yield* tokens.obtainToken
  yield* Console.log("Logged in (obtainToken)")

  const refreshed = yield* tokens.forceRefresh
  yield* Console.log(`Force refresh gave a new token: ${Redacted.value(refreshed) !== Redacted.value(first)}`)

  yield* tokens.clearToken
  yield* Console.log(`After clearToken: ${Option.isNone(yield* tokens.getTokenInfo) ? "no token" : "a token"}`)

  yield* tokens.getToken
  yield* Console.log("getToken after clearToken logged in again")
})

runExample((mock) =>
  program.pipe(
    Effect.provide(NodeAmp.layerConfig()),
    Effect.zipRight(Option.match(mock, {
      onNone: () => Effect.void,
      onSome: (server) =>
        Effect.flatMap(
          server.counters,
          (c) => Console.log(`Mock server calls: ${c.obtain} logins, ${c.refresh} refresh`)
        )
    }))
  )
)
