/**
 * @since 0.1.0
 */
export * as AmpClient from "./AmpClient.js"

/**
 * The library's configuration, read through Effect's `Config`.
 *
 * @since 0.1.0
 */
export * as AmpConfig from "./AmpConfig.js"

/**
 * How a call to the AMP API can fail: `AuthError` and `ApiError`, each with a `reason`.
 *
 * @since 0.1.0
 */
export * as AmpHttpError from "./AmpHttpError.js"

/**
 * The two AMP authentication endpoints (`obtain_token`, `refresh-token`) as a service.
 *
 * @since 0.1.0
 */
export * as AuthApi from "./AuthApi.js"

/**
 * AES-256 keys that encrypt a stored token, and `AMP_TOKEN_ENCRYPTION_KEY`.
 *
 * @since 0.1.0
 */
export * as EncryptionKey from "./EncryptionKey.js"

/**
 * Reads the expiry a JWT announces.
 *
 * @since 0.1.0
 */
export * as Jwt from "./Jwt.js"

/**
 * This process and a liveness check of its neighbours, for the file store's lock.
 *
 * @since 0.1.0
 */
export * as LocalProcess from "./LocalProcess.js"

/**
 * A fake AMP API for tests, in memory (or over TCP with `@amp-effect/node`'s `MockAmpServer`).
 *
 * @since 0.1.0
 */
export * as MockAmp from "./MockAmp.js"

/**
 * Whether tokens are written to disk, decided from configuration alone.
 *
 * @since 0.1.0
 */
export * as PersistencePolicy from "./PersistencePolicy.js"

/**
 * The retry policy for calls to the AMP API, as a `Schedule`.
 *
 * @since 0.1.0
 */
export * as RetryPolicy from "./RetryPolicy.js"

/**
 * The lock a shared token store holds while one process renews: a store supplies its storage
 * primitives, the waiting, lease renewal and release are written once.
 *
 * @since 0.1.0
 */
export * as StoreLock from "./StoreLock.js"

/**
 * A token and its lifetime, and the `token.json` file format.
 *
 * @since 0.1.0
 */
export * as TokenData from "./TokenData.js"

/**
 * The JSON envelope a shared store writes a token in, sealed or in clear.
 *
 * @since 0.1.0
 */
export * as TokenEnvelope from "./TokenEnvelope.js"

/**
 * Every way obtaining, refreshing or persisting a token can fail.
 *
 * @since 0.1.0
 */
export * as TokenError from "./TokenError.js"

/**
 * Facts about the current token (expiry, age), for status displays.
 *
 * @since 0.1.0
 */
export * as TokenInfo from "./TokenInfo.js"

/**
 * The library's metrics.
 *
 * @since 0.1.0
 */
export * as TokenMetrics from "./TokenMetrics.js"

/**
 * The token service: an always-valid AMP token for whoever asks.
 *
 * @since 0.1.0
 */
export * as TokenService from "./TokenService.js"

/**
 * Where tokens persist between runs: a file, memory, or nowhere.
 *
 * @since 0.1.0
 */
export * as TokenStore from "./TokenStore.js"
