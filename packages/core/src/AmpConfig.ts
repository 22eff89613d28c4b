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
 * The `layerConfig` constructors (`AuthApi`, `AmpClient`, `TokenService`, and `NodeAmp` in
 * `@amp-effect/node`) take a `Config` for each option, by default the one here: pass
 * `Config.nested(AmpConfig.retry, "AMP")` to read one group under a prefix, or
 * `AmpConfig.nested("ISSUER")` to read every variable under one.
 *
 * Prefer `Config.nested` to `ConfigProvider.nested`: in effect 3.x a provider nested with
 * `ConfigProvider.nested` splits every value at its commas and keeps the first piece (a
 * password `a,b` would be read as `a`).
 *
 * Read through `read` (or a `layerConfig`), a value that is missing or invalid fails with an
 * `AmpConfigError` naming the variable as the environment spells it, the rule it breaks and,
 * except for secrets, the value found: `API_RETRY_MAX_ATTEMPTS is invalid: got "abc", expected
 * a whole number of at least 1`.
 *
 * @since 0.1.0
 */
import { Config, ConfigError, Duration, Effect, Either, Option, Record, type Redacted, Schema } from "effect"
import { normalizeBaseUrl } from "./internal/ampHttp.js"
import * as RetryPolicy from "./RetryPolicy.js"

/**
 * A configuration variable is missing or holds a value the library cannot use. The message is
 * `VARIABLE reason`, or `VARIABLE="value" is invalid: reason` when `value` is given (a value
 * checked outside `Config`, such as a command-line flag).
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

/**
 * The `ConfigError` of a variable holding `value`, which breaks `rule` ("expected ..."): read
 * as `VARIABLE is invalid: got "value", expected ...`. Never for a secret: fail with
 * `ConfigError.InvalidData([], rule)` instead, which does not quote it.
 *
 * @since 0.1.0
 * @category errors
 */
export const invalidValue = (value: string, rule: string): ConfigError.ConfigError =>
  ConfigError.InvalidData([], `got ${JSON.stringify(value)}, ${rule}`)

/**
 * The `ConfigError` of a variable that is unset (or blank, where blank means unset): a
 * `MissingData`, so `Config.withDefault` and `Config.option` apply to it. `detail` stays in the
 * `ConfigError`'s own message; the `AmpConfigError` says `VARIABLE is not set`.
 *
 * @since 0.1.0
 * @category errors
 */
export const notSet = (detail = "is not set"): ConfigError.ConfigError => ConfigError.MissingData([], detail)

/**
 * The `AmpConfigError` of a `ConfigError`, read from its structure alone: the first failure, the
 * variable named by its path (joined with `_`, as `ConfigProvider.fromEnv` joins it), the reason
 * by its kind. An invalid value's message is the rule it breaks, used as it is (ours, as
 * `invalidValue` writes it, or Effect's own); a secret's never quotes it.
 */
const fromConfigError = (error: ConfigError.ConfigError): AmpConfigError => {
  switch (error._op) {
    case "And":
    case "Or":
      return fromConfigError(error.left)
    case "MissingData":
      return new AmpConfigError({ variable: variableOf(error.path), reason: "is not set" })
    case "InvalidData":
      return new AmpConfigError({ variable: variableOf(error.path), reason: `is invalid: ${error.message}` })
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

/**
 * The variable `name`, its text trimmed and read by `parse`; text `parse` refuses is invalid
 * for `rule`, and quoted as `shown` shows it. A `Config.primitive` rather than a
 * `Config.mapOrFail`: the failure of a primitive carries the path the provider read, so a prefix
 * added by `ConfigProvider.nested` is named too.
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

/** `AMP_TOKEN_PERSISTENCE` as it may be spelt (lowercased); empty is false. */
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
 * `AMP_API_BASE_URL`, validated and without a trailing slash; `defaultBaseUrl` when unset.
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

const millis = (name: string) =>
  Config.map(variable(name, "expected milliseconds (>= 0)", wholeNumber(0)), Duration.millis)

const seconds = (name: string, min: number) =>
  Config.map(variable(name, `expected a whole number of seconds (>= ${min})`, wholeNumber(min)), Duration.seconds)

/**
 * The retry policy's variables, each defaulting to `RetryPolicy.defaultOptions`. The maximum
 * delay must not be below the base delay, or the "exponential" backoff would be a constant one
 * and surprise whoever set it.
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
 * `API_REQUEST_TIMEOUT_SECONDS`: how long one attempt may take; `defaultRequestTimeout` when
 * unset.
 *
 * @since 0.1.0
 * @category config
 */
export const requestTimeout: Config.Config<Duration.Duration> = seconds("API_REQUEST_TIMEOUT_SECONDS", 1).pipe(
  Config.withDefault(defaultRequestTimeout)
)

/**
 * `AMP_TOKEN_REFRESH_MARGIN_SECONDS`: how long before expiry a token is refreshed;
 * `defaultRefreshMargin` when unset.
 *
 * @since 0.1.0
 * @category config
 */
export const refreshMargin: Config.Config<Duration.Duration> = seconds("AMP_TOKEN_REFRESH_MARGIN_SECONDS", 0).pipe(
  Config.withDefault(defaultRefreshMargin)
)

/**
 * `AMP_TOKEN_PERSISTENCE`: `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off` (any case); `false`
 * when unset.
 *
 * @since 0.1.0
 * @category config
 */
export const tokenPersistence: Config.Config<boolean> = variable(
  "AMP_TOKEN_PERSISTENCE",
  "expected true or false",
  parseFlag
).pipe(Config.withDefault(false))

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
export const tokenFile: Config.Config<string> = variable(
  "AMP_TOKEN_FILE",
  "expected a file path",
  Option.liftPredicate((path: string) => path !== "")
).pipe(Config.withDefault(defaultTokenFile))

const storeKinds: ReadonlyArray<StoreKind> = ["file", "redis", "memory", "none"]

/**
 * `AMP_TOKEN_STORE`: `file`, `redis`, `memory` or `none` (any case); `None` when unset or
 * blank. `PersistencePolicy.chooseStore` decides what an unset value means.
 *
 * @since 0.1.0
 * @category config
 */
export const tokenStore: Config.Config<Option.Option<StoreKind>> = Config.option(Config.nested(
  Config.primitive("a token store", (text) => {
    const kind = text.trim().toLowerCase()
    return kind === ""
      ? Either.left(notSet())
      : Either.fromOption(
        Option.fromNullable(storeKinds.find((candidate) => candidate === kind)),
        () => invalidValue(text, "expected file, redis, memory or none")
      )
  }),
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
