/**
 * The token service: an always-valid AMP token for whoever asks.
 *
 * `getToken` answers from memory while the token is valid and outside the refresh margin: no
 * lock, no I/O. Otherwise one fiber renews it (refresh while the token is still valid, a new
 * login when refresh fails or the token has expired) while every other caller waits for that
 * one result; the new token is kept in memory and saved to the `TokenStore` (when a shared store
 * keeps a later token another process saved meanwhile, that one is served instead).
 *
 * The explicit operations (`obtainToken`, `forceRefresh`, `refreshToken`) renew whatever the
 * current token: they never answer with a token obtained before they were called, nor with the
 * failure of a renewal they did not cause. Called while a renewal is under way, they wait for it
 * to end and then renew. Explicit calls that wait together share the next renewal (it starts
 * after all of them were called) when it renews as they would: three concurrent `obtainToken`
 * calls make two logins, the first call's and one for the two that waited.
 *
 * The implementation, with the whole lifecycle in one function, is in
 * `internal/tokenService.ts` (`lifecycle`).
 *
 * @since 0.1.0
 */
import type { Duration } from "effect"
import { Clock, Config, Context, DateTime, Effect, Layer, Option, Redacted } from "effect"
import * as AmpConfig from "./AmpConfig.js"
import type { AuthApi } from "./AuthApi.js"
import * as internal from "./internal/tokenService.js"
import { TokenData } from "./TokenData.js"
import type { AuthError, NoTokenToRefresh, TokenStoreError } from "./TokenError.js"
import * as TokenInfo from "./TokenInfo.js"
import type { TokenStore } from "./TokenStore.js"

/**
 * Always-valid AMP tokens. Ask `getToken` for a token before each call to AMP (or let
 * `AmpClient` do it): it costs a memory read while the token is valid, and renews it when not.
 *
 * @example
 * ```ts
 * import { AuthApi, MockAmp, TokenService, TokenStore } from "@amp-effect/core"
 * import { Effect, Layer, Redacted } from "effect"
 *
 * // Logins scripted with minted tokens, and a store in memory, so that this runs anywhere;
 * // an application takes `AuthApi` from its configuration and a file or Redis store.
 * const ScriptedAuthApi = Layer.succeed(
 *   AuthApi.AuthApi,
 *   AuthApi.AuthApi.of({
 *     obtain: Effect.map(MockAmp.mintToken(), Redacted.make),
 *     refresh: () => Effect.map(MockAmp.mintToken(), Redacted.make)
 *   })
 * )
 * const TokenServiceLive = TokenService.layer().pipe(
 *   Layer.provide(Layer.merge(ScriptedAuthApi, TokenStore.layerMemory))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const tokens = yield* TokenService.TokenService
 *   const first = yield* tokens.getToken // logs in
 *   const second = yield* tokens.getToken // answered from memory
 *   console.log(Redacted.value(first) === Redacted.value(second), `${first}`)
 *   // Output: true <redacted>
 * })
 *
 * Effect.runPromise(Effect.provide(program, TokenServiceLive))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class TokenService extends Context.Tag("@amp-effect/core/TokenService")<TokenService, {
  /**
   * A valid token: from memory when it is valid and not within the refresh margin, otherwise
   * renewed (refresh, falling back to login; login when expired) and saved. Concurrent callers
   * share one renewal, and its failure: a wrong password costs one attempt, not one per caller.
   */
  readonly getToken: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError>
  /**
   * Logs in now, whatever the current token, and saves the new token. Never answers with a
   * token obtained before the call: it waits for a renewal under way, then logs in (sharing a
   * login that other `obtainToken` or `forceRefresh` calls waiting with it started).
   */
  readonly obtainToken: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError>
  /**
   * Refreshes the current token through the refresh endpoint now, with no fallback to login:
   * fails with `NoTokenToRefresh` when there is no unexpired token, or with the refresh error.
   * Waits for a renewal under way first; the new token is saved.
   */
  readonly refreshToken: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError | NoTokenToRefresh>
  /**
   * Renews now whatever the margin says: refresh when possible, else login. Like `obtainToken`,
   * never answers with a token obtained before the call.
   */
  readonly forceRefresh: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError>
  /**
   * Renews after the server rejected `rejected` (a 401): when it is still the current token it
   * is replaced (refresh, else login); when another fiber already replaced it, the new token
   * is returned without a call. Concurrent calls share one renewal (and its failure).
   */
  readonly renewRejected: (
    rejected: Redacted.Redacted<string>
  ) => Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError>
  /** Facts about the current token, or `None` when there is none. Never a network call. */
  readonly getTokenInfo: Effect.Effect<Option.Option<TokenInfo.TokenInfo>>
  /** Forgets the token in memory and in the store (after any renewal under way). */
  readonly clearToken: Effect.Effect<void, TokenStoreError>
}>() {}

/**
 * Options of the service.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenServiceOptions {
  /** Renew this long before expiry. Default `defaultRefreshMargin` (5 minutes). */
  readonly refreshMargin?: Duration.DurationInput
}

/**
 * The options of `layerConfig`: a `Config` for each option, by default the one `AmpConfig`
 * reads from the seed's variables. Use `Config.nested` (or `AmpConfig.nested(prefix)`) to read
 * them under other names.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions {
  /**
   * Default `AmpConfig.refreshMargin` (`AMP_TOKEN_REFRESH_MARGIN_SECONDS`, else
   * `defaultRefreshMargin`).
   */
  readonly refreshMargin?: Config.Config<Duration.DurationInput> | undefined
}

/**
 * The default refresh margin: five minutes, as the Rust client (`AmpConfig.defaultRefreshMargin`).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultRefreshMargin: Duration.Duration = AmpConfig.defaultRefreshMargin

/**
 * When a renewal fails while the current token is still valid, `getToken` keeps serving that
 * token and tries again this much later (or at expiry, whichever comes first).
 *
 * @since 0.1.0
 * @category constants
 */
export const renewalRetryDelay: Duration.Duration = internal.renewalRetryDelay

/**
 * Builds the service over an `AuthApi` and a `TokenStore`, loading the stored token first.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: TokenServiceOptions
) => Effect.Effect<TokenService["Type"], never, AuthApi | TokenStore> = internal.make

/**
 * The service with explicit options; needs an `AuthApi` and a `TokenStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: TokenServiceOptions): Layer.Layer<TokenService, never, AuthApi | TokenStore> =>
  Layer.effect(TokenService, make(options))

/**
 * The service with its options read from `Config` (see `ConfigOptions`; by default the refresh
 * margin from `AMP_TOKEN_REFRESH_MARGIN_SECONDS`); needs an `AuthApi` and a `TokenStore`. An
 * invalid value fails the layer with an `AmpConfigError` naming the variable.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options?: ConfigOptions
): Layer.Layer<TokenService, AmpConfig.AmpConfigError, AuthApi | TokenStore> =>
  Layer.effect(
    TokenService,
    Effect.flatMap(
      AmpConfig.read(Config.all({ refreshMargin: options?.refreshMargin ?? AmpConfig.refreshMargin })),
      make
    )
  )

/**
 * A service that always answers with `token` (default `"mock-token"`): no network, no disk,
 * nothing left behind. For application tests that do not care about the token's lifecycle.
 *
 * @example
 * ```ts
 * import { TokenService } from "@amp-effect/core"
 * import { Effect, Redacted } from "effect"
 *
 * const program = Effect.flatMap(TokenService.TokenService, (tokens) => tokens.getToken)
 *
 * Effect.runPromise(Effect.provide(program, TokenService.layerMock("test-token"))).then((token) =>
 *   console.log(Redacted.value(token))
 * )
 * // Output: test-token
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMock = (token = "mock-token"): Layer.Layer<TokenService> =>
  Layer.effect(
    TokenService,
    Effect.map(Clock.currentTimeMillis, (now) => {
      const data = TokenData.fromToken(Redacted.make(token), DateTime.unsafeMake(now))
      const fixed = Effect.succeed(data.token)
      return TokenService.of({
        getToken: fixed,
        obtainToken: fixed,
        refreshToken: fixed,
        forceRefresh: fixed,
        renewRejected: () => fixed,
        getTokenInfo: Effect.map(
          Clock.currentTimeMillis,
          (at) => Option.some(TokenInfo.make(data, Math.max(at, now), defaultRefreshMargin))
        ),
        clearToken: Effect.void
      })
    })
  )
