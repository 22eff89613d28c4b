/**
 * @since 0.1.0
 */
export * as AmpClient from "./AmpClient.js"
export * as AmpConfig from "./AmpConfig.js"
export * as AmpHttpError from "./AmpHttpError.js"
export * as AuthApi from "./AuthApi.js"
export * as Jwt from "./Jwt.js"
export * as LocalProcess from "./LocalProcess.js"
export * as MockAmp from "./MockAmp.js"
export * as PersistencePolicy from "./PersistencePolicy.js"
export * as RetryPolicy from "./RetryPolicy.js"
export * as TokenData from "./TokenData.js"
export * as TokenError from "./TokenError.js"
export * as TokenInfo from "./TokenInfo.js"
export * as TokenMetrics from "./TokenMetrics.js"
export * as TokenService from "./TokenService.js"
export * as TokenStore from "./TokenStore.js"
