/**
 * A fake Blockstream AMP API for tests, written once as a platform-independent `HttpApp`.
 *
 * It answers like AMP (Django REST framework): `POST /api/user/obtain_token`,
 * `GET /api/user/refresh-token`, `/api/info`, `/api/changelog`, `/api/assets/` and
 * `/api/assets/{uuid}`, with or without the trailing slash; the `Authorization: token <jwt>`
 * scheme; JWT-shaped tokens whose `iat` / `exp` follow the `Clock` of the fiber that created the
 * mock (so `TestClock.adjust` moves them); DRF's 400, 401, 404 and 405 answers. Tests script
 * faults per endpoint, read request counters and the request log, and revoke tokens.
 *
 * Reach it in memory with `layerHttpClient()` (only the path matters, any host works), or over
 * TCP with `@amp-effect/node`'s `MockAmpServer`, which serves the same app on `127.0.0.1`.
 *
 * @example
 * ```ts
 * import { MockAmp } from "@amp-effect/core"
 * import { HttpClient } from "@effect/platform"
 * import { Effect } from "effect"
 *
 * // The next `GET /info` answers 503; the counters say what reached the mock.
 * const test = Effect.gen(function*() {
 *   const amp = yield* MockAmp.MockAmp
 *   yield* amp.script("info", MockAmp.MockFault.status(503))
 *   const first = yield* HttpClient.get(`${amp.baseUrl}/info`)
 *   const second = yield* HttpClient.get(`${amp.baseUrl}/info`)
 *   const counters = yield* amp.counters
 *   console.log(first.status, second.status, counters.info)
 *   // Output: 503 200 2
 * }).pipe(Effect.provide(MockAmp.layerHttpClient()))
 *
 * Effect.runPromise(test)
 * ```
 *
 * @since 0.1.0
 */
import { HttpClient } from "@effect/platform"
import { Context, Effect, Layer } from "effect"
import * as internal from "./internal/mockAmp.js"

/**
 * Configuration of a mock. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export type MockAmpOptions = internal.MockAmpOptions

/**
 * A scripted misbehaviour, played by exactly one request to the endpoint it was scripted for:
 * `Status` answers with that status, body (default `{"detail": <reason>}`) and extra headers;
 * `Delay` waits on the mock's `Clock`, then answers normally; `Hang` never answers; `Reset`
 * drops the connection (in memory, a `RequestError` with reason `"Transport"`).
 *
 * @since 0.1.0
 * @category models
 */
export type MockFault = internal.MockFault

/**
 * Constructors for `MockFault`s.
 *
 * @since 0.1.0
 * @category constructors
 */
export const MockFault: typeof internal.MockFault = internal.MockFault

/**
 * The endpoints, as `script` and the counters name them; `"assets"` covers the list and one asset.
 *
 * @since 0.1.0
 * @category models
 */
export type MockEndpoint = internal.MockEndpoint

/**
 * Requests received since start (or the last reset), by endpoint, faulted ones included;
 * `unauthorized` counts the 401s of the token check, `total` every request, unknown paths too.
 *
 * @since 0.1.0
 * @category models
 */
export type MockAmpCounters = internal.MockAmpCounters

/**
 * One request as the mock received it, in the request log.
 *
 * @since 0.1.0
 * @category models
 */
export type MockRequest = internal.MockRequest

/**
 * An asset served by `GET /assets/`.
 *
 * @since 0.1.0
 * @category models
 */
export type MockAsset = internal.MockAsset

/**
 * The assets a mock serves unless `MockAmpOptions.assets` says otherwise, in list order.
 *
 * @since 0.1.0
 * @category constants
 */
export const mockAssets: ReadonlyArray<MockAsset> = internal.mockAssets

/**
 * The credentials a mock accepts when none are configured.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultCredentials: { readonly username: "mock_user"; readonly password: "mock_pass" } =
  internal.defaultCredentials

/**
 * What the app fails with when it plays a `Reset` fault: whoever serves it drops the connection.
 *
 * @since 0.1.0
 * @category errors
 */
export type ConnectionReset = internal.ConnectionReset

/**
 * A JWT-shaped token carrying `payload`, with a junk signature (clients only read `exp`). The
 * same payload gives the same token.
 *
 * @since 0.1.0
 * @category tokens
 */
export const jwt: (payload: Readonly<Record<string, unknown>>) => string = internal.jwt

/**
 * What `mintToken` puts in a token.
 *
 * @since 0.1.0
 * @category models
 */
export type MintOptions = internal.MintOptions

/**
 * Mints a token as the mock issues them: `{sub, iat, exp, jti}`, dated by the `Clock` (so
 * `TestClock.adjust` moves it). For test doubles that issue tokens without the HTTP routes.
 *
 * @example
 * ```ts
 * import { AuthApi, MockAmp } from "@amp-effect/core"
 * import { Effect, Layer, Redacted } from "effect"
 *
 * // An `AuthApi` for tests that issues a fresh one-hour token on every call, with no HTTP.
 * const ScriptedAuthApi = Layer.succeed(
 *   AuthApi.AuthApi,
 *   AuthApi.AuthApi.of({
 *     obtain: Effect.map(MockAmp.mintToken({ lifetime: "1 hour" }), Redacted.make),
 *     refresh: () => Effect.map(MockAmp.mintToken({ lifetime: "1 hour" }), Redacted.make)
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category tokens
 */
export const mintToken: (options?: MintOptions) => Effect.Effect<string> = internal.mintToken

/**
 * A running fake AMP.
 *
 * @since 0.1.0
 * @category tags
 */
export class MockAmp extends Context.Tag("@amp-effect/core/MockAmp")<MockAmp, MockAmp.Service>() {}

/**
 * The `Controls` are what a test reads and changes, however the mock is reached; the `Service`
 * adds the routes as an `HttpApp`, the in-memory `HttpClient` and its base URL.
 *
 * @since 0.1.0
 * @category models
 */
export declare namespace MockAmp {
  /**
   * @since 0.1.0
   * @category models
   */
  export type Controls = internal.Controls
  /**
   * @since 0.1.0
   * @category models
   */
  export type Service = internal.Service
}

/**
 * Creates a fake AMP. Its "now" and its delays follow the `Clock` of the fiber that runs `make`,
 * wherever the app is later run.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: MockAmpOptions) => Effect.Effect<MockAmp.Service> = internal.make

/**
 * A layer with one fake AMP and the in-memory `HttpClient` that reaches it: provide it under
 * `AuthApi.layer` / `AmpClient.layer` to run them against the mock with no network.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerHttpClient = (options?: MockAmpOptions): Layer.Layer<MockAmp | HttpClient.HttpClient> =>
  Layer.effectContext(
    Effect.map(
      make(options),
      (amp) => Context.make(MockAmp, amp).pipe(Context.add(HttpClient.HttpClient, amp.httpClient))
    )
  )
