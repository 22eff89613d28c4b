/**
 * `NodeAmp`'s persistence policy picking the Redis store from `AMP_TOKEN_STORE=redis`, against a
 * real redis-server: the optional peer is loaded, configured from `AMP_REDIS_*`, and a token saved
 * through one store is loaded by a second one built later (so it was kept in Redis, not in memory
 * or on disk).
 */
import { TokenStore } from "@amp-effect/core"
import { TokenStoreContract } from "@amp-effect/core/testing"
import * as NodeAmp from "@amp-effect/node/NodeAmp"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option, Redacted } from "effect"
import * as RedisTokenStore from "../src/RedisTokenStore.js"
import { RedisServer } from "../src/testing/index.js"

const { sampleToken } = TokenStoreContract

RedisServer.warnIfSkipped()

const suite = RedisServer.unavailable === undefined ? describe : describe.skip

suite("NodeAmp.layerPolicyStore with AMP_TOKEN_STORE=redis", () => {
  it.scopedLive("keeps the token in Redis under the account's key", () =>
    Effect.gen(function*() {
      const redis = yield* RedisServer.scoped()
      const keyPrefix = `policy-${process.pid}`
      // A real (not mock) account: the policy would refuse any store to a mock environment.
      const account = { baseUrl: "https://amp.example.com/api", username: "svc-issuer@example.com" }
      const env = {
        AMP_API_BASE_URL: account.baseUrl,
        AMP_USERNAME: account.username,
        AMP_PASSWORD: "not-used",
        AMP_TOKEN_STORE: "redis",
        AMP_REDIS_URL: redis.url,
        AMP_REDIS_KEY_PREFIX: keyPrefix
      }
      const withStore = <A, E>(f: (store: TokenStore.TokenStore["Type"]) => Effect.Effect<A, E>) =>
        Effect.flatMap(TokenStore.TokenStore, f).pipe(
          Effect.provide(NodeAmp.layerPolicyStore()),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
        )
      const token = sampleToken("policy-token", Date.now())
      const keys = RedisTokenStore.keys(account, keyPrefix)
      const description = yield* withStore((store) => Effect.as(store.save(token), store.description))
      expect(description).toContain(keys.token)
      expect(yield* Effect.promise(() => redis.command("EXISTS", keys.token))).toBe(1)
      const loaded = yield* withStore((store) => store.load)
      expect(Option.map(loaded, (data) => Redacted.value(data.token))).toEqual(Option.some("policy-token"))
    }))
})
