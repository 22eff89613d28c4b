/**
 * What a caller may want to know about the current token, computed from `Clock`.
 *
 * @since 0.1.0
 */
import { Data, DateTime, Duration } from "effect"
import type { TokenData } from "./TokenData.js"

/**
 * Facts about the current token, at the moment they were computed (`TokenService.getTokenInfo`).
 * No secret in here.
 *
 * @since 0.1.0
 * @category models
 */
export class TokenInfo extends Data.Class<{
  readonly expiresAt: DateTime.Utc
  readonly obtainedAt: DateTime.Utc
  /** Time left until expiry; zero once expired. */
  readonly expiresIn: Duration.Duration
  /** Time since the token was obtained. */
  readonly age: Duration.Duration
  readonly isExpired: boolean
  /** Not expired, but within the refresh margin: the next `getToken` renews it. */
  readonly expiresSoon: boolean
}> {}

/**
 * Computes the info for `data` at `nowMillis`, with `refreshMargin` deciding `expiresSoon`.
 *
 * @example
 * ```ts
 * import { TokenData, TokenInfo } from "@amp-effect/core"
 * import { DateTime, Duration, Redacted } from "effect"
 *
 * const obtainedAt = DateTime.unsafeMake("2024-01-01T12:00:00Z")
 * const data = TokenData.TokenData.fromToken(Redacted.make("opaque"), obtainedAt) // 24 hours
 * const info = TokenInfo.make(data, DateTime.toEpochMillis(obtainedAt) + 23.95 * 3600_000, Duration.minutes(5))
 * console.log(Duration.format(info.expiresIn), info.isExpired, info.expiresSoon)
 * // Output: 3m false true
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (data: TokenData, nowMillis: number, refreshMargin: Duration.Duration): TokenInfo => {
  const expiresAt = DateTime.toEpochMillis(data.expiresAt)
  const obtainedAt = DateTime.toEpochMillis(data.obtainedAt)
  const isExpired = nowMillis >= expiresAt
  return new TokenInfo({
    expiresAt: data.expiresAt,
    obtainedAt: data.obtainedAt,
    expiresIn: Duration.millis(Math.max(0, expiresAt - nowMillis)),
    age: Duration.millis(Math.max(0, nowMillis - obtainedAt)),
    isExpired,
    expiresSoon: !isExpired && expiresAt - nowMillis <= Duration.toMillis(refreshMargin)
  })
}
