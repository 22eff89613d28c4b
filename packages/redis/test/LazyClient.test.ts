/**
 * node-redis is loaded when a store opens a client of its own, not when the package is
 * imported: here `redis` cannot be loaded at all, as when the peer dependency is missing.
 */
import { TokenStore } from "@amp-effect/core"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Option } from "effect"
import { vi } from "vitest"

vi.mock("redis", () => {
  throw new Error("Cannot find package 'redis'")
})

const account = { baseUrl: "https://amp.example.com/api", username: "svc-issuer@example.com" }

/** Enough of a client to build a store over; never connected. */
const client = {
  isOpen: false,
  isReady: false,
  sendCommand: () => Promise.reject(new Error("not connected")),
  on: () => client,
  off: () => client
}

describe("node-redis on first use", () => {
  it.scoped("the package imports, and a store over an application's client is built, without it", () =>
    Effect.gen(function*() {
      const { RedisTokenStore } = yield* Effect.promise(() => import("../src/index.js"))
      const store = yield* Effect.provide(TokenStore.TokenStore, RedisTokenStore.layerFromClient(client, { account }))
      expect(typeof store.load).toBe("object")
    }))

  it.scoped("a store with a client of its own says what to install", () =>
    Effect.gen(function*() {
      const { RedisTokenStore } = yield* Effect.promise(() => import("../src/index.js"))
      const exit = yield* Effect.exit(RedisTokenStore.make({ url: "redis://127.0.0.1:1", account }))
      expect(Exit.isFailure(exit)).toBe(true)
      const defect = Exit.isFailure(exit) ? Cause.dieOption(exit.cause) : Option.none()
      // The cause follows (here vitest's account of the failed import).
      expect(Option.map(defect, (error) => (error as Error).message)).toEqual(
        Option.some(expect.stringMatching(/^RedisTokenStore needs the redis package \(npm install redis\): \S/))
      )
    }))
})
