/**
 * What the Redis store's test files share: one redis-server per file (started before its tests,
 * stopped after them), a key prefix per store (tests share the server), the account, helpers.
 */
import { TokenStoreContract } from "@amp-effect/core/testing"
import { describe } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { afterAll, beforeAll } from "vitest"
import { RedisServer } from "../../src/testing/index.js"

export const account = { baseUrl: "https://amp.example.com/api", username: "svc-issuer@example.com" }

/** Registers the calling file's server hooks; its keys start with `name`. */
export const perFile = (name: string) => {
  RedisServer.warnIfSkipped()
  let server: RedisServer.RedisServer | undefined
  beforeAll(async () => {
    if (RedisServer.unavailable === undefined) server = await RedisServer.start()
  }, 120_000)
  afterAll(async () => {
    await server?.stop()
  })
  let stores = 0
  const redis = () => server!
  return {
    redis,
    freshPrefix: () => `${name}-${process.pid}-${stores++}`,
    command: (...args: Array<string>) => Effect.promise(() => redis().command(...args)),
    /** `describe`, or `describe.skip` when this machine has no redis-server. */
    suite: (RedisServer.unavailable === undefined ? describe : describe.skip) as typeof describe
  }
}

/** A token obtained now (real time, moved by `offsetMillis`), valid for 24 hours. */
export const freshToken = (token: string, offsetMillis = 0) =>
  TokenStoreContract.sampleToken(token, Date.now() + offsetMillis)

/** Repeats `effect` every 50 ms until `done` holds for its result, which it answers. */
export const pollUntil = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  Effect.repeat(Effect.delay(effect, Duration.millis(50)), { until: done })
