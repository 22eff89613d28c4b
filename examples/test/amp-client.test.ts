/**
 * `AmpClient` over Node's HTTP client against the embedded mock AMP server (real HTTP on
 * 127.0.0.1), counting the server's calls. The application layer of
 * `examples/testing-with-mocks.ts` is the stack under test.
 */
import { AmpClient, AmpHttpError } from "@amp-effect/core"
import { MockAmpServer } from "@amp-effect/node"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { layerMockServer } from "../testing-with-mocks.js"

const { MockFault } = MockAmpServer

const setup = Effect.all({ server: MockAmpServer.MockAmpServer, amp: AmpClient.AmpClient })

describe("AmpClient against the mock AMP server", () => {
  it.scopedLive("200 concurrent requests rejected with the same revoked token: one refresh, one login", () =>
    Effect.gen(function*() {
      const { amp, server } = yield* setup
      yield* amp.listAssets
      yield* server.revokeAll
      yield* server.resetCounters
      const results = yield* Effect.all(Array.from({ length: 200 }, () => amp.listAssets), { concurrency: "unbounded" })
      expect(results.every((assets) => assets.length === 2)).toBe(true)
      const counters = yield* server.counters
      // The refresh is refused (the token is revoked), so the one renewal is refresh → login.
      expect(counters).toMatchObject({ refresh: 1, obtain: 1 })
      expect(counters.assets).toBe(200 + counters.unauthorized - 1) // every 401 but the refresh's was retried once
    }).pipe(Effect.provide(layerMockServer)))

  it.scopedLive("a 401 after the renewal is a typed Unauthorized: two requests, one renewal", () =>
    Effect.gen(function*() {
      const { amp, server } = yield* setup
      yield* amp.listAssets
      yield* server.resetCounters
      yield* server.script("changelog", MockFault.status(401), MockFault.status(401))
      const error = yield* Effect.flip(amp.changelog)
      expect(error).toBeInstanceOf(AmpHttpError.ApiError)
      expect(error).toMatchObject({ reason: "Unauthorized", status: 401 })
      expect(error.message).toBe("AMP rejected GET /api/changelog (HTTP 401) even with a renewed token")
      // the token was still valid, so the renewal was a refresh
      expect(yield* server.counters).toMatchObject({ changelog: 2, refresh: 1, obtain: 0 })
    }).pipe(Effect.provide(layerMockServer)))

  it.scopedLive("a 403 renews like a 401; the retried request succeeds", () =>
    Effect.gen(function*() {
      const { amp, server } = yield* setup
      yield* server.script("assets", MockFault.status(403))
      const asset = yield* amp.getAsset("9b2e4c7d-1a3f-4e6b-8c5d-7e0f1a2b3c44")
      expect(asset).toMatchObject({ ticker: "MBT", isLocked: true, precision: 2 })
      expect(yield* server.counters).toMatchObject({ assets: 2, obtain: 1, refresh: 1 })
    }).pipe(Effect.provide(layerMockServer)))

  it.scopedLive("a GET retries 503 and a reset connection; /info needs no login", () =>
    Effect.gen(function*() {
      const { amp, server } = yield* setup
      yield* server.script("info", MockFault.status(503), MockFault.reset)
      expect((yield* amp.info).version).toBe("mock-1.0")
      expect(yield* server.counters).toMatchObject({ info: 3, obtain: 0 })
    }).pipe(Effect.provide(layerMockServer)))
})
