/**
 * Counters of the Postgres token store, beside the token service's own (`TokenMetrics`).
 *
 * @since 0.1.0
 */
import { Metric } from "effect"

/**
 * Saves the table refused because the stored token expires as late or later (another process
 * renewed meanwhile): the newer token stays.
 *
 * @since 0.1.0
 * @category metrics
 */
export const saveRejections = Metric.counter("amp_token_postgres_save_rejections_total", {
  description: "Saves to Postgres refused because the stored token expires as late or later",
  incremental: true
})

/**
 * Advisory locks found no longer held by their holder (its session ended: paused past the lease,
 * connection cut).
 *
 * @since 0.1.0
 * @category metrics
 */
export const lockLost = Metric.counter("amp_token_postgres_lock_lost_total", {
  description: "Postgres advisory locks lost while held",
  incremental: true
})

/**
 * Operations that could not reach Postgres (down, timed out, connection lost), tagged
 * `operation` = `load` | `save` | `remove` | `lock` | `extend` | `release`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const unavailable = Metric.counter("amp_token_postgres_unavailable_total", {
  description: "Operations of the Postgres token store that could not reach Postgres, by operation",
  incremental: true
})

/**
 * Stored values that could not be read as a token (treated as none), tagged `reason` =
 * `unreadable` | `no-key` | `unknown-key` | `undecryptable` (see `TokenEnvelope.Unreadable`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const corrupt = Metric.counter("amp_token_postgres_corrupt_total", {
  description: "Values in Postgres that could not be read as a token (treated as none), by reason",
  incremental: true
})
