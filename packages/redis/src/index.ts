/**
 * @since 0.1.0
 */
export * as EncryptionKey from "./EncryptionKey.js"
export * as RedisConfig from "./RedisConfig.js"
export * as RedisMetrics from "./RedisMetrics.js"
export * as RedisTokenStore from "./RedisTokenStore.js"
