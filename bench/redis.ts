/**
 * The Redis token store (`@amp-effect/redis`) in the shared-store sections (`bench/sharedStore.ts`),
 * against a throwaway `redis-server` (the tests' own: loopback, a free port, persistence off; the
 * sections fail with a note when none is installed): redis-fleet and redis-hot-path.
 */
import { RedisTokenStore } from "@amp-effect/redis"
import { RedisServer } from "@amp-effect/redis/testing"
import { Effect } from "effect"
import * as SharedStore from "./sharedStore.js"

const redis: SharedStore.SharedStore = {
  id: "redis",
  name: "Redis",
  server: RedisServer.unavailable === undefined
    ? RedisServer.scoped()
    : Effect.dieMessage(RedisServer.unavailable),
  childEnv: (url) => ({ AMP_REDIS_URL: url, AMP_REDIS_KEY_PREFIX: "bench" }),
  layer: (url, account) => RedisTokenStore.layer({ url, account, keyPrefix: "bench-hot-path" }),
  lock: "the Redis lock (RedisTokenStore withLock)"
}

export const runFleet = SharedStore.runFleet(redis)

export const runHotPath = SharedStore.runHotPath(redis)
