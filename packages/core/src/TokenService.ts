/**
 * The token service: an always-valid AMP token for whoever asks. One fiber renews (refresh while
 * valid, else a login) while every other caller shares its result; the new token is saved to the
 * `TokenStore`. `obtainToken`, `forceRefresh` and `refreshToken` never answer with a token
 * obtained before they were called, nor with the failure of a renewal they did not cause.
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
 * Always-valid AMP tokens. Ask `getToken` before each call to AMP (or let `AmpClient` do it).
 *
 * @example
 * ```ts
 * import { AuthApi, MockAmp, TokenService, TokenStore } from "@amp-effect/core"
 * import { Effect, Layer, Redacted } from "effect"
 *
 * // Scripted logins and a store in memory, so that this runs anywhere.
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
   * A valid token: from memory outside the refresh margin, else renewed and saved. Concurrent
   * callers share one renewal, and its failure: a wrong password costs one attempt.
   */
  readonly getToken: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError>
  /** Logs in now, whatever the current token, and saves the new token. */
  readonly obtainToken: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError>
  /**
   * Refreshes the current token now, with no fallback to login: fails with `NoTokenToRefresh`
   * when there is no unexpired token, or with the refresh error.
   */
  readonly refreshToken: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError | NoTokenToRefresh>
  /** Renews now whatever the margin says: refresh when possible, else login. */
  readonly forceRefresh: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError>
  /**
   * Renews after the server rejected `rejected` (a 401), unless another fiber already replaced
   * it: then the new token is returned without a call.
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
 * The options of `layerConfig`: a `Config` for each option, by default `AmpConfig`'s.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions {
  /** Default `AmpConfig.refreshMargin` (`AMP_TOKEN_REFRESH_MARGIN_SECONDS`). */
  readonly refreshMargin?: Config.Config<Duration.DurationInput> | undefined
}

/**
 * The default refresh margin: five minutes, as the Rust client.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultRefreshMargin: Duration.Duration = AmpConfig.defaultRefreshMargin

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
 * The service with explicit options.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: TokenServiceOptions): Layer.Layer<TokenService, never, AuthApi | TokenStore> =>
  Layer.effect(TokenService, make(options))

/**
 * The service with its options read from `Config` (see `ConfigOptions`); an invalid value fails
 * the layer with an `AmpConfigError` naming the variable.
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
 * A service that always answers with `token`: for application tests that do not care about
 * the token's lifecycle.
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
