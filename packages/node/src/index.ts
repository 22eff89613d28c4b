/**
 * @since 0.1.0
 */
export * as MockAmpServer from "./MockAmpServer.js"

/**
 * @since 0.1.0
 */
export * as NodeAmp from "./NodeAmp.js"

/**
 * @since 0.1.0
 */
export * as NodeTokenStore from "./NodeTokenStore.js"
