import { describe, expect, it } from "@effect/vitest"
import { NoTokenToRefresh, TokenStoreError } from "../src/TokenError.js"

describe("NoTokenToRefresh", () => {
  it("says why there is nothing to refresh", () => {
    expect(new NoTokenToRefresh({ reason: "expired" }).message).toBe(
      "The current AMP token has expired and cannot be refreshed: obtain a new one"
    )
    expect(new NoTokenToRefresh({ reason: "no token" }).message).toBe(
      "There is no AMP token to refresh: obtain one first"
    )
  })
})

describe("TokenStoreError", () => {
  it("names the store it comes from: a token file, or a server, never a file for Redis", () => {
    const file = { store: "file", path: "/x/token.json", reason: "NoSpace" } as const
    expect(new TokenStoreError({ ...file, operation: "save" }).message).toBe(
      "Could not save the token file /x/token.json: NoSpace"
    )
    const where = "redis://cache:6379 (key amp-effect:{abc}:token)"
    const redis = { store: "redis", path: where, reason: "Redis is unreachable" } as const
    expect(new TokenStoreError({ ...redis, operation: "load" }).message).toBe(
      `Could not load the token from Redis at ${where}: Redis is unreachable`
    )
    expect(new TokenStoreError({ ...redis, operation: "save" }).message).toBe(
      `Could not save the token to Redis at ${where}: Redis is unreachable`
    )
    expect(new TokenStoreError({ ...redis, operation: "remove" }).message).toBe(
      `Could not remove the token from Redis at ${where}: Redis is unreachable`
    )
    expect(new TokenStoreError({ ...redis, operation: "lock" }).message).toBe(
      `Could not lock the token in Redis at ${where}: Redis is unreachable`
    )
    const postgres = { store: "postgres", path: "postgres://db/amp", reason: "timeout" } as const
    expect(new TokenStoreError({ ...postgres, operation: "load" }).message).toBe(
      "Could not load the token from Postgres at postgres://db/amp: timeout"
    )
    for (const store of ["redis", "postgres"] as const) {
      expect(new TokenStoreError({ ...redis, store, operation: "load" }).message).not.toContain("file")
    }
  })
})
