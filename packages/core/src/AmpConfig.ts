/**
 * The library's configuration, read through Effect's `Config` (so tests swap a
 * `ConfigProvider` instead of touching `process.env`) and validated variable by variable.
 *
 * | variable | default |
 * | --- | --- |
 * | `AMP_API_BASE_URL` | `https://amp-test.blockstream.com/api` |
 * | `AMP_USERNAME`, `AMP_PASSWORD` | required to log in |
 * | `API_RETRY_MAX_ATTEMPTS` | `3` |
 * | `API_RETRY_BASE_DELAY_MS` | `1000` |
 * | `API_RETRY_MAX_DELAY_MS` | `30000` |
 * | `API_REQUEST_TIMEOUT_SECONDS` | `10` |
 * | `AMP_TOKEN_PERSISTENCE` | `false` |
 * | `AMP_TESTS` | unset |
 * | `AMP_TOKEN_FILE` | `token.json` |
 * | `AMP_TOKEN_REFRESH_MARGIN_SECONDS` | `300` |
 *
 * @since 0.1.0
 */
import { Config, Duration, Effect, Option, Redacted, Schema } from "effect"
import { normalizeBaseUrl } from "./internal/ampHttp.js"
import type { RetryOptions } from "./RetryPolicy.js"

/** A configuration variable is missing or holds a value the library cannot use. */
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

/** Where and how to log in. */
export interface Credentials {
  readonly baseUrl: string
  readonly username: string
  readonly password: Redacted.Redacted<string>
}

/** The whole configuration, every value validated. */
export interface AmpConfig extends Credentials {
  readonly retry: RetryOptions
  readonly requestTimeout: Duration.Duration
  /** `AMP_TOKEN_PERSISTENCE`: asks for persistence (the policy may still refuse it). */
  readonly tokenPersistence: boolean
  /** `AMP_TESTS`: `"live"` asks for persistence too. */
  readonly tests: Option.Option<string>
  readonly tokenFile: string
  readonly refreshMargin: Duration.Duration
}

/** The testnet API, so that a forgotten variable never points a test at mainnet. */
export const defaultBaseUrl = "https://amp-test.blockstream.com/api"

/** Reads one variable as text, mapping the provider's own failures to an `AmpConfigError`. */
const raw = (variable: string): Effect.Effect<Option.Option<string>, AmpConfigError> =>
  Effect.mapError(
    Config.option(Config.string(variable)),
    (error) => new AmpConfigError({ variable, reason: `could not be read: ${error}` })
  )

/** Reads a variable, falling back to `fallback` when unset, and decodes it with `schema`. */
const variable = <A>(
  name: string,
  schema: Schema.Schema<A, string>,
  fallback: string,
  expected: string
): Effect.Effect<A, AmpConfigError> =>
  Effect.flatMap(raw(name), (value) => {
    const text = Option.getOrElse(value, () => fallback)
    return Option.match(Schema.decodeOption(schema)(text.trim()), {
      onNone: () => Effect.fail(new AmpConfigError({ variable: name, value: text, reason: expected })),
      onSome: Effect.succeed
    })
  })

const required = (name: string): Effect.Effect<string, AmpConfigError> =>
  Effect.flatMap(raw(name), (value) =>
    Option.match(Option.filter(value, (text) => text.length > 0), {
      onNone: () => Effect.fail(new AmpConfigError({ variable: name, reason: "is not set" })),
      onSome: Effect.succeed
    }))

const WholeNumber = Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative())
const AtLeastOne = WholeNumber.pipe(Schema.greaterThanOrEqualTo(1))

const Flag = Schema.transform(
  Schema.String.pipe(Schema.filter((text) => flagValues.has(text.toLowerCase()))),
  Schema.Boolean,
  { strict: true, decode: (text) => flagValues.get(text.toLowerCase())!, encode: String }
)
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

/** `AMP_API_BASE_URL`, validated and without a trailing slash. */
export const baseUrl: Effect.Effect<string, AmpConfigError> = variable(
  "AMP_API_BASE_URL",
  BaseUrl,
  defaultBaseUrl,
  "expected an absolute http(s) URL without query or credentials, such as https://amp-test.blockstream.com/api"
)

/** `AMP_TOKEN_FILE`: the token file's path, `token.json` by default. */
export const tokenFile: Effect.Effect<string, AmpConfigError> = variable(
  "AMP_TOKEN_FILE",
  Schema.NonEmptyTrimmedString,
  "token.json",
  "expected a file path"
)

/** `AMP_USERNAME`, `AMP_PASSWORD` (redacted as soon as it is read) and the base URL. */
export const credentials: Effect.Effect<Credentials, AmpConfigError> = Effect.all({
  baseUrl,
  username: required("AMP_USERNAME"),
  password: Effect.map(required("AMP_PASSWORD"), Redacted.make)
})

/**
 * The retry policy's variables. The maximum delay must not be below the base delay, or the
 * "exponential" backoff would be a constant one and surprise whoever set it.
 */
export const retry: Effect.Effect<RetryOptions, AmpConfigError> = Effect.gen(function*() {
  const maxAttempts = yield* variable(
    "API_RETRY_MAX_ATTEMPTS",
    AtLeastOne,
    "3",
    "expected a whole number of at least 1"
  )
  const baseDelayMs = yield* variable("API_RETRY_BASE_DELAY_MS", WholeNumber, "1000", "expected milliseconds (>= 0)")
  const maxDelayMs = yield* variable("API_RETRY_MAX_DELAY_MS", WholeNumber, "30000", "expected milliseconds (>= 0)")
  if (maxDelayMs < baseDelayMs) {
    return yield* new AmpConfigError({
      variable: "API_RETRY_MAX_DELAY_MS",
      value: String(maxDelayMs),
      reason: `must not be below API_RETRY_BASE_DELAY_MS (${baseDelayMs})`
    })
  }
  return { maxAttempts, baseDelay: Duration.millis(baseDelayMs), maxDelay: Duration.millis(maxDelayMs) }
})

/** `API_REQUEST_TIMEOUT_SECONDS`: how long one attempt may take. */
export const requestTimeout: Effect.Effect<Duration.Duration, AmpConfigError> = Effect.map(
  variable("API_REQUEST_TIMEOUT_SECONDS", AtLeastOne, "10", "expected a whole number of seconds (>= 1)"),
  Duration.seconds
)

/** `AMP_TOKEN_REFRESH_MARGIN_SECONDS`: how long before expiry a token is refreshed. */
export const refreshMargin: Effect.Effect<Duration.Duration, AmpConfigError> = Effect.map(
  variable("AMP_TOKEN_REFRESH_MARGIN_SECONDS", WholeNumber, "300", "expected a whole number of seconds (>= 0)"),
  Duration.seconds
)

/**
 * Reads and validates every variable. Fails with the first `AmpConfigError`, which names the
 * variable and (except for secrets) the value it found.
 */
export const load: Effect.Effect<AmpConfig, AmpConfigError> = Effect.gen(function*() {
  const creds = yield* credentials
  return {
    ...creds,
    retry: yield* retry,
    requestTimeout: yield* requestTimeout,
    tokenPersistence: yield* variable("AMP_TOKEN_PERSISTENCE", Flag, "false", "expected true or false"),
    tests: yield* raw("AMP_TESTS"),
    tokenFile: yield* tokenFile,
    refreshMargin: yield* refreshMargin
  }
})
