import { describe, expect, it } from "@effect/vitest"
import { Cause, Config, ConfigError, ConfigProvider, Duration, Effect, Either, Option, Redacted } from "effect"
import * as AmpConfig from "../src/AmpConfig.js"
import * as RetryPolicy from "../src/RetryPolicy.js"
import * as TokenService from "../src/TokenService.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

/** As the environment provider joins a nested path: `ISSUER` + `AMP_USERNAME` → `ISSUER_AMP_USERNAME`. */
const providerOf = (env: Record<string, string>) =>
  ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })

const credentials = { AMP_USERNAME: "alice", AMP_PASSWORD: "s3cret-pass" }

/** The AmpConfigError of a variable `VAULT` whose parser fails with `error`. */
const readFailing = (error: ConfigError.ConfigError) =>
  Effect.flip(
    AmpConfig.read(Config.nested(Config.primitive("x", () => Either.left(error)), "VAULT")).pipe(
      withEnv({ VAULT: "x" })
    )
  )

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
        expect(error.message.startsWith(`${variable} is invalid: got ${JSON.stringify(value)}, `)).toBe(true)
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
      expect(config.tokenFile).toBe("token.json")
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
      const whole = yield* AmpConfig.read(Config.nested(Config.all(AmpConfig.fields), "ISSUER")).pipe(
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
    [
      "an invalid value",
      { ISSUER_API_RETRY_MAX_ATTEMPTS: "abc" },
      "ISSUER_API_RETRY_MAX_ATTEMPTS is invalid: got \"abc\""
    ],
    [
      "the delays' cross-check",
      { ISSUER_API_RETRY_MAX_DELAY_MS: "10" },
      "ISSUER_API_RETRY_MAX_DELAY_MS is invalid: got \"10\", must not be below"
    ],
    ["a missing secret", { ISSUER_AMP_PASSWORD: "" }, "ISSUER_AMP_PASSWORD is not set"],
    ["an invalid store", { ISSUER_AMP_TOKEN_STORE: "s3" }, "ISSUER_AMP_TOKEN_STORE is invalid: got \"s3\""]
  ]
  for (const [name, env, message] of nestedErrors) {
    it.effect(`nested: ${name} is named with its prefix`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          AmpConfig.read(Config.nested(Config.all(AmpConfig.fields), "ISSUER")).pipe(
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
      expect(error.message).toBe(
        "APP_API_REQUEST_TIMEOUT_SECONDS is invalid: got \"0\", expected a whole number of seconds (>= 1)"
      )
    }))

  const stores: ReadonlyArray<readonly [string, Option.Option<AmpConfig.StoreKind>]> = [
    ["file", Option.some("file")],
    ["Redis", Option.some("redis")],
    ["postgres", Option.some("postgres")],
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
      expect(error.message).toBe(
        "AMP_TOKEN_STORE is invalid: got \"s3\", expected file, redis, postgres, memory or none"
      )
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
      const unavailable = yield* readFailing(ConfigError.SourceUnavailable(["TOKEN"], "vault sealed", Cause.empty))
      expect(unavailable.message).toBe("VAULT_TOKEN could not be read: vault sealed")
      const secret = yield* Effect.flip(
        AmpConfig.read(Config.redacted(Config.integer("PIN"))).pipe(withEnv({ PIN: "s3cret-pin" }))
      )
      expect(secret.message).toBe("PIN is invalid: <redacted>")
      expect(JSON.stringify(secret)).not.toContain("s3cret-pin")
    }))

  it.effect("reads a ConfigError by its kind and path, never by its text", () =>
    Effect.gen(function*() {
      const message = (error: ConfigError.ConfigError) => Effect.map(readFailing(error), (failure) => failure.message)
      // A text that looks like another kind's changes nothing.
      expect(yield* message(ConfigError.MissingData(["AMP_X"], "\"v\" is invalid: nope"))).toBe(
        "VAULT_AMP_X is not set"
      )
      expect(yield* message(ConfigError.InvalidData(["AMP_X"], "is not set"))).toBe(
        "VAULT_AMP_X is invalid: is not set"
      )
      expect(yield* message(ConfigError.Unsupported([], "no sequences"))).toBe("VAULT could not be read: no sequences")
      const unnamed = yield* Effect.flip(AmpConfig.read(Config.fail("nope")))
      expect(unnamed.message).toBe("the configuration is not set")
      // The first failure, as Config.all and Config.orElse nest them.
      const first = ConfigError.And(ConfigError.MissingData(["A"], "m"), ConfigError.InvalidData(["B"], "b"))
      const error = yield* readFailing(ConfigError.Or(first, ConfigError.InvalidData(["C"], "c")))
      expect(error.message).toBe("VAULT_A is not set")
      expect(error.value).toBeUndefined()
    }))

  it.effect("notSet is a missing value (defaults apply), invalidValue quotes the value before the rule", () =>
    Effect.gen(function*() {
      const failing = (error: ConfigError.ConfigError) =>
        Config.nested(Config.primitive("x", () => Either.left(error)), "MY_X")
      expect(yield* failing(AmpConfig.notSet("needed for y")).pipe(Config.withDefault(7), withEnv({ MY_X: "a" })))
        .toBe(7)
      const missing = yield* Effect.flip(failing(AmpConfig.notSet("needed for y")).pipe(withEnv({ MY_X: "a" })))
      expect(String(missing)).toContain("needed for y")
      const error = yield* Effect.flip(AmpConfig.read(failing(AmpConfig.notSet())).pipe(withEnv({ MY_X: "a" })))
      expect(error.message).toBe("MY_X is not set")
      const invalid = yield* Effect.flip(
        AmpConfig.read(failing(AmpConfig.invalidValue("a\"b", "expected c"))).pipe(withEnv({ MY_X: "a" }))
      )
      expect(invalid.message).toBe("MY_X is invalid: got \"a\\\"b\", expected c")
    }))

  it.effect("the first invalid variable is named, in the order of the fields", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(AmpConfig.load.pipe(withEnv({
        ...credentials,
        AMP_API_BASE_URL: "ftp://x",
        AMP_TOKEN_STORE: "s3"
      })))
      expect(error.variable).toBe("AMP_API_BASE_URL")
    }))

  it("an error given a value quotes it before the reason; without one, the reason follows the name", () => {
    const flag = new AmpConfig.AmpConfigError({ variable: "--store", value: "s3", reason: "expected file or redis" })
    expect(flag.message).toBe("--store=\"s3\" is invalid: expected file or redis")
    expect(new AmpConfig.AmpConfigError({ variable: "X", reason: "is not set" }).message).toBe("X is not set")
    expect(AmpConfig.notSet().message).toBe("is not set")
  })

  it.effect("values are trimmed; every spelling of AMP_TOKEN_PERSISTENCE reads as it says", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) => AmpConfig.load.pipe(withEnv({ ...credentials, ...env }))
      expect((yield* read({ AMP_TOKEN_FILE: " /var/lib/t.json " })).tokenFile).toBe("/var/lib/t.json")
      const spellings = {
        true: true,
        1: true,
        " Yes ": true,
        ON: true,
        false: false,
        0: false,
        no: false,
        Off: false,
        "": false,
        " ": false
      }
      for (const [text, flag] of Object.entries(spellings)) {
        expect((yield* read({ AMP_TOKEN_PERSISTENCE: text })).tokenPersistence, text).toBe(flag)
      }
    }))

  const refused: ReadonlyArray<readonly [string, string]> = [
    ["AMP_API_BASE_URL", "https://amp.example/api?x=1"],
    ["AMP_API_BASE_URL", "https://amp.example/api#top"],
    ["AMP_TOKEN_FILE", "  "]
  ]
  for (const [variable, value] of refused) {
    it.effect(`refuses ${variable}=${JSON.stringify(value)}`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(AmpConfig.load.pipe(withEnv({ ...credentials, [variable]: value })))
        expect(error.message.startsWith(`${variable} is invalid: got ${JSON.stringify(value)}, expected`)).toBe(true)
      }))
  }

  it.effect("a base URL with credentials is refused without quoting them", () =>
    Effect.gen(function*() {
      const urls = [
        "https://svc:s3cret-pw@amp.example/api",
        "https://s3cret-pw@amp.example/api",
        "https://:s3cret-pw@amp.example/api"
      ]
      for (const url of urls) {
        const error = yield* Effect.flip(AmpConfig.load.pipe(withEnv({ ...credentials, AMP_API_BASE_URL: url })))
        expect(error.message).toBe(
          "AMP_API_BASE_URL is invalid: got \"https://***@amp.example/api\", expected an absolute http(s) URL " +
            "without query or credentials, such as https://amp-test.blockstream.com/api"
        )
        expect(JSON.stringify(error)).not.toContain("s3cret-pw")
      }
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
