// Moved to the published test support (@amp-effect/core/testing); kept until the test that
// imports it from here (AmpClient) imports it from there.
export * from "../../src/testing/SpanCapture.js"
