/**
 * The library's configuration as Effect `Config` values, each validated as it is read. The
 * `layerConfig` constructors take a `Config` for each option, by default the one here:
 * `Config.nested(AmpConfig.retry, "AMP")` reads one group under a prefix, `nested("ISSUER")`
 * every variable. Prefer `Config.nested` to `ConfigProvider.nested`, which in effect 3.x keeps
 * only the first comma-separated piece of each value (a password `a,b` would read as `a`).
 *
 * Read through `read`, a missing or invalid value fails with an `AmpConfigError` naming the
 * variable, the rule and, except for secrets, the value: `API_RETRY_MAX_ATTEMPTS is invalid:
 * got "abc", expected a whole number of at least 1`.
 *
 * @since 0.1.0
 */
import { Config, ConfigError, Duration, Effect, Either, Option, Record, type Redacted, Schema } from "effect"
import { normalizeBaseUrl } from "./internal/ampHttp.js"
import * as RetryPolicy from "./RetryPolicy.js"

/**
 * A configuration variable is missing or invalid: `VARIABLE reason`, or `VARIABLE="value" is
 * invalid: reason` when `value` is given (one checked outside `Config`, such as a CLI flag).
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

const storeKinds = Schema.Literal("file", "redis", "postgres", "memory", "none")

/**
 * Where tokens are kept, as `AMP_TOKEN_STORE` names it.
 *
 * @since 0.1.0
 * @category models
 */
export type StoreKind = typeof storeKinds.Type

/**
 * The whole configuration.
 *
 * @since 0.1.0
 * @category models
 */
export interface AmpConfig extends Credentials {
  readonly retry: RetryPolicy.RetryOptions
  readonly requestTimeout: Duration.Duration
  readonly tokenPersistence: boolean
  readonly tests: Option.Option<string>
  readonly tokenFile: string
  readonly refreshMargin: Duration.Duration
  readonly tokenStore: Option.Option<StoreKind>
}

/**
 * The testnet API: a forgotten variable never points a test at mainnet.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBaseUrl = "https://amp-test.blockstream.com/api"

/**
 * How long one HTTP attempt may take by default.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultRequestTimeout: Duration.Duration = Duration.seconds(10)

/**
 * How long before expiry a token is renewed by default, as the Rust client.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultRefreshMargin: Duration.Duration = Duration.minutes(5)

/**
 * The store used when persistence is asked for without naming a store.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultStoreKind: StoreKind = "file"

/**
 * The `ConfigError` of a variable holding `value`, which breaks `rule` ("expected ..."). Never
 * for a secret (it quotes the value): use `ConfigError.InvalidData([], rule)`.
 *
 * @since 0.1.0
 * @category errors
 */
export const invalidValue = (value: string, rule: string): ConfigError.ConfigError =>
  ConfigError.InvalidData([], `got ${JSON.stringify(value)}, ${rule}`)

/**
 * The `ConfigError` of an unset (or blank) variable: a `MissingData`, so `Config.withDefault`
 * and `Config.option` apply. The `AmpConfigError` says `VARIABLE is not set`.
 *
 * @since 0.1.0
 * @category errors
 */
export const notSet = (detail = "is not set"): ConfigError.ConfigError => ConfigError.MissingData([], detail)

/** The first failure of a `ConfigError`, read by its kind and path (joined as the environment's). */
const fromConfigError = (error: ConfigError.ConfigError): AmpConfigError => {
  if (error._op === "And" || error._op === "Or") return fromConfigError(error.left)
  return new AmpConfigError({
    variable: error.path.length === 0 ? "the configuration" : error.path.join("_"),
    reason: error._op === "MissingData"
      ? "is not set"
      : error._op === "InvalidData"
      ? `is invalid: ${error.message}`
      : `could not be read: ${error.message}`
  })
}

/**
 * Reads `config`, failing with the `AmpConfigError` of the first missing or invalid variable.
 *
 * @since 0.1.0
 * @category utils
 */
export const read = <A>(config: Config.Config<A>): Effect.Effect<A, AmpConfigError> =>
  Effect.mapError(config, fromConfigError)

/**
 * The variable `name`, trimmed and read by `parse`, quoted as `shown` shows it when refused. A
 * `Config.primitive`: its failure carries the path the provider read, prefix included.
 */
const variable = <A>(
  name: string,
  rule: string,
  parse: (text: string) => Option.Option<A>,
  shown: (text: string) => string = (text) => text
): Config.Config<A> =>
  Config.nested(
    Config.primitive(rule, (text) => Either.fromOption(parse(text.trim()), () => invalidValue(shown(text), rule))),
    name
  )

const wholeNumber = (min: number) =>
  Schema.decodeOption(Schema.NumberFromString.pipe(Schema.int(), Schema.greaterThanOrEqualTo(min)))

/** `AMP_TOKEN_PERSISTENCE`, lowercased; empty is false. */
const parseFlag = (text: string): Option.Option<boolean> => {
  const flag = text.toLowerCase()
  return ["true", "1", "yes", "on"].includes(flag)
    ? Option.some(true)
    : ["false", "0", "no", "off", ""].includes(flag)
    ? Option.some(false)
    : Option.none()
}

/** A URL as an error may quote it: a user name or password in it is replaced by `***`. */
const withoutCredentials = (text: string): string => {
  const url = URL.canParse(text) ? new URL(text) : undefined
  if (url === undefined || (url.username === "" && url.password === "")) return text
  url.username = "***"
  url.password = ""
  return url.href
}

/** An absolute http(s) URL without query, fragment or credentials, with no trailing slash. */
const parseBaseUrl = (text: string): Option.Option<string> => {
  const url = URL.canParse(text) ? new URL(text) : undefined
  return url !== undefined && (url.protocol === "https:" || url.protocol === "http:") && url.search === "" &&
      url.hash === "" && url.username === "" && url.password === ""
    ? Option.some(normalizeBaseUrl(text))
    : Option.none()
}

/**
 * `AMP_API_BASE_URL`, without a trailing slash; `defaultBaseUrl` when unset.
 *
 * @since 0.1.0
 * @category config
 */
export const baseUrl: Config.Config<string> = variable(
  "AMP_API_BASE_URL",
  "expected an absolute http(s) URL without query or credentials, such as https://amp-test.blockstream.com/api",
  parseBaseUrl,
  withoutCredentials
).pipe(Config.withDefault(defaultBaseUrl))

/**
 * `AMP_USERNAME`, required (empty counts as unset).
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

const millis = (name: string) =>
  Config.map(variable(name, "expected milliseconds (>= 0)", wholeNumber(0)), Duration.millis)

const seconds = (name: string, min: number) =>
  Config.map(variable(name, `expected a whole number of seconds (>= ${min})`, wholeNumber(min)), Duration.seconds)

/**
 * `API_RETRY_MAX_ATTEMPTS`, `API_RETRY_BASE_DELAY_MS`, `API_RETRY_MAX_DELAY_MS`, defaulting to
 * `RetryPolicy.defaultOptions`. A maximum below the base delay is refused: it would turn the
 * exponential backoff into a constant one.
 *
 * @since 0.1.0
 * @category config
 */
export const retry: Config.Config<RetryPolicy.RetryOptions> = Config.all({
  maxAttempts: variable("API_RETRY_MAX_ATTEMPTS", "expected a whole number of at least 1", wholeNumber(1))
    .pipe(Config.withDefault(RetryPolicy.defaultOptions.maxAttempts)),
  baseDelay: millis("API_RETRY_BASE_DELAY_MS").pipe(Config.withDefault(RetryPolicy.defaultOptions.baseDelay)),
  maxDelay: millis("API_RETRY_MAX_DELAY_MS").pipe(Config.withDefault(RetryPolicy.defaultOptions.maxDelay))
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
 * `API_REQUEST_TIMEOUT_SECONDS`: how long one attempt may take; `defaultRequestTimeout` when unset.
 *
 * @since 0.1.0
 * @category config
 */
export const requestTimeout: Config.Config<Duration.Duration> = seconds("API_REQUEST_TIMEOUT_SECONDS", 1).pipe(
  Config.withDefault(defaultRequestTimeout)
)

/**
 * `AMP_TOKEN_REFRESH_MARGIN_SECONDS`: how long before expiry a token is refreshed.
 *
 * @since 0.1.0
 * @category config
 */
export const refreshMargin: Config.Config<Duration.Duration> = seconds("AMP_TOKEN_REFRESH_MARGIN_SECONDS", 0).pipe(
  Config.withDefault(defaultRefreshMargin)
)

/** `AMP_TOKEN_PERSISTENCE`: `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off` (any case); unset is false. */
const tokenPersistence: Config.Config<boolean> = variable(
  "AMP_TOKEN_PERSISTENCE",
  "expected true or false",
  parseFlag
).pipe(Config.withDefault(false))

/** `AMP_TESTS` (`"live"` asks for persistence). */
const tests: Config.Config<Option.Option<string>> = Config.option(Config.string("AMP_TESTS"))

/**
 * `AMP_TOKEN_FILE`: the token file's path; `token.json` (in the working directory) when unset.
 *
 * @since 0.1.0
 * @category config
 */
export const tokenFile: Config.Config<string> = variable(
  "AMP_TOKEN_FILE",
  "expected a file path",
  Option.liftPredicate((path: string) => path !== "")
).pipe(Config.withDefault("token.json"))

/**
 * `AMP_TOKEN_STORE`: `file`, `redis`, `postgres`, `memory` or `none` (any case); `None` when
 * unset or blank, which `PersistencePolicy.chooseStore` decides on.
 *
 * @since 0.1.0
 * @category config
 */
export const tokenStore: Config.Config<Option.Option<StoreKind>> = Config.option(Config.nested(
  Config.primitive("a token store", (text) => {
    const kind = text.trim().toLowerCase()
    if (kind === "") return Either.left(notSet())
    return Schema.is(storeKinds)(kind)
      ? Either.right(kind)
      : Either.left(invalidValue(text, "expected file, redis, postgres, memory or none"))
  }),
  "AMP_TOKEN_STORE"
))

/**
 * One `Config` for each field of `AmpConfig`: the `layerConfig` constructors' options.
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
 * Every variable read under `prefix`: `nested("ISSUER")` reads `ISSUER_AMP_USERNAME`, ... Pass
 * it to a `layerConfig`, whole or in part.
 *
 * @example
 * ```ts
 * import { AmpConfig } from "@amp-effect/core"
 * import { Config, ConfigProvider, Effect } from "effect"
 *
 * // Two accounts in one environment (a map joined with `_` stands in for it).
 * const env = ConfigProvider.fromMap(
 *   new Map([
 *     ["ISSUER_AMP_USERNAME", "issuer"],
 *     ["ISSUER_AMP_PASSWORD", "s3cret"],
 *     ["AUDITOR_AMP_USERNAME", "auditor"]
 *   ]),
 *   { pathDelim: "_" }
 * )
 * const account = (prefix: string) =>
 *   AmpConfig.read(Config.all(AmpConfig.nested(prefix))).pipe(Effect.withConfigProvider(env))
 *
 * console.log(Effect.runSync(account("ISSUER")).username)
 * // Output: issuer
 * console.log(Effect.runSync(Effect.flip(account("AUDITOR"))).message)
 * // Output: AUDITOR_AMP_PASSWORD is not set
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const nested = (prefix: string): Fields =>
  Record.map(fields, (config: Config.Config<unknown>) => Config.nested(config, prefix)) as unknown as Fields

/**
 * Reads every variable, failing with the first `AmpConfigError`.
 *
 * @since 0.1.0
 * @category config
 */
export const load: Effect.Effect<AmpConfig, AmpConfigError> = read(Config.all(fields))
