/**
 * Token information: what `TokenService.getTokenInfo` says about the current token (expiry,
 * age, expired, expiring soon), computed from the clock without any network call.
 *
 * Run: pnpm tsx examples/token-info.ts                  (embedded mock AMP server)
 *      AMP_API_BASE_URL=... AMP_USERNAME=... AMP_PASSWORD=... pnpm tsx examples/token-info.ts
 */
import { TokenService } from "@amp-effect/core"
import { NodeAmp } from "@amp-effect/node"
import { Console, DateTime, Duration, Effect, Option } from "effect"
import { runExample } from "./environment.js"

const program = Effect.gen(function*() {
  const tokens = yield* TokenService.TokenService

  const before = yield* tokens.getTokenInfo
  yield* Console.log(`Before the first getToken: ${Option.isNone(before) ? "no token" : "a stored token"}`)

  yield* tokens.getToken
  const info = yield* tokens.getTokenInfo
  yield* Option.match(info, {
    onNone: () => Console.log("No token"),
    onSome: (info) =>
      Console.log([
        `Token expires at: ${DateTime.formatIso(info.expiresAt)}`,
        `Token expires in: ${Duration.format(Duration.seconds(Math.floor(Duration.toSeconds(info.expiresIn))))}`,
        `Token obtained at: ${DateTime.formatIso(info.obtainedAt)}`,
        `Token is expired: ${info.isExpired}`,
        `Token expires soon (will be renewed by the next getToken): ${info.expiresSoon}`
      ].join("\n"))
  })
})

runExample(() => program.pipe(Effect.provide(NodeAmp.layerConfig())))
