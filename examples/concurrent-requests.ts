/**
 * Many concurrent requests through the authenticated client (`AmpClient`): every request
 * carries the token without the caller doing anything, 100 requests cost one login, and when
 * the server starts rejecting the token all the requests rejected together cause one renewal,
 * not one each.
 *
 * Run: pnpm tsx examples/concurrent-requests.ts         (embedded mock AMP server)
 *      AMP_API_BASE_URL=... AMP_USERNAME=... AMP_PASSWORD=... pnpm tsx examples/concurrent-requests.ts
 */
import { AmpClient } from "@amp-effect/core"
import { NodeAmp } from "@amp-effect/node"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Console, Effect, Layer, Option } from "effect"
import { runExample } from "./environment.js"

/** The client, its token service and Node's HTTP client, all configured from the environment. */
const AmpLive = AmpClient.layerConfig().pipe(
  Layer.provide(NodeAmp.layerConfig()),
  Layer.provide(NodeHttpClient.layerUndici)
)

/** `n` requests at once: the asset list, then each asset by id, all through one client. */
const burst = (n: number) =>
  Effect.gen(function*() {
    const amp = yield* AmpClient.AmpClient
    const results = yield* Effect.all(
      Array.from({ length: n }, (_, i) =>
        i % 2 === 0
          ? Effect.map(amp.listAssets, (assets) => assets.length)
          : Effect.flatMap(
            amp.listAssets,
            (assets) => assets.length === 0 ? Effect.succeed(0) : Effect.as(amp.getAsset(assets[0]!.assetUuid), 1)
          )),
      { concurrency: "unbounded" }
    )
    return results.length
  })

runExample((mock) =>
  Effect.gen(function*() {
    const amp = yield* AmpClient.AmpClient
    yield* Console.log(`AMP API version: ${(yield* amp.info).version}`)

    yield* Console.log(`${yield* burst(100)} concurrent requests done`)
    if (Option.isNone(mock)) return
    const server = mock.value
    const first = yield* server.counters
    yield* Console.log(`Logins so far: ${first.obtain}`)

    // The server revokes every token: the next requests are all rejected with the same one.
    yield* server.revokeAll
    yield* Console.log(`${yield* burst(100)} concurrent requests done after the server revoked the token`)
    const after = yield* server.counters
    yield* Console.log(
      `Renewals for the revoked token: ${after.refresh - first.refresh} refresh (refused: the token was revoked), ` +
        `${after.obtain - first.obtain} login (${after.unauthorized - first.unauthorized} answers were 401)`
    )
  }).pipe(Effect.provide(AmpLive))
)
