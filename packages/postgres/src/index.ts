/**
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as PostgresConfig from "./PostgresConfig.js"

/**
 * @since 0.1.0
 */
export * as PostgresMetrics from "./PostgresMetrics.js"

/**
 * @since 0.1.0
 */
export * as PostgresTokenStore from "./PostgresTokenStore.js"
