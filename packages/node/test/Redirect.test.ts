/**
 * AMP never redirects, and a credential must never follow a redirect: over real sockets, with
 * each `HttpClient` the packages use (undici and node:http from `NodeHttpClient`, and
 * `FetchHttpClient`, which follows redirects unless told not to, even when the application
 * asks it to), a 3xx to the login, the refresh or an authenticated call is a `Redirected`
 * error and the origin it points to receives nothing.
 */
import { AmpClient, type AmpHttpError, AuthApi, TokenService } from "@amp-effect/core"
import { FetchHttpClient, type HttpClient } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Redacted } from "effect"
import { MockAmpServer, MockFault } from "../src/MockAmpServer.js"

const clients: ReadonlyArray<readonly [string, Layer.Layer<HttpClient.HttpClient>]> = [
  ["NodeHttpClient.layerUndici", NodeHttpClient.layerUndici],
  ["NodeHttpClient.layer", NodeHttpClient.layer],
  ["FetchHttpClient.layer", FetchHttpClient.layer],
  [
    "FetchHttpClient.layer with redirect: \"follow\"",
    Layer.merge(FetchHttpClient.layer, Layer.succeed(FetchHttpClient.RequestInit, { redirect: "follow" }))
  ]
]

/** The three calls that carry a secret: the login (password), the refresh and an API call (token). */
const calls = (baseUrl: string) =>
  Effect.gen(function*() {
    const options = {
      baseUrl,
      retry: { maxAttempts: 3, baseDelay: Duration.millis(1), maxDelay: Duration.millis(10) },
      requestTimeout: Duration.seconds(30)
    }
    const auth = yield* AuthApi.make({ ...options, username: "mock_user", password: Redacted.make("mock_pass") })
    const amp = yield* AmpClient.make(options).pipe(Effect.provide(TokenService.layerMock("tok-123")))
    const calls: ReadonlyArray<
      readonly ["obtain" | "refresh" | "assets", Effect.Effect<unknown, AmpHttpError.AmpHttpError>]
    > = [
      ["obtain", auth.obtain],
      ["refresh", auth.refresh(Redacted.make("tok-123"))],
      ["assets", Effect.catchTag(amp.listAssets, "TokenStoreError", Effect.die)]
    ]
    return calls
  })

describe("redirects are refused", () => {
  for (const [name, layer] of clients) {
    it.scopedLive(`over ${name}: 302, 307 and 308 to another origin, which receives nothing`, () =>
      Effect.gen(function*() {
        const amp = yield* MockAmpServer.make()
        const other = yield* MockAmpServer.make()
        const http = yield* Layer.build(layer)
        for (const status of [302, 307, 308]) {
          for (const [endpoint, call] of yield* Effect.provide(calls(amp.baseUrl), http)) {
            const location = `${other.baseUrl}/${endpoint === "assets" ? "assets/" : "user/obtain_token"}`
            yield* amp.script(endpoint, MockFault.status(status, { headers: { location } }))
            const error = yield* Effect.flip(call)
            expect(error, `${status} ${endpoint}`).toMatchObject({
              reason: "Redirected",
              status,
              detail: `http://127.0.0.1:${other.port}`
            })
            expect(error.message).toContain(`answered HTTP ${status}, a redirect to http://127.0.0.1:${other.port}`)
          }
        }
        expect((yield* amp.counters).total).toBe(9) // one each: no retry
        expect(yield* other.counters).toMatchObject({ total: 0 })
      }))
  }
})
