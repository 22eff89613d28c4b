/**
 * The library's metrics, through Effect's `Metric`: export them with any metrics layer. Nothing
 * is recorded on the hot path (a valid token in memory).
 *
 * @since 0.1.0
 */
import { Metric, MetricLabel } from "effect"

/**
 * Logins, labelled `outcome` = `success` | the `AuthError`'s reason | `interrupted`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const logins = Metric.counter("amp_token_logins_total", {
  description: "Logins (obtain_token calls, retries counted once), by outcome",
  incremental: true
})

/**
 * Refreshes, labelled `outcome` = `success` | the `AuthError`'s reason | `interrupted`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const refreshes = Metric.counter("amp_token_refreshes_total", {
  description: "Token refreshes (refresh-token calls, retries counted once), by outcome",
  incremental: true
})

/**
 * Renewals where the refresh failed and a login took over.
 *
 * @since 0.1.0
 * @category metrics
 */
export const refreshFallbacks = Metric.counter("amp_token_refresh_fallbacks_total", {
  description: "Refreshes that failed and fell back to a login",
  incremental: true
})

/**
 * Retries of a call to the authentication endpoints, labelled `endpoint` and `cause`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const retries = Metric.counter("amp_token_retries_total", {
  description: "Retries of calls to the AMP authentication endpoints, by endpoint and cause",
  incremental: true
})

/**
 * Failures of the token store, labelled `operation` (`load`, `save`, `remove`, `lock`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const persistenceFailures = Metric.counter("amp_token_persistence_failures_total", {
  description: "Token store operations that failed (the token is then served from memory)",
  incremental: true
})

/**
 * Times a renewal had to wait for another process's lock on the store.
 *
 * @since 0.1.0
 * @category metrics
 */
export const lockWaits = Metric.counter("amp_token_lock_waits_total", {
  description: "Renewals that waited for another process's token file lock",
  incremental: true
})

/**
 * Where the token served after a renewal came from, labelled `source` = `server` | `file`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const renewals = Metric.counter("amp_token_renewals_total", {
  description: "Renewals of the current token, by where the new token came from",
  incremental: true
})

/**
 * Seconds until the current token expires (as of the last renewal or `getTokenInfo`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const secondsUntilExpiry = Metric.gauge("amp_token_seconds_until_expiry", {
  description: "Seconds until the current AMP token expires (updated on renewal and getTokenInfo)"
})

/**
 * A metric label, as the library's counters are labelled.
 *
 * @since 0.1.0
 * @category utils
 */
export const label = (key: string, value: string) => MetricLabel.make(key, value)
