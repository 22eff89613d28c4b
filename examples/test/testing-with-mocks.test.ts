/**
 * An application's own tests, as `examples/testing-with-mocks.ts` describes them: the same
 * application code, other layers.
 */
import { AmpHttpError, TokenService } from "@amp-effect/core"
import { MockAmpServer } from "@amp-effect/node"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { assetReport, authorizationHeaders, layerMockServer } from "../testing-with-mocks.js"

describe("testing an application with the mock layers", () => {
  it.scopedLive("the asset report, against the embedded mock server", () =>
    Effect.gen(function*() {
      const report = yield* assetReport
      expect(report).toEqual(["MSO Mock Security One", "MBT Mock Bond Two (locked)"])
      const counters = yield* Effect.flatMap(MockAmpServer.MockAmpServer, (server) => server.counters)
      expect(counters).toMatchObject({ obtain: 1, assets: 1 })
    }).pipe(Effect.provide(layerMockServer)))

  it.scopedLive("the report survives the server revoking every token: one renewal, then success", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.MockAmpServer
      yield* assetReport
      yield* server.revokeAll
      expect(yield* assetReport).toHaveLength(2)
      expect(yield* server.counters).toMatchObject({ obtain: 2, refresh: 1, assets: 3 })
    }).pipe(Effect.provide(layerMockServer)))

  it.scopedLive("a fault scripted on the mock server reaches the application as a typed error", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.MockAmpServer
      yield* server.script("assets", MockAmpServer.MockFault.status(404))
      const error = yield* Effect.flip(assetReport)
      expect(error).toBeInstanceOf(AmpHttpError.ApiError)
      expect(error).toMatchObject({ reason: "StatusCode", status: 404 })
    }).pipe(Effect.provide(layerMockServer)))

  it.effect("code that only needs a token: TokenService.layerMock, no network", () =>
    Effect.gen(function*() {
      expect(yield* authorizationHeaders).toEqual({ authorization: "token test-token" })
    }).pipe(Effect.provide(TokenService.layerMock("test-token"))))
})
