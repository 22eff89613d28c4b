/**
 * The Redis store's own metrics, beside the core's `TokenMetrics` (which the store also feeds:
 * `amp_token_lock_waits_total` when a renewal waited for another process's lock, and through
 * the token service `amp_token_persistence_failures_total` when a load or save failed).
 *
 * Like the core's, nothing here is recorded on the hot path: only when the store is used.
 *
 * @since 0.1.0
 */
import { Metric } from "effect"

/**
 * Saves refused by the compare-and-set because another token, stored meanwhile, expires as late
 * or later: a replica lost a race (or its lease); the newer token was kept and the replica
 * serves it. Not an error.
 *
 * @since 0.1.0
 * @category metrics
 */
export const saveRejections = Metric.counter("amp_token_redis_save_rejections_total", {
  description: "Saves to Redis refused because the stored token expires as late or later",
  incremental: true
})

/**
 * Locks lost while held: the lease ran out before it could be extended (Redis stalled or
 * restarted, or the process was paused), so another process may have renewed meanwhile.
 *
 * @since 0.1.0
 * @category metrics
 */
export const lockLost = Metric.counter("amp_token_redis_lock_lost_total", {
  description: "Redis locks whose lease ran out while held",
  incremental: true
})

/**
 * Redis commands that failed or timed out, labelled `operation` = `load` | `save` | `remove`
 * | `lock` | `extend` | `release`. A `lock` here is a renewal that went ahead without the
 * fleet's lock (or failed, when the store is configured to).
 *
 * @since 0.1.0
 * @category metrics
 */
export const unavailable = Metric.counter("amp_token_redis_unavailable_total", {
  description: "Operations of the Redis token store that could not reach Redis, by operation",
  incremental: true
})

/**
 * Stored values that could not be read, labelled `reason` = `unreadable` | `unknown-key` |
 * `undecryptable` | `no-key`. Each counts as no token: a fresh login replaces it.
 *
 * @since 0.1.0
 * @category metrics
 */
export const corrupt = Metric.counter("amp_token_redis_corrupt_total", {
  description: "Values in Redis that could not be read as a token (treated as none), by reason",
  incremental: true
})
