import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Option, Redacted } from "effect"
import * as AmpConfig from "../src/AmpConfig.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

const credentials = { AMP_USERNAME: "alice", AMP_PASSWORD: "s3cret-pass" }

describe("AmpConfig", () => {
  it.effect("applies the seed's defaults", () =>
    Effect.gen(function*() {
      const config = yield* AmpConfig.load.pipe(withEnv(credentials))
      expect(config.baseUrl).toBe("https://amp-test.blockstream.com/api")
      expect(config.username).toBe("alice")
      expect(Redacted.value(config.password)).toBe("s3cret-pass")
      expect(config.retry.maxAttempts).toBe(3)
      expect(Duration.toMillis(config.retry.baseDelay)).toBe(1000)
      expect(Duration.toMillis(config.retry.maxDelay)).toBe(30000)
      expect(Duration.toSeconds(config.requestTimeout)).toBe(10)
      expect(config.tokenPersistence).toBe(false)
      expect(config.tests).toEqual(Option.none())
      expect(config.tokenFile).toBe("token.json")
      expect(Duration.toMinutes(config.refreshMargin)).toBe(5)
    }))

  it.effect("reads every variable", () =>
    Effect.gen(function*() {
      const config = yield* AmpConfig.load.pipe(withEnv({
        ...credentials,
        AMP_API_BASE_URL: "https://amp.blockstream.com/api/",
        API_RETRY_MAX_ATTEMPTS: "5",
        API_RETRY_BASE_DELAY_MS: "200",
        API_RETRY_MAX_DELAY_MS: "800",
        API_REQUEST_TIMEOUT_SECONDS: "3",
        AMP_TOKEN_PERSISTENCE: "TRUE",
        AMP_TESTS: "live",
        AMP_TOKEN_FILE: "/var/lib/app/token.json",
        AMP_TOKEN_REFRESH_MARGIN_SECONDS: "60"
      }))
      expect(config.baseUrl).toBe("https://amp.blockstream.com/api")
      expect(config.retry).toEqual({
        maxAttempts: 5,
        baseDelay: Duration.millis(200),
        maxDelay: Duration.millis(800)
      })
      expect(Duration.toSeconds(config.requestTimeout)).toBe(3)
      expect(config.tokenPersistence).toBe(true)
      expect(config.tests).toEqual(Option.some("live"))
      expect(config.tokenFile).toBe("/var/lib/app/token.json")
      expect(Duration.toSeconds(config.refreshMargin)).toBe(60)
    }))

  const invalid: ReadonlyArray<readonly [string, string, string]> = [
    ["API_RETRY_MAX_ATTEMPTS", "abc", "whole number"],
    ["API_RETRY_MAX_ATTEMPTS", "0", "at least 1"],
    ["API_RETRY_MAX_ATTEMPTS", "2.5", "whole number"],
    ["API_RETRY_BASE_DELAY_MS", "-1", "milliseconds"],
    ["API_RETRY_MAX_DELAY_MS", "10", "must not be below API_RETRY_BASE_DELAY_MS (1000)"],
    ["API_REQUEST_TIMEOUT_SECONDS", "0", "seconds"],
    ["API_REQUEST_TIMEOUT_SECONDS", "ten", "seconds"],
    ["AMP_API_BASE_URL", "not a url", "absolute http(s) URL"],
    ["AMP_API_BASE_URL", "ftp://amp.example/api", "absolute http(s) URL"],
    ["AMP_TOKEN_PERSISTENCE", "maybe", "true or false"],
    ["AMP_TOKEN_REFRESH_MARGIN_SECONDS", "5m", "seconds"]
  ]
  for (const [variable, value, reason] of invalid) {
    it.effect(`rejects ${variable}=${value} naming the variable and the value`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(AmpConfig.load.pipe(withEnv({ ...credentials, [variable]: value })))
        expect(error._tag).toBe("AmpConfigError")
        expect(error.variable).toBe(variable)
        expect(error.message).toContain(variable)
        expect(error.message).toContain(JSON.stringify(value))
        expect(error.message).toContain(reason)
      }))
  }

  it.effect("names a missing credential without inventing a value", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(AmpConfig.load.pipe(withEnv({ AMP_USERNAME: "alice" })))
      expect(error.variable).toBe("AMP_PASSWORD")
      expect(error.message).toBe("AMP_PASSWORD is not set")
    }))

  it.effect("never puts the password in an error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        AmpConfig.load.pipe(withEnv({ ...credentials, API_RETRY_MAX_ATTEMPTS: "x" }))
      )
      expect(error.message).not.toContain("s3cret-pass")
      expect(JSON.stringify(error)).not.toContain("s3cret-pass")
    }))

  it.effect("the config printed shows no password", () =>
    Effect.gen(function*() {
      const config = yield* AmpConfig.load.pipe(withEnv(credentials))
      expect(JSON.stringify(config)).not.toContain("s3cret-pass")
      expect(String(config.password)).not.toContain("s3cret-pass")
    }))
})
