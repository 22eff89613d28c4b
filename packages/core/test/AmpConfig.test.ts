import { describe, expect, it } from "@effect/vitest"
import { Cause, Config, ConfigError, ConfigProvider, Duration, Effect, Option, Redacted } from "effect"
import * as AmpConfig from "../src/AmpConfig.js"
import * as RetryPolicy from "../src/RetryPolicy.js"
import * as TokenService from "../src/TokenService.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

/** As the environment provider joins a nested path: `ISSUER` + `AMP_USERNAME` → `ISSUER_AMP_USERNAME`. */
const providerOf = (env: Record<string, string>) =>
  ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })

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

  it.effect("the defaults are the exported constants, and those hold the seed's values", () =>
    Effect.gen(function*() {
      const config = yield* AmpConfig.load.pipe(withEnv(credentials))
      expect(config.retry).toStrictEqual(RetryPolicy.defaultOptions)
      expect(RetryPolicy.defaultOptions).toStrictEqual({
        maxAttempts: 3,
        baseDelay: Duration.seconds(1),
        maxDelay: Duration.seconds(30)
      })
      expect(config.requestTimeout).toStrictEqual(AmpConfig.defaultRequestTimeout)
      expect(Duration.toSeconds(AmpConfig.defaultRequestTimeout)).toBe(10)
      expect(config.refreshMargin).toStrictEqual(AmpConfig.defaultRefreshMargin)
      expect(TokenService.defaultRefreshMargin).toBe(AmpConfig.defaultRefreshMargin)
      expect(config.tokenFile).toBe(AmpConfig.defaultTokenFile)
      expect(config.baseUrl).toBe(AmpConfig.defaultBaseUrl)
      expect(config.tokenStore).toEqual(Option.none())
    }))

  it.effect("every value is a Config: nested under a prefix, read from the prefixed variables only", () =>
    Effect.gen(function*() {
      const env = {
        ISSUER_AMP_USERNAME: "issuer",
        ISSUER_AMP_PASSWORD: "issuer-pass",
        ISSUER_API_RETRY_MAX_ATTEMPTS: "7",
        ISSUER_AMP_TOKEN_STORE: "memory",
        // The application's own variables of the same names: never read.
        AMP_USERNAME: "someone-else",
        API_RETRY_MAX_ATTEMPTS: "not ours"
      }
      const whole = yield* AmpConfig.read(Config.nested(AmpConfig.config, "ISSUER")).pipe(
        Effect.withConfigProvider(providerOf(env))
      )
      expect(whole.username).toBe("issuer")
      expect(Redacted.value(whole.password)).toBe("issuer-pass")
      expect(whole.retry.maxAttempts).toBe(7)
      expect(whole.tokenStore).toEqual(Option.some("memory"))
      const fields = yield* AmpConfig.read(Config.all(AmpConfig.nested("ISSUER"))).pipe(
        Effect.withConfigProvider(providerOf(env))
      )
      expect(fields).toStrictEqual(whole)
    }))

  const nestedErrors: ReadonlyArray<readonly [string, Record<string, string>, string]> = [
    ["an invalid value", { ISSUER_API_RETRY_MAX_ATTEMPTS: "abc" }, "ISSUER_API_RETRY_MAX_ATTEMPTS=\"abc\" is invalid"],
    [
      "the delays' cross-check",
      { ISSUER_API_RETRY_MAX_DELAY_MS: "10" },
      "ISSUER_API_RETRY_MAX_DELAY_MS=\"10\" is invalid: must not be below"
    ],
    ["a missing secret", { ISSUER_AMP_PASSWORD: "" }, "ISSUER_AMP_PASSWORD is not set"],
    ["an invalid store", { ISSUER_AMP_TOKEN_STORE: "s3" }, "ISSUER_AMP_TOKEN_STORE=\"s3\" is invalid"]
  ]
  for (const [name, env, message] of nestedErrors) {
    it.effect(`nested: ${name} is named with its prefix`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          AmpConfig.read(Config.nested(AmpConfig.config, "ISSUER")).pipe(
            Effect.withConfigProvider(providerOf({ ISSUER_AMP_USERNAME: "u", ISSUER_AMP_PASSWORD: "p", ...env }))
          )
        )
        expect(error._tag).toBe("AmpConfigError")
        expect(error.message).toContain(message)
      }))
  }

  it.effect("a prefix added by the provider is named too (the variables parse through Config.primitive)", () =>
    Effect.gen(function*() {
      const provider = providerOf({
        APP_AMP_USERNAME: "u",
        APP_AMP_PASSWORD: "p",
        APP_API_REQUEST_TIMEOUT_SECONDS: "0"
      })
        .pipe(ConfigProvider.nested("APP"))
      const error = yield* Effect.flip(AmpConfig.load.pipe(Effect.withConfigProvider(provider)))
      expect(error.variable).toBe("APP_API_REQUEST_TIMEOUT_SECONDS")
      expect(error.value).toBe("0")
    }))

  const stores: ReadonlyArray<readonly [string, Option.Option<AmpConfig.StoreKind>]> = [
    ["file", Option.some("file")],
    ["Redis", Option.some("redis")],
    [" MEMORY ", Option.some("memory")],
    ["none", Option.some("none")],
    ["", Option.none()],
    ["  ", Option.none()]
  ]
  for (const [value, expected] of stores) {
    it.effect(`AMP_TOKEN_STORE=${JSON.stringify(value)} reads as ${Option.getOrElse(expected, () => "unset")}`, () =>
      Effect.gen(function*() {
        const config = yield* AmpConfig.load.pipe(withEnv({ ...credentials, AMP_TOKEN_STORE: value }))
        expect(config.tokenStore).toEqual(expected)
      }))
  }

  it.effect("rejects an unknown AMP_TOKEN_STORE naming the value and the choices", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(AmpConfig.load.pipe(withEnv({ ...credentials, AMP_TOKEN_STORE: "s3" })))
      expect(error.variable).toBe("AMP_TOKEN_STORE")
      expect(error.message).toBe("AMP_TOKEN_STORE=\"s3\" is invalid: expected file, redis, memory or none")
    }))

  it.effect("turns any ConfigError into an AmpConfigError naming the variable", () =>
    Effect.gen(function*() {
      const foreign = yield* Effect.flip(
        AmpConfig.read(Config.integer("MY_RETRIES")).pipe(
          withEnv({ MY_RETRIES: "many" })
        )
      )
      expect(foreign.variable).toBe("MY_RETRIES")
      expect(foreign.message).toContain("MY_RETRIES is invalid: Expected an integer value but received \"many\"")
      const unavailable = AmpConfig.fromConfigError(
        ConfigError.SourceUnavailable(["VAULT", "TOKEN"], "vault sealed", Cause.empty)
      )
      expect(unavailable.message).toBe("VAULT_TOKEN could not be read: vault sealed")
      const secret = yield* Effect.flip(
        AmpConfig.read(Config.redacted(Config.integer("PIN"))).pipe(withEnv({ PIN: "s3cret-pin" }))
      )
      expect(secret.message).toBe("PIN is invalid")
      expect(JSON.stringify(secret)).not.toContain("s3cret-pin")
    }))

  it.effect("the password is Redacted as it is read, and its own Config can come from elsewhere", () =>
    Effect.gen(function*() {
      const password = yield* AmpConfig.read(AmpConfig.password).pipe(withEnv(credentials))
      expect(Redacted.isRedacted(password)).toBe(true)
      expect(String(password)).toBe("<redacted>")
      const error = yield* Effect.flip(AmpConfig.read(AmpConfig.password).pipe(withEnv({ AMP_PASSWORD: "" })))
      expect(error.message).toBe("AMP_PASSWORD is not set")
    }))
})
