/**
 * A fake Blockstream AMP API for tests, as a platform-independent `HttpApp`: AMP's routes and
 * Django REST framework's answers, JWT-shaped tokens dated by the `Clock` of the fiber that made
 * the mock, scripted faults, request counters, a request log, revocation. Reach it in memory with
 * `layerHttpClient()` (any host), or over TCP with `@amp-effect/node`'s `MockAmpServer`.
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
 *   const response = yield* HttpClient.get(`${amp.baseUrl}/info`)
 *   console.log(response.status, (yield* amp.counters).info)
 *   // Output: 503 1
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
 * A scripted misbehaviour, played by one request to its endpoint: `Status` (default body
 * `{"detail": "HTTP <status>"}`), `Delay`, `Hang` or `Reset` (in memory, a `Transport` error).
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
export const defaultCredentials: typeof internal.defaultCredentials = internal.defaultCredentials

/**
 * A JWT-shaped token carrying `payload`, with a junk signature (clients only read `exp`).
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
 * Mints a token as the mock issues them, `{sub, iat, exp, jti}` dated by the `Clock` (so
 * `TestClock.adjust` moves it): for test doubles that issue tokens without the HTTP routes.
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
 * What a test reads and changes (`Controls`); the `Service` adds the `HttpApp` and an in-memory client.
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
 * Creates a fake AMP; its "now" and delays follow the `Clock` of the fiber that runs `make`.
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
  Layer.effect(HttpClient.HttpClient, Effect.map(MockAmp, (amp) => amp.httpClient)).pipe(
    Layer.provideMerge(Layer.effect(MockAmp, make(options)))
  )
