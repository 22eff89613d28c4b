import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { sampleToken, storeContract } from "../src/testing/TokenStoreContract.js"
import { TokenStore } from "../src/TokenStore.js"
import * as Store from "../src/TokenStore.js"

// The file store runs the same contract in packages/node/test/TokenFile.test.ts, on a real disk.
storeContract("layerMemory", Store.layerMemory)

describe("TokenStore.layerMemory", () => {
  it.effect("describes itself as memory", () =>
    Effect.map(TokenStore, (store) => expect(store.description).toBe("memory")).pipe(
      Effect.provide(Store.layerMemory)
    ))

  it.effect("each layer build has its own token", () =>
    Effect.gen(function*() {
      yield* Effect.flatMap(TokenStore, (store) => store.save(sampleToken("mine"))).pipe(
        Effect.provide(Store.layerMemory)
      )
      const other = yield* Effect.flatMap(TokenStore, (store) => store.load).pipe(Effect.provide(Store.layerMemory))
      expect(Option.isNone(other)).toBe(true)
    }))
})

describe("TokenStore.layerNoop", () => {
  it.effect("keeps nothing: save then load is None", () =>
    Effect.gen(function*() {
      const store = yield* TokenStore
      yield* store.save(sampleToken("forgotten"))
      expect(Option.isNone(yield* store.load)).toBe(true)
      yield* store.remove
      expect(store.description).toBe("none")
    }).pipe(Effect.provide(Store.layerNoop)))

  it.effect("withLock runs the effect as it is", () =>
    Effect.gen(function*() {
      const store = yield* TokenStore
      expect(yield* store.withLock(Effect.succeed("ran"))).toBe("ran")
      expect(yield* Effect.flip(store.withLock(Effect.fail("failed")))).toBe("failed")
    }).pipe(Effect.provide(Store.layerNoop)))
})
