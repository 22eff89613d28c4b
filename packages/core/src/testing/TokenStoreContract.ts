/**
 * The contract every `TokenStore` that keeps tokens fulfils, as `@effect/vitest` tests: run
 * `TokenStoreContract.storeContract("my store", MyStore.layer(...))` for a store of your own.
 *
 * @since 0.1.0
 */
import { describe, expect, it } from "@effect/vitest"
import { DateTime, Effect, type Layer, Option, Redacted } from "effect"
import { TokenData } from "../TokenData.js"
import { TokenStore } from "../TokenStore.js"

/**
 * A token valid for 24 hours from `obtainedAtMillis` (milliseconds included: they must survive).
 *
 * @since 0.1.0
 * @category fixtures
 */
export const sampleToken = (token: string, obtainedAtMillis = Date.UTC(2024, 0, 1, 12, 0, 0, 123)) =>
  new TokenData({
    token: Redacted.make(token),
    obtainedAt: DateTime.unsafeMake(obtainedAtMillis),
    expiresAt: DateTime.unsafeMake(obtainedAtMillis + 24 * 3600_000)
  })

/**
 * What a loaded token says, in plain values that `toEqual` compares.
 *
 * @since 0.1.0
 * @category utils
 */
export const plain = (data: TokenData) => ({
  token: Redacted.value(data.token),
  expiresAt: DateTime.toEpochMillis(data.expiresAt),
  obtainedAt: DateTime.toEpochMillis(data.obtainedAt)
})

/**
 * Runs the contract against the store built by `layer`, built afresh for every test.
 *
 * @since 0.1.0
 * @category suites
 */
export const storeContract = <E>(name: string, layer: Layer.Layer<TokenStore, E, never>) =>
  describe(`TokenStore contract: ${name}`, () => {
    const run = <A, E2>(body: (store: TokenStore["Type"]) => Effect.Effect<A, E2>) =>
      Effect.flatMap(TokenStore, body).pipe(Effect.provide(layer))

    it.scoped("load on an empty store is None", () =>
      run((store) =>
        Effect.gen(function*() {
          expect(Option.isNone(yield* store.load)).toBe(true)
        })
      ))

    it.scoped("save then load round-trips token, expiresAt and obtainedAt", () =>
      run((store) =>
        Effect.gen(function*() {
          const data = sampleToken("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
          yield* store.save(data)
          const loaded = yield* store.load
          expect(Option.map(loaded, plain)).toEqual(Option.some(plain(data)))
        })
      ))

    it.scoped("save replaces the stored token", () =>
      run((store) =>
        Effect.gen(function*() {
          yield* store.save(sampleToken("first"))
          const second = sampleToken("second", Date.UTC(2024, 5, 1, 8, 30, 0, 999))
          yield* store.save(second)
          expect(Option.map(yield* store.load, plain)).toEqual(Option.some(plain(second)))
        })
      ))

    it.scoped("remove then load is None", () =>
      run((store) =>
        Effect.gen(function*() {
          yield* store.save(sampleToken("doomed"))
          yield* store.remove
          expect(Option.isNone(yield* store.load)).toBe(true)
        })
      ))

    it.scoped("remove on an empty store succeeds", () =>
      run((store) =>
        Effect.gen(function*() {
          yield* store.remove
          yield* store.remove
          expect(Option.isNone(yield* store.load)).toBe(true)
        })
      ))

    it.scoped("withLock runs the effect and returns its result", () =>
      run((store) =>
        Effect.gen(function*() {
          const result = yield* store.withLock(Effect.as(store.save(sampleToken("locked")), 42))
          expect(result).toBe(42)
          expect(Option.map(yield* store.load, (data) => Redacted.value(data.token))).toEqual(Option.some("locked"))
          // The lock was released: taking it again does not wait.
          expect(yield* store.withLock(Effect.succeed("again"))).toBe("again")
        })
      ))

    it.scoped("withLock passes the effect's failure through", () =>
      run((store) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(store.withLock(Effect.fail("boom" as const)))
          expect(error).toBe("boom")
          expect(yield* store.withLock(Effect.succeed(1))).toBe(1)
        })
      ))
  })
