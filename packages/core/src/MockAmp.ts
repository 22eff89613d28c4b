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
import { type HttpApp, HttpClient } from "@effect/platform"
import { Context, type Duration, Effect, Layer } from "effect"
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
export interface MockAmpOptions {
  /** Username accepted by `POST /user/obtain_token`. Defaults to `"mock_user"`. */
  readonly username?: string | undefined
  /** Password accepted by `POST /user/obtain_token`. Defaults to `"mock_pass"`. */
  readonly password?: string | undefined
  /**
   * How long an issued token stays valid. Defaults to 24 hours. The JWT's `exp` claim is the
   * expiry in whole seconds, rounded down, so it is never later than the moment the mock starts
   * rejecting the token.
   */
  readonly tokenLifetime?: Duration.DurationInput | undefined
  /** When `false`, issued tokens carry no `exp` claim (they still expire). Defaults to `true`. */
  readonly issueExp?: boolean | undefined
  /** Extra delay before every obtain / refresh answer. Defaults to zero. */
  readonly latency?: Duration.DurationInput | undefined
  /** The assets served by `GET /assets/`, in list order. Defaults to {@link mockAssets}. */
  readonly assets?: ReadonlyArray<MockAsset> | undefined
}

/**
 * A scripted misbehaviour, consumed by exactly one request to the endpoint it was scripted for
 * (see {@link MockAmp.Controls.script}).
 *
 * - `Status`: answer with that status, body (default `{"detail": <reason>}`) and extra headers.
 * - `Delay`: wait (on the mock's `Clock`), then answer normally. Other requests are not blocked.
 * - `Hang`: never answer; the request stays open until the client gives up (its timeout, or it
 *   goes away) or, over a socket, the server's scope closes.
 * - `Malformed`: answer with that raw body as `application/json` (status 200 unless given).
 * - `Reset`: drop the connection without answering. The in-memory client fails with the
 *   transport error a client would see (`RequestError`, reason `"Transport"`); over a socket
 *   the connection is really reset.
 *
 * @since 0.1.0
 * @category models
 */
export type MockFault =
  | {
    readonly _tag: "Status"
    readonly status: number
    readonly body?: string | undefined
    readonly headers?: Readonly<Record<string, string>> | undefined
  }
  | { readonly _tag: "Delay"; readonly duration: Duration.DurationInput }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "Malformed"; readonly body: string; readonly status?: number | undefined }
  | { readonly _tag: "Reset" }

/**
 * Constructors for {@link MockFault}s. Plain object literals work just as well.
 *
 * @since 0.1.0
 * @category constructors
 */
export const MockFault: {
  /** Answer with `status`, optionally with a raw body and extra headers. */
  readonly status: (
    status: number,
    options?: { readonly body?: string | undefined; readonly headers?: Readonly<Record<string, string>> | undefined }
  ) => MockFault
  /** `429 Too Many Requests`, with a `Retry-After` header when one is given. */
  readonly rateLimited: (retryAfter?: string | undefined) => MockFault
  /** Wait `duration` on the mock's `Clock`, then answer normally. */
  readonly delay: (duration: Duration.DurationInput) => MockFault
  /** Never answer. */
  readonly hang: MockFault
  /** Answer with a raw (by default unparsable) body, status 200 unless given. */
  readonly malformed: (body?: string, status?: number) => MockFault
  /** Drop the connection without answering. */
  readonly reset: MockFault
} = internal.MockFault

/**
 * The endpoints of the mock, as used by {@link MockAmp.Controls.script} and
 * {@link MockAmpCounters}. `"assets"` covers both the list and the single-asset route.
 *
 * @since 0.1.0
 * @category models
 */
export type MockEndpoint = "obtain" | "refresh" | "info" | "assets" | "changelog"

/**
 * Requests received since start (or the last reset). Faulted requests count too;
 * `unauthorized` counts the 401 answers of the authentication check and `total` counts every
 * request, including unknown paths.
 *
 * @since 0.1.0
 * @category models
 */
export interface MockAmpCounters {
  readonly obtain: number
  readonly refresh: number
  readonly info: number
  readonly assets: number
  readonly changelog: number
  readonly unauthorized: number
  readonly total: number
}

/**
 * One request as the mock received it, in the request log (see
 * {@link MockAmp.Controls.requests}).
 *
 * @since 0.1.0
 * @category models
 */
export interface MockRequest {
  /** The endpoint it was routed to; `undefined` for an unknown path (answered 404). */
  readonly endpoint: MockEndpoint | undefined
  readonly method: string
  /** The full URL: as the client sent it in memory; from the `Host` header over a socket. */
  readonly url: string
  /** The `Authorization` header as sent (it carries the token), or `undefined`. */
  readonly authorization: string | undefined
}

/**
 * An asset served by `GET /assets/`.
 *
 * @since 0.1.0
 * @category models
 */
export interface MockAsset {
  readonly asset_uuid: string
  readonly asset_id: string
  readonly name: string
  readonly ticker: string | null
  readonly precision: number
  readonly domain: string | null
  readonly is_registered: boolean
  readonly is_authorized: boolean
  readonly is_locked: boolean
}

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
 * What {@link mintToken} puts in a token.
 *
 * @since 0.1.0
 * @category models
 */
export interface MintOptions {
  /** The `sub` claim. Defaults to `"mock_user"`. */
  readonly subject?: string | undefined
  /** The token's lifetime from now: `exp` is `now + lifetime` in whole seconds, rounded down. Defaults to 24 hours. */
  readonly lifetime?: Duration.DurationInput | undefined
  /** When `false`, no `exp` claim. Defaults to `true`. */
  readonly exp?: boolean | undefined
  /** The `jti` claim. Defaults to a random UUID, which makes every token unique. */
  readonly jti?: string | number | undefined
}

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
 * The types of the `MockAmp` service.
 *
 * @since 0.1.0
 * @category models
 */
export declare namespace MockAmp {
  /**
   * What a test reads and changes on a fake AMP, however it is reached (in memory or over a
   * socket).
   *
   * @since 0.1.0
   * @category models
   */
  export interface Controls {
    /** A snapshot of the request counters. */
    readonly counters: Effect.Effect<MockAmpCounters>
    /** Sets every counter back to zero and empties the request log. */
    readonly resetCounters: Effect.Effect<void>
    /** Every request received since start (or the last reset), oldest first. */
    readonly requests: Effect.Effect<ReadonlyArray<MockRequest>>
    /**
     * Appends faults to the endpoint's queue. Each request to that endpoint consumes the next
     * fault in order; once the queue is empty the endpoint behaves normally again.
     */
    readonly script: (endpoint: MockEndpoint, ...faults: ReadonlyArray<MockFault>) => Effect.Effect<void>
    /** Drops every fault not consumed yet. */
    readonly clearScript: Effect.Effect<void>
    /** Changes the lifetime of tokens issued from now on. */
    readonly setTokenLifetime: (lifetime: Duration.DurationInput) => Effect.Effect<void>
    /** Changes the delay added before every obtain / refresh answer. */
    readonly setLatency: (latency: Duration.DurationInput) => Effect.Effect<void>
    /** Every token issued so far, oldest first (for leak checks). */
    readonly issuedTokens: Effect.Effect<ReadonlyArray<string>>
    /** Makes every token issued so far answer 401, as if revoked server-side. Later ones are valid. */
    readonly revokeAll: Effect.Effect<void>
    /** Makes one token answer 401 from now on. */
    readonly revoke: (token: string) => Effect.Effect<void>
  }

  /**
   * The controls, and how to reach the mock: its routes as an `HttpApp`, and an in-memory
   * `HttpClient` with the base URL to use it with.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service extends Controls {
    /**
     * The routes as an `HttpApp`, to serve on any platform. It fails only with
     * {@link ConnectionReset}, when a `Reset` fault is played.
     */
    readonly app: HttpApp.Default<ConnectionReset>
    /** An `HttpClient` that hands every request to `app` in memory: no socket, any host. */
    readonly httpClient: HttpClient.HttpClient
    /** A base URL for the in-memory client: `"http://amp.mock.invalid/api"`. */
    readonly baseUrl: string
  }
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
