/**
 * @since 0.1.0
 */
export * as NodeAmp from "./NodeAmp.js"
