// Moved to the published test support (@amp-effect/redis/testing); kept until the CLI's tests
// import it from there.
export * from "../../src/testing/RedisServer.js"
