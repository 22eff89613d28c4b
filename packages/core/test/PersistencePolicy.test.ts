import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import * as AmpConfig from "../src/AmpConfig.js"
import * as PersistencePolicy from "../src/PersistencePolicy.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

const choose = (env: Record<string, string>) =>
  AmpConfig.load.pipe(Effect.map(PersistencePolicy.chooseStore), withEnv(env))

/** Whether the policy keeps the tokens at all. */
const decide = (env: Record<string, string>) => Effect.map(choose(env), (choice) => choice.store !== "none")

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
    ["AMP_TESTS=\" Live \" (spaces, any case)", { AMP_TESTS: " Live " }, true],
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

  // The selection matrix: each AMP_TOKEN_STORE value × a real or a mock environment × the
  // persistence flags.
  const mocks: ReadonlyArray<readonly [string, Record<string, string>]> = [
    ["mock username", { AMP_USERNAME: "mock_user" }],
    ["loopback URL", { AMP_API_BASE_URL: "http://127.0.0.1:4000/api" }]
  ]
  const flags: ReadonlyArray<
    readonly [string, Record<string, string>, PersistencePolicy.StoreChoice["reason"] | null]
  > = [
    ["no flag", {}, null],
    ["AMP_TOKEN_PERSISTENCE=true", { AMP_TOKEN_PERSISTENCE: "true" }, "AMP_TOKEN_PERSISTENCE"],
    ["AMP_TOKEN_PERSISTENCE=false", { AMP_TOKEN_PERSISTENCE: "false" }, null],
    ["AMP_TESTS=live", { AMP_TESTS: "live" }, "AMP_TESTS=live"]
  ]
  const kinds: ReadonlyArray<AmpConfig.StoreKind | undefined> = [
    undefined,
    "file",
    "redis",
    "postgres",
    "memory",
    "none"
  ]
  for (const kind of kinds) {
    for (const [flagName, flagEnv, flagReason] of flags) {
      const env = { ...real, ...flagEnv, ...(kind === undefined ? {} : { AMP_TOKEN_STORE: kind }) }
      // A named store is that store (none included); unset, the flags pick the file or nothing.
      const expected: PersistencePolicy.StoreChoice = kind !== undefined
        ? { store: kind, reason: "AMP_TOKEN_STORE" }
        : flagReason !== null
        ? { store: "file", reason: flagReason }
        : { store: "none", reason: "default" }
      it.effect(`real, AMP_TOKEN_STORE=${kind ?? "(unset)"}, ${flagName} → ${expected.store}`, () =>
        Effect.gen(function*() {
          expect(yield* choose(env)).toEqual(expected)
          expect(yield* decide(env)).toBe(expected.store !== "none")
        }))
      for (const [mockName, mockEnv] of mocks) {
        it.effect(`${mockName}, AMP_TOKEN_STORE=${kind ?? "(unset)"}, ${flagName} → none`, () =>
          Effect.gen(function*() {
            expect(yield* choose({ ...env, ...mockEnv })).toEqual({ store: "none", reason: "mock" })
            expect(yield* decide({ ...env, ...mockEnv })).toBe(false)
          }))
      }
    }
  }

  it.effect("a base URL on a loopback host is a mock environment; other hosts are not", () =>
    Effect.gen(function*() {
      // The base URL set past AmpConfig's validation, so that any text reaches the policy.
      const config = yield* AmpConfig.load.pipe(withEnv({ ...real, AMP_TOKEN_PERSISTENCE: "true" }))
      const isLoopbackUrl = (baseUrl: string) => PersistencePolicy.chooseStore({ ...config, baseUrl }).reason === "mock"
      expect(isLoopbackUrl("http://127.1.2.3/api")).toBe(true)
      expect(isLoopbackUrl("http://app.localhost/api")).toBe(true)
      expect(isLoopbackUrl("http://127.1:8080/api")).toBe(true)
      expect(isLoopbackUrl("http://[::ffff:127.0.0.1]:8080/api")).toBe(true)
      expect(isLoopbackUrl("http://[::ffff:127.9.8.7]/api")).toBe(true)
      expect(isLoopbackUrl("http://[::ffff:10.0.0.1]/api")).toBe(false)
      expect(isLoopbackUrl("https://localhost.example.com/api")).toBe(false)
      expect(isLoopbackUrl("https://amp.blockstream.com/api")).toBe(false)
      // Whole addresses only: three-digit octets count, longer names and addresses do not.
      expect(isLoopbackUrl("http://127.0.0.100/api")).toBe(true)
      expect(isLoopbackUrl("http://127.0.0.1.example.com/api")).toBe(false)
      expect(isLoopbackUrl("http://[1::ffff:7f00:1]/api")).toBe(false)
      expect(isLoopbackUrl("http://[::ffff:7f00:1:2]/api")).toBe(false)
      expect(isLoopbackUrl("not a URL")).toBe(false)
    }))
})
