/**
 * @since 0.1.0
 */
export * as MockAmpServer from "./MockAmpServer.js"
export * as NodeAmp from "./NodeAmp.js"
export * as NodeTokenStore from "./NodeTokenStore.js"
