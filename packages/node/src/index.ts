/**
 * @since 0.1.0
 */
export * as MockAmpServer from "./MockAmpServer.js"

/**
 * The whole stack on Node in one layer, configured from the environment.
 *
 * @since 0.1.0
 */
export * as NodeAmp from "./NodeAmp.js"

/**
 * The shared token file on Node's file system, with this process recorded in its lock.
 *
 * @since 0.1.0
 */
export * as NodeTokenStore from "./NodeTokenStore.js"
