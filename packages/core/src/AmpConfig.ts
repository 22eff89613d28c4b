/**
 * The library's configuration as Effect `Config` values (so tests swap a `ConfigProvider`
 * instead of touching `process.env`), each validated as it is read.
 *
 * | variable | default |
 * | --- | --- |
 * | `AMP_API_BASE_URL` | `defaultBaseUrl`: `https://amp-test.blockstream.com/api` |
 * | `AMP_USERNAME`, `AMP_PASSWORD` | required to log in |
 * | `API_RETRY_MAX_ATTEMPTS` | `RetryPolicy.defaultOptions`: `3` |
 * | `API_RETRY_BASE_DELAY_MS` | `RetryPolicy.defaultOptions`: `1000` |
 * | `API_RETRY_MAX_DELAY_MS` | `RetryPolicy.defaultOptions`: `30000` |
 * | `API_REQUEST_TIMEOUT_SECONDS` | `defaultRequestTimeout`: `10` |
 * | `AMP_TOKEN_PERSISTENCE` | `false` |
 * | `AMP_TESTS` | unset |
 * | `AMP_TOKEN_FILE` | `defaultTokenFile`: `token.json` |
 * | `AMP_TOKEN_REFRESH_MARGIN_SECONDS` | `defaultRefreshMargin`: `300` |
 * | `AMP_TOKEN_STORE` | unset (`file`, `redis`, `memory` or `none`; see `PersistencePolicy`) |
 *
 * Each value is a `Config`, so an application can read it under other names. The
 * `layerConfig` constructors (`AuthApi`, `AmpClient`, `TokenService`, and `NodeAmp` in
 * `@amp-effect/node`) take a `Config` for each option, by default the one here: pass
 * `Config.nested(AmpConfig.retry, "AMP")` to read one group under a prefix, or
 * `AmpConfig.nested("ISSUER")` to read every variable under one (see the example).
 *
 * Prefer `Config.nested` (as in the example) to `ConfigProvider.nested`: in effect 3.x a
 * provider nested with `ConfigProvider.nested` splits every value at its commas and keeps the
 * first piece (a password `a,b` would be read as `a`).
 *
 * Read through `read` (or a `layerConfig`), a value that is missing or invalid fails with an
 * `AmpConfigError` that names the variable as the environment spells it (path segments joined
 * with `_`) and, except for secrets, the value it found.
 *
 * @example
 * ```ts
 * import { AmpConfig, AuthApi, TokenService } from "@amp-effect/core"
 * import { Config } from "effect"
 *
 * // API_RETRY_* clashes with the application's own variables: read AMP_API_RETRY_* instead.
 * const api = AuthApi.layerConfig({ retry: Config.nested(AmpConfig.retry, "AMP") })
 *
 * // Every variable under a prefix: ISSUER_AMP_USERNAME, ISSUER_API_RETRY_MAX_ATTEMPTS, ...
 * const issuer = AmpConfig.nested("ISSUER")
 * const issuerApi = AuthApi.layerConfig(issuer)
 * const issuerTokens = TokenService.layerConfig(issuer)
 * ```
 *
 * @since 0.1.0
 */
import { Config, ConfigError, Duration, Effect, Either, Option, Record, type Redacted, Schema } from "effect"
import { normalizeBaseUrl } from "./internal/ampHttp.js"
import * as RetryPolicy from "./RetryPolicy.js"

/**
 * A configuration variable is missing or holds a value the library cannot use.
 *
 * @since 0.1.0
 * @category errors
 */
export class AmpConfigError extends Schema.TaggedError<AmpConfigError>()("AmpConfigError", {
  variable: Schema.String,
  value: Schema.optional(Schema.String),
  reason: Schema.String
}) {
  override get message() {
    return this.value === undefined
      ? `${this.variable} ${this.reason}`
      : `${this.variable}=${JSON.stringify(this.value)} is invalid: ${this.reason}`
  }
}

/**
 * Where and how to log in.
 *
 * @since 0.1.0
 * @category models
 */
export interface Credentials {
  readonly baseUrl: string
  readonly username: string
  readonly password: Redacted.Redacted<string>
}

/**
 * Where tokens are kept, as `AMP_TOKEN_STORE` names it.
 *
 * @since 0.1.0
 * @category models
 */
export type StoreKind = "file" | "redis" | "memory" | "none"

/**
 * The whole configuration, every value validated.
 *
 * @since 0.1.0
 * @category models
 */
export interface AmpConfig extends Credentials {
  readonly retry: RetryPolicy.RetryOptions
  readonly requestTimeout: Duration.Duration
  /** `AMP_TOKEN_PERSISTENCE`: asks for persistence (the policy may still refuse it). */
  readonly tokenPersistence: boolean
  /** `AMP_TESTS`: `"live"` asks for persistence too. */
  readonly tests: Option.Option<string>
  readonly tokenFile: string
  readonly refreshMargin: Duration.Duration
  /** `AMP_TOKEN_STORE` when set; `None` leaves the choice to `PersistencePolicy.chooseStore`. */
  readonly tokenStore: Option.Option<StoreKind>
}

// -----------------------------------------------------------------------------
// Defaults
// -----------------------------------------------------------------------------

/**
 * The testnet API, so that a forgotten variable never points a test at mainnet.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBaseUrl = "https://amp-test.blockstream.com/api"

/**
 * How long one HTTP attempt may take when no timeout is given: 10 seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultRequestTimeout: Duration.Duration = Duration.seconds(10)

/**
 * How long before expiry a token is renewed when no margin is given: five minutes, as the
 * Rust client.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultRefreshMargin: Duration.Duration = Duration.minutes(5)

/**
 * The token file's path when `AMP_TOKEN_FILE` is unset, relative to the working directory.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultTokenFile = "token.json"

/**
 * The store used when persistence is asked for without naming a store.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultStoreKind: StoreKind = "file"

// -----------------------------------------------------------------------------
// From `ConfigError` to `AmpConfigError`
// -----------------------------------------------------------------------------

/**
 * The `ConfigError` of a variable holding `value`, which is invalid for `reason` ("expected
 * ..."). `fromConfigError` turns it into `VARIABLE="value" is invalid: reason`. For a
 * variable's own parser (`Config.primitive`, `Config.mapOrFail`); never for a secret.
 *
 * @since 0.1.0
 * @category errors
 */
export const invalidValue = (value: string, reason: string): ConfigError.ConfigError =>
  ConfigError.InvalidData([], `${JSON.stringify(value)} ${invalidMarker} ${reason}`)

/**
 * The `ConfigError` of a secret that is invalid, without its value: `reason` is read after the
 * variable's name (`"is not a Redis URL: expected ..."`).
 *
 * @since 0.1.0
 * @category errors
 */
export const invalidSecret = (reason: string): ConfigError.ConfigError => ConfigError.InvalidData([], reason)

/**
 * The `ConfigError` of a required variable that is unset, with more to say than "is not set":
 * `detail` follows it (`"AMP_REDIS_URL is not set: the Redis token store needs it"`). Being a
 * `MissingData`, `Config.withDefault` and `Config.option` still apply to it.
 *
 * @since 0.1.0
 * @category errors
 */
export const notSet = (detail?: string): ConfigError.ConfigError =>
  ConfigError.MissingData([], detail === undefined ? notSetReason : `${notSetReason}: ${detail}`)

const invalidMarker = "is invalid:"
const notSetReason = "is not set"
const quotedValue = /^("(?:[^"\\]|\\.)*") is invalid: ([\s\S]*)$/

/**
 * The `AmpConfigError` of a `ConfigError`: the first failure it holds, the variable named by
 * its path (segments joined with `_`, as `ConfigProvider.fromEnv` joins them).
 *
 * @since 0.1.0
 * @category errors
 */
export const fromConfigError = (error: ConfigError.ConfigError): AmpConfigError => {
  switch (error._op) {
    case "And":
    case "Or":
      return fromConfigError(error.left)
    case "MissingData":
      return new AmpConfigError({
        variable: variableOf(error.path),
        reason: error.message.startsWith(notSetReason) ? error.message : notSetReason
      })
    case "InvalidData": {
      const quoted = quotedValue.exec(error.message)
      if (quoted !== null) {
        return new AmpConfigError({
          variable: variableOf(error.path),
          value: JSON.parse(quoted[1]!),
          reason: quoted[2]!
        })
      }
      return new AmpConfigError({
        variable: variableOf(error.path),
        // Ours read after the name; Effect's own ("Expected an integer value but received x")
        // and a secret's ("<redacted>") are said to make it invalid.
        reason: error.message.startsWith("is ")
          ? error.message
          : error.message === "<redacted>"
          ? "is invalid"
          : `is invalid: ${error.message}`
      })
    }
    case "SourceUnavailable":
    case "Unsupported":
      return new AmpConfigError({ variable: variableOf(error.path), reason: `could not be read: ${error.message}` })
  }
}

const variableOf = (path: ReadonlyArray<string>) => path.length === 0 ? "the configuration" : path.join("_")

/**
 * Reads `config` from the current `ConfigProvider`, failing with the `AmpConfigError` of the
 * first variable that is missing or invalid.
 *
 * @since 0.1.0
 * @category utils
 */
export const read = <A>(config: Config.Config<A>): Effect.Effect<A, AmpConfigError> =>
  Effect.mapError(config, fromConfigError)

// -----------------------------------------------------------------------------
// The variables
// -----------------------------------------------------------------------------

/**
 * The variable `name` decoded with `schema` (its text trimmed first); a value the schema
 * refuses fails with `invalidValue`. A `Config.primitive` rather than `Config.mapOrFail` over
 * `Config.string`: its failures carry the path the provider actually read (with any prefix a
 * provider adds), so the error names the variable that was set.
 */
const decoded = <A>(name: string, schema: Schema.Schema<A, string>, expected: string): Config.Config<A> => {
  const decode = Schema.decodeOption(schema)
  return Config.nested(
    Config.primitive(expected, (text) => Either.fromOption(decode(text.trim()), () => invalidValue(text, expected))),
    name
  )
}

const WholeNumber = Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative())
const AtLeastOne = WholeNumber.pipe(Schema.greaterThanOrEqualTo(1))
const durationOf = (from: Schema.Schema<number, string>, unit: (n: number) => Duration.Duration) =>
  Schema.transform(from, Schema.DurationFromSelf, {
    strict: true,
    decode: unit,
    encode: (duration) => Duration.toMillis(duration) / Duration.toMillis(unit(1))
  })

const flagValues = new Map([
  ["true", true],
  ["1", true],
  ["yes", true],
  ["on", true],
  ["false", false],
  ["0", false],
  ["no", false],
  ["off", false],
  ["", false]
])
const Flag = Schema.transform(
  Schema.String.pipe(Schema.filter((text) => flagValues.has(text.toLowerCase()))),
  Schema.Boolean,
  { strict: true, decode: (text) => flagValues.get(text.toLowerCase())!, encode: String }
)

/** An absolute http(s) URL without query or fragment, normalised to have no trailing slash. */
const BaseUrl = Schema.transform(
  Schema.String.pipe(Schema.filter((text) => {
    if (!URL.canParse(text)) return false
    const url = new URL(text)
    return (url.protocol === "https:" || url.protocol === "http:") && url.search === "" && url.hash === "" &&
      url.username === "" && url.password === ""
  })),
  Schema.String,
  { strict: true, decode: normalizeBaseUrl, encode: (url) => url }
)

/**
 * `AMP_API_BASE_URL`, validated and without a trailing slash; `defaultBaseUrl` when unset.
 *
 * @since 0.1.0
 * @category config
 */
export const baseUrl: Config.Config<string> = decoded(
  "AMP_API_BASE_URL",
  BaseUrl,
  "expected an absolute http(s) URL without query or credentials, such as https://amp-test.blockstream.com/api"
).pipe(Config.withDefault(defaultBaseUrl))

/**
 * `AMP_USERNAME`, required (an empty value counts as unset).
 *
 * @since 0.1.0
 * @category config
 */
export const username: Config.Config<string> = Config.nonEmptyString("AMP_USERNAME")

/**
 * `AMP_PASSWORD`, required, `Redacted` from the moment it is read.
 *
 * @since 0.1.0
 * @category config
 */
export const password: Config.Config<Redacted.Redacted<string>> = Config.redacted(Config.nonEmptyString("AMP_PASSWORD"))

/**
 * `AMP_API_BASE_URL`, `AMP_USERNAME` and `AMP_PASSWORD`.
 *
 * @since 0.1.0
 * @category config
 */
export const credentials: Config.Config<Credentials> = Config.all({ baseUrl, username, password })

/**
 * The retry policy's variables, each defaulting to `RetryPolicy.defaultOptions`. The maximum
 * delay must not be below the base delay, or the "exponential" backoff would be a constant one
 * and surprise whoever set it.
 *
 * @since 0.1.0
 * @category config
 */
export const retry: Config.Config<RetryPolicy.RetryOptions> = Config.all({
  maxAttempts: decoded("API_RETRY_MAX_ATTEMPTS", AtLeastOne, "expected a whole number of at least 1").pipe(
    Config.withDefault(RetryPolicy.defaultOptions.maxAttempts)
  ),
  baseDelay: decoded(
    "API_RETRY_BASE_DELAY_MS",
    durationOf(WholeNumber, Duration.millis),
    "expected milliseconds (>= 0)"
  )
    .pipe(Config.withDefault(RetryPolicy.defaultOptions.baseDelay)),
  maxDelay: decoded("API_RETRY_MAX_DELAY_MS", durationOf(WholeNumber, Duration.millis), "expected milliseconds (>= 0)")
    .pipe(Config.withDefault(RetryPolicy.defaultOptions.maxDelay))
}).pipe(Config.mapOrFail((options) =>
  Duration.lessThan(options.maxDelay, options.baseDelay)
    ? Either.left(ConfigError.prefixed(
      invalidValue(
        String(Duration.toMillis(options.maxDelay)),
        `must not be below API_RETRY_BASE_DELAY_MS (${Duration.toMillis(options.baseDelay)})`
      ),
      ["API_RETRY_MAX_DELAY_MS"]
    ))
    : Either.right(options)
))

/**
 * `API_REQUEST_TIMEOUT_SECONDS`: how long one attempt may take; `defaultRequestTimeout` when
 * unset.
 *
 * @since 0.1.0
 * @category config
 */
export const requestTimeout: Config.Config<Duration.Duration> = decoded(
  "API_REQUEST_TIMEOUT_SECONDS",
  durationOf(AtLeastOne, Duration.seconds),
  "expected a whole number of seconds (>= 1)"
).pipe(Config.withDefault(defaultRequestTimeout))

/**
 * `AMP_TOKEN_REFRESH_MARGIN_SECONDS`: how long before expiry a token is refreshed;
 * `defaultRefreshMargin` when unset.
 *
 * @since 0.1.0
 * @category config
 */
export const refreshMargin: Config.Config<Duration.Duration> = decoded(
  "AMP_TOKEN_REFRESH_MARGIN_SECONDS",
  durationOf(WholeNumber, Duration.seconds),
  "expected a whole number of seconds (>= 0)"
).pipe(Config.withDefault(defaultRefreshMargin))

/**
 * `AMP_TOKEN_PERSISTENCE`: `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off` (any case); `false`
 * when unset.
 *
 * @since 0.1.0
 * @category config
 */
export const tokenPersistence: Config.Config<boolean> = decoded("AMP_TOKEN_PERSISTENCE", Flag, "expected true or false")
  .pipe(Config.withDefault(false))

/**
 * `AMP_TESTS`, as it is set (`"live"` asks for persistence).
 *
 * @since 0.1.0
 * @category config
 */
export const tests: Config.Config<Option.Option<string>> = Config.option(Config.string("AMP_TESTS"))

/**
 * `AMP_TOKEN_FILE`: the token file's path; `defaultTokenFile` when unset.
 *
 * @since 0.1.0
 * @category config
 */
export const tokenFile: Config.Config<string> = decoded(
  "AMP_TOKEN_FILE",
  Schema.NonEmptyTrimmedString,
  "expected a file path"
).pipe(Config.withDefault(defaultTokenFile))

const storeKinds: ReadonlyArray<StoreKind> = ["file", "redis", "memory", "none"]

/**
 * Reads a store kind as `AMP_TOKEN_STORE` or a `--store` option spells it (any case, spaces
 * around ignored); `None` for anything else.
 *
 * @since 0.1.0
 * @category utils
 */
export const parseStoreKind = (text: string): Option.Option<StoreKind> =>
  Option.fromNullable(storeKinds.find((candidate) => candidate === text.trim().toLowerCase()))

/**
 * `AMP_TOKEN_STORE`: `file`, `redis`, `memory` or `none` (any case); `None` when unset or
 * blank. `PersistencePolicy.chooseStore` decides what an unset value means.
 *
 * @since 0.1.0
 * @category config
 */
export const tokenStore: Config.Config<Option.Option<StoreKind>> = Config.option(Config.nested(
  Config.primitive("a token store", (text) =>
    text.trim() === ""
      ? Either.left(notSet())
      : Either.fromOption(parseStoreKind(text), () => invalidValue(text, "expected file, redis, memory or none"))),
  "AMP_TOKEN_STORE"
))

/**
 * One `Config` for each field of `AmpConfig`: the shape of the `layerConfig` constructors'
 * options.
 *
 * @since 0.1.0
 * @category models
 */
export type Fields = { readonly [K in keyof AmpConfig]: Config.Config<AmpConfig[K]> }

/**
 * Every variable, in the order they are checked.
 *
 * @since 0.1.0
 * @category config
 */
export const fields: Fields = {
  baseUrl,
  username,
  password,
  retry,
  requestTimeout,
  tokenPersistence,
  tests,
  tokenFile,
  refreshMargin,
  tokenStore
}

/**
 * Every variable read under `prefix` (`Config.nested`): `nested("ISSUER")` reads
 * `ISSUER_AMP_USERNAME`, `ISSUER_API_RETRY_MAX_ATTEMPTS`, ... from the environment. Pass it to
 * a `layerConfig`, whole or in part.
 *
 * @example
 * ```ts
 * import { AmpConfig } from "@amp-effect/core"
 * import { Config, ConfigProvider, Effect } from "effect"
 *
 * // Two AMP accounts in one environment, each under its own prefix. (A map joined with `_`,
 * // as `ConfigProvider.fromEnv` joins a nested path, stands in for the environment here.)
 * const env = ConfigProvider.fromMap(
 *   new Map([
 *     ["ISSUER_AMP_USERNAME", "issuer"],
 *     ["ISSUER_AMP_PASSWORD", "s3cret"],
 *     ["ISSUER_API_RETRY_MAX_ATTEMPTS", "5"],
 *     ["AUDITOR_AMP_USERNAME", "auditor"]
 *   ]),
 *   { pathDelim: "_" }
 * )
 * const account = (prefix: string) => AmpConfig.read(Config.all(AmpConfig.nested(prefix)))
 *
 * const program = Effect.gen(function*() {
 *   const issuer = yield* account("ISSUER")
 *   console.log(issuer.username, issuer.retry.maxAttempts, issuer.baseUrl)
 *   // Output: issuer 5 https://amp-test.blockstream.com/api
 *
 *   const auditor = yield* Effect.flip(account("AUDITOR"))
 *   console.log(auditor.message)
 *   // Output: AUDITOR_AMP_PASSWORD is not set
 * })
 *
 * Effect.runPromise(program.pipe(Effect.withConfigProvider(env)))
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const nested = (prefix: string): Fields =>
  Record.map(fields, (config: Config.Config<unknown>) => Config.nested(config, prefix)) as unknown as Fields

/**
 * The whole configuration, from the seed's variables.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<AmpConfig> = Config.all(fields)

/**
 * Reads and validates every variable. Fails with the first `AmpConfigError`, which names the
 * variable and (except for secrets) the value it found.
 *
 * @since 0.1.0
 * @category config
 */
export const load: Effect.Effect<AmpConfig, AmpConfigError> = read(config)
