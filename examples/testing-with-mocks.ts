/**
 * Testing an application that uses the library: the application is written against the
 * services (`AmpClient`, `TokenService`); its tests supply other layers, nothing else changes.
 *
 * - `layerMockServer`: the application's own live layer, pointed by configuration at the
 *   embedded mock AMP server (real HTTP on 127.0.0.1, real tokens, scripted faults, counters).
 * - `TokenService.layerMock(token)`: a fixed token, no network at all, for code that only
 *   needs a token.
 *
 * `examples/test/testing-with-mocks.test.ts` is such a test suite.
 *
 * Run: pnpm tsx examples/testing-with-mocks.ts          (embedded mock AMP server)
 *      pnpm vitest run examples/test/testing-with-mocks.test.ts
 */
import { AmpClient, type AmpConfig, TokenService } from "@amp-effect/core"
import { MockAmpServer, NodeAmp } from "@amp-effect/node"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { ConfigProvider, Console, Effect, Layer, Redacted } from "effect"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { runExample } from "./environment.js"

// --- The application -------------------------------------------------------------------------

/** One line per asset: what the application does with AMP. */
export const assetReport = Effect.gen(function*() {
  const amp = yield* AmpClient.AmpClient
  const assets = yield* amp.listAssets
  return assets.map((asset) => `${asset.ticker ?? "-"} ${asset.name}${asset.isLocked ? " (locked)" : ""}`)
})

/** Headers for a call the application makes with some other HTTP library. */
export const authorizationHeaders = Effect.map(
  TokenService.TokenService.pipe(Effect.flatMap((tokens) => tokens.getToken)),
  (token) => ({ authorization: `token ${Redacted.value(token)}` })
)

/** The application's live layer: everything from the environment. */
export const AppLive: Layer.Layer<
  AmpClient.AmpClient | TokenService.TokenService,
  AmpConfig.AmpConfigError
> = AmpClient.layerConfig().pipe(
  Layer.provideMerge(NodeAmp.layerConfig()),
  Layer.provide(NodeHttpClient.layerUndici)
)

// --- What its tests supply -------------------------------------------------------------------

/**
 * `AppLive` against a fresh embedded mock server, which is provided too (for its counters and
 * faults). Only the configuration differs from production; the persistence policy sees the
 * mock credentials and keeps tokens in memory, so tests leave no token file behind.
 */
export const layerMockServer: Layer.Layer<
  AmpClient.AmpClient | TokenService.TokenService | MockAmpServer.MockAmpServer,
  AmpConfig.AmpConfigError
> = Layer.unwrapEffect(
  Effect.map(MockAmpServer.MockAmpServer, (server) =>
    AppLive.pipe(
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson({
        AMP_API_BASE_URL: server.baseUrl,
        AMP_USERNAME: MockAmpServer.MockAmpServer.defaultCredentials.username,
        AMP_PASSWORD: MockAmpServer.MockAmpServer.defaultCredentials.password,
        API_RETRY_BASE_DELAY_MS: "10",
        API_RETRY_MAX_DELAY_MS: "100",
        // The mock answers at once; on a loaded test machine a long timeout keeps slowness from
        // turning into retries, so the server's counters stay exact.
        API_REQUEST_TIMEOUT_SECONDS: "60"
      })))
    ))
).pipe(Layer.provideMerge(MockAmpServer.MockAmpServer.layer()))

// --- Running it ------------------------------------------------------------------------------

const main = Effect.gen(function*() {
  for (const line of yield* assetReport) yield* Console.log(line)
  const headers = yield* authorizationHeaders
  yield* Console.log(`authorization header ready (${headers.authorization.length} characters)`)
})

// Only when run, not when the tests import this file.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  runExample(() => main.pipe(Effect.provide(AppLive)))
}
