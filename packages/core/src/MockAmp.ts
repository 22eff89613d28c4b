/**
 * A fake Blockstream AMP API, written once as a platform-independent `HttpApp` (routes built
 * with `@effect/platform`'s `HttpRouter`), for tests.
 *
 * It answers like AMP (Django REST framework): `POST /api/user/obtain_token` with
 * `{"username", "password"}`, `GET /api/user/refresh-token`, `/api/info`, `/api/changelog`,
 * `/api/assets/` and `/api/assets/{uuid}`, with or without the trailing slash; the
 * `Authorization: token <jwt>` scheme; JWT-shaped tokens whose `iat` / `exp` follow the `Clock`
 * of the fiber that created the mock (so `TestClock.adjust` moves them); 400
 * `non_field_errors` for wrong credentials, 401 `{"detail": "Invalid token."}` with
 * `WWW-Authenticate: Token`, 404 and 405. Tests script faults per endpoint, read exact request
 * counters and the request log, and revoke tokens.
 *
 * Two ways to talk to it:
 *
 * - in memory, without a socket: `layerHttpClient()` provides an `HttpClient` that hands every
 *   request to the app (only the path matters, any host works), so `AuthApi`, `AmpClient` and
 *   `TokenService` run against it under `TestClock`;
 * - over TCP: `@amp-effect/node`'s `MockAmpServer` serves the same app on `127.0.0.1`.
 *
 * @example
 * ```ts
 * import { MockAmp } from "@amp-effect/core"
 * import { HttpClient } from "@effect/platform"
 * import { Effect } from "effect"
 *
 * // The next `GET /info` answers 503; the code under test (here two plain requests) runs
 * // against the mock in memory, and the counters say what reached it.
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

// -----------------------------------------------------------------------------
// Models
// -----------------------------------------------------------------------------

/**
 * Configuration of a mock. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export type MockAmpOptions = internal.MockAmpOptions

/**
 * A scripted misbehaviour (`Status`, `Delay`, `Hang`, `Malformed`, `Reset`), consumed by exactly one
 * request to the endpoint it was scripted for (see `MockAmp.Controls.script`).
 *
 * @since 0.1.0
 * @category models
 */
export type MockFault = internal.MockFault

/**
 * Constructors for `MockFault`s. Plain object literals work just as well.
 *
 * @since 0.1.0
 * @category constructors
 */
export const MockFault: internal.MockFaults = internal.MockFault

/**
 * The endpoints of the mock, as used by `script` and the counters. `"assets"` covers both the
 * list and the single-asset route.
 *
 * @since 0.1.0
 * @category models
 */
export type MockEndpoint = internal.MockEndpoint

/**
 * Requests received since start (or the last reset), by endpoint, with `unauthorized` and `total`.
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
 * The assets a mock serves unless {@link MockAmpOptions.assets} says otherwise, in list order.
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
 * What the app fails with when it plays a `Reset` fault: the server (or in-memory client)
 * serving it must drop the connection without an answer. `layerHttpClient` turns it into a
 * `RequestError` with reason `"Transport"`; `MockAmpServer` resets the TCP connection.
 *
 * @since 0.1.0
 * @category errors
 */
export const ConnectionReset: typeof internal.ConnectionReset = internal.ConnectionReset

/**
 * @since 0.1.0
 * @category errors
 */
export type ConnectionReset = internal.ConnectionReset

// -----------------------------------------------------------------------------
// Tokens
// -----------------------------------------------------------------------------

/**
 * A JWT-shaped token carrying `payload`: an `HS256` header, the payload as base64url JSON and a
 * fixed junk signature (nobody verifies it: clients only read `exp`). The same payload gives
 * the same token.
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
 * Mints a token the way the mock issues them: `{sub, iat, exp, jti}` with `iat` the current
 * time of the `Clock` in whole seconds (rounded down), so under `TestClock` the token's expiry
 * moves with `TestClock.adjust`. For test doubles that issue tokens without the HTTP routes.
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

// -----------------------------------------------------------------------------
// Service
// -----------------------------------------------------------------------------

/**
 * A running fake AMP.
 *
 * @since 0.1.0
 * @category tags
 */
export class MockAmp extends Context.Tag("@amp-effect/core/MockAmp")<MockAmp, MockAmp.Service>() {}

/**
 * The types of the `MockAmp` service: its `Controls` (what a test reads and changes, however the
 * mock is reached) and the `Service` (the controls, the routes as an `HttpApp`, an in-memory
 * `HttpClient` and its base URL).
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
 * Creates a fake AMP. Its notion of "now" and its delays follow the `Clock` of the fiber that
 * runs `make`, wherever the app is later run.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: MockAmpOptions) => Effect.Effect<MockAmp.Service> = internal.make

/**
 * A layer with one fake AMP.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: MockAmpOptions): Layer.Layer<MockAmp> => Layer.effect(MockAmp, make(options))

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
