/**
 * The Redis store's own metrics, beside core's `TokenMetrics` (which the store also feeds). Like
 * those, nothing here is recorded on the hot path.
 *
 * @since 0.1.0
 */
import { Metric } from "effect"

/**
 * Saves refused by the compare-and-set because the stored token expires as late or later: a
 * replica lost a race (or its lease) and serves the newer token. Not an error.
 *
 * @since 0.1.0
 * @category metrics
 */
export const saveRejections = Metric.counter("amp_token_redis_save_rejections_total", {
  description: "Saves to Redis refused because the stored token expires as late or later",
  incremental: true
})

/**
 * Locks whose lease ran out while held (Redis stalled or restarted, or the process paused).
 *
 * @since 0.1.0
 * @category metrics
 */
export const lockLost = Metric.counter("amp_token_redis_lock_lost_total", {
  description: "Redis locks whose lease ran out while held",
  incremental: true
})

/**
 * Commands that failed or timed out, by `operation` (`load`, `save`, `remove`, `lock`,
 * `extend`, `release`); a `lock` is a renewal that went ahead without the lock (or failed).
 *
 * @since 0.1.0
 * @category metrics
 */
export const unavailable = Metric.counter("amp_token_redis_unavailable_total", {
  description: "Operations of the Redis token store that could not reach Redis, by operation",
  incremental: true
})

/**
 * Stored values that could not be read, by `reason` (`TokenEnvelope.Unreadable`'s); each counts
 * as no token, which a fresh login replaces.
 *
 * @since 0.1.0
 * @category metrics
 */
export const corrupt = Metric.counter("amp_token_redis_corrupt_total", {
  description: "Values in Redis that could not be read as a token (treated as none), by reason",
  incremental: true
})
