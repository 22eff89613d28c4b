/**
 * The Redis store's configuration, read through Effect's `Config`.
 *
 * @since 0.1.0
 */
export * as RedisConfig from "./RedisConfig.js"

/**
 * The Redis store's own metrics.
 *
 * @since 0.1.0
 */
export * as RedisMetrics from "./RedisMetrics.js"

/**
 * A token store in Redis (or Valkey), shared by a fleet of processes and machines.
 *
 * @since 0.1.0
 */
export * as RedisTokenStore from "./RedisTokenStore.js"
