import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import * as AmpConfig from "../src/AmpConfig.js"
import * as PersistencePolicy from "../src/PersistencePolicy.js"

const decide = (env: Record<string, string>) =>
  AmpConfig.load.pipe(
    Effect.map(PersistencePolicy.shouldPersist),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
  )

const real = {
  AMP_USERNAME: "alice",
  AMP_PASSWORD: "hunter2",
  AMP_API_BASE_URL: "https://amp-test.blockstream.com/api"
}

describe("PersistencePolicy", () => {
  const cases: ReadonlyArray<readonly [string, Record<string, string>, boolean]> = [
    ["off by default", {}, false],
    ["AMP_TOKEN_PERSISTENCE=true", { AMP_TOKEN_PERSISTENCE: "true" }, true],
    ["AMP_TOKEN_PERSISTENCE=false", { AMP_TOKEN_PERSISTENCE: "false" }, false],
    ["AMP_TESTS=live", { AMP_TESTS: "live" }, true],
    ["AMP_TESTS=mock", { AMP_TESTS: "mock" }, false],
    ["mock username", { AMP_TOKEN_PERSISTENCE: "true", AMP_USERNAME: "mock_user" }, false],
    ["mock password, any case", { AMP_TESTS: "live", AMP_PASSWORD: "MOCK_PASS" }, false],
    ["localhost URL", { AMP_TOKEN_PERSISTENCE: "true", AMP_API_BASE_URL: "http://localhost:8080/api" }, false],
    ["127.0.0.1 URL", { AMP_TOKEN_PERSISTENCE: "true", AMP_API_BASE_URL: "http://127.0.0.1:4000/api" }, false],
    ["[::1] URL", { AMP_TESTS: "live", AMP_API_BASE_URL: "http://[::1]:4000/api" }, false],
    ["mock host", { AMP_TOKEN_PERSISTENCE: "true", AMP_API_BASE_URL: "https://amp-mock.internal/api" }, false],
    [
      "mainnet with persistence",
      { AMP_TOKEN_PERSISTENCE: "true", AMP_API_BASE_URL: "https://amp.blockstream.com/api" },
      true
    ]
  ]
  for (const [name, env, expected] of cases) {
    it.effect(`${name} → ${expected ? "persist" : "do not persist"}`, () =>
      Effect.gen(function*() {
        expect(yield* decide({ ...real, ...env })).toBe(expected)
      }))
  }

  it("recognises loopback hosts and nothing else", () => {
    expect(PersistencePolicy.isLoopbackUrl("http://127.1.2.3/api")).toBe(true)
    expect(PersistencePolicy.isLoopbackUrl("http://app.localhost/api")).toBe(true)
    expect(PersistencePolicy.isLoopbackUrl("https://localhost.example.com/api")).toBe(false)
    expect(PersistencePolicy.isLoopbackUrl("https://amp.blockstream.com/api")).toBe(false)
  })
})
