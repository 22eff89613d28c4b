// Moved to the published test support (@amp-effect/core/testing); kept until the tests that
// import it from here (AuthApi, RetryPolicy) import it from there.
export * from "../../src/testing/LogCapture.js"
