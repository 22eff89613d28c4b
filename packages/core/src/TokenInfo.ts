/**
 * What a caller may want to know about the current token, computed from `Clock`.
 *
 * @since 0.1.0
 */
import { Data, DateTime, Duration } from "effect"
import type { TokenData } from "./TokenData.js"

/** Facts about the current token, at the moment they were computed. No secret in here. */
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

/** Computes the info for `data` at `nowMillis`, with `refreshMargin` deciding `expiresSoon`. */
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
