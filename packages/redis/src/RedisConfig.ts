/**
 * The Redis store's configuration as Effect `Config` values (tests swap a `ConfigProvider`),
 * each validated as it is read. Read through `AmpConfig.read` (as `load` and
 * `RedisTokenStore.layerConfig` do), a bad value fails with the core's `AmpConfigError`, so that
 * an application has one configuration error to handle.
 *
 * | variable | default |
 * | --- | --- |
 * | `AMP_TOKEN_STORE` | read by `@amp-effect/core` (`AmpConfig.tokenStore`); `file`, `redis`, `memory` or `none` |
 * | `AMP_REDIS_URL` | required for the Redis store: `redis://[[user]:password@]host[:port][/db]` or `rediss://…` |
 * | `AMP_REDIS_KEY_PREFIX` | `amp-effect` |
 * | `AMP_TOKEN_ENCRYPTION_KEY` | unset: tokens stored in clear. Base64 of 32 bytes; several, comma-separated, to rotate |
 *
 * The URL (it may hold a password) and the encryption keys are `Redacted` from the moment they
 * are read, and no error message quotes them.
 *
 * @since 0.1.0
 */
import { AmpConfig, EncryptionKey } from "@amp-effect/core"
import { Config, ConfigError, Either, Option, Redacted } from "effect"
import type { Effect } from "effect"

/**
 * The Redis store's settings from the environment.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisConfig {
  readonly url: Redacted.Redacted<string>
  readonly keyPrefix: string
  /** The first encrypts, all decrypt; empty when `AMP_TOKEN_ENCRYPTION_KEY` is unset. */
  readonly encryptionKeys: ReadonlyArray<EncryptionKey.EncryptionKey>
}

/**
 * The key prefix used when none is configured.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultKeyPrefix = "amp-effect"

/**
 * `AMP_TOKEN_STORE`: `file` (the default), `redis`, `memory` or `none`, any case. The core's
 * `AmpConfig.tokenStore` with its default, for `Options.withFallbackConfig` in a CLI.
 *
 * @since 0.1.0
 * @category config
 */
export const tokenStore: Config.Config<AmpConfig.StoreKind> = Config.map(
  AmpConfig.tokenStore,
  Option.getOrElse(() => AmpConfig.defaultStoreKind)
)

/**
 * Whether `url` is a Redis URL the store accepts: `redis:` or `rediss:` with a host.
 *
 * @since 0.1.0
 * @category utils
 */
export const isRedisUrl = (url: string): boolean => {
  if (!URL.canParse(url)) return false
  const parsed = new URL(url)
  return (parsed.protocol === "redis:" || parsed.protocol === "rediss:") && parsed.hostname !== ""
}

/**
 * A Redis URL without its user name and password, for log lines and error messages:
 * `redis://:secret@cache:6379/2` → `redis://cache:6379/2`.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeUrl = (url: string): string => {
  if (!URL.canParse(url)) return "redis (an unparsable URL)"
  const parsed = new URL(url)
  return `${parsed.protocol}//${parsed.host}${parsed.pathname === "/" ? "" : parsed.pathname}`
}

/**
 * A secret variable, trimmed and `Redacted` from the moment it is read, checked by `parse`
 * (whose failure must not quote it); blank counts as unset. `Config.redacted` first, so that
 * even Effect's own errors never show the text.
 */
const secret = <A>(
  name: string,
  parse: (text: string) => Either.Either<A, ConfigError.ConfigError>
): Config.Config<A> =>
  Config.redacted().pipe(
    Config.mapOrFail((value) => {
      const text = Redacted.value(value).trim()
      return text === "" ? Either.left(AmpConfig.notSet()) : parse(text)
    }),
    Config.nested(name)
  )

/**
 * `AMP_REDIS_URL`, required: `redis://` or `rediss://` (TLS), with the password if any.
 *
 * @since 0.1.0
 * @category config
 */
export const url: Config.Config<Redacted.Redacted<string>> = secret("AMP_REDIS_URL", (text) =>
  isRedisUrl(text)
    ? Either.right(Redacted.make(text))
    : Either.left(
      ConfigError.InvalidData([], "not a Redis URL: expected redis://[[user]:password@]host[:port][/db] or rediss://…")
    ))

/**
 * Whether `prefix` can start the store's keys: 1 to 64 characters among letters, digits and
 * `.:_-/`. Braces are refused since they would change the Redis Cluster hash tag.
 *
 * @since 0.1.0
 * @category utils
 */
export const isKeyPrefix = (prefix: string): boolean => /^[A-Za-z0-9.:_\-/]{1,64}$/.test(prefix)

/**
 * `AMP_REDIS_KEY_PREFIX`, `amp-effect` by default (also when blank): lets several
 * applications or environments share one Redis without sharing a token.
 *
 * @since 0.1.0
 * @category config
 */
export const keyPrefix: Config.Config<string> = Config.nested(
  Config.primitive("a key prefix", (text) => {
    const prefix = text.trim()
    return prefix === ""
      ? Either.left(AmpConfig.notSet())
      : isKeyPrefix(prefix)
      ? Either.right(prefix)
      : Either.left(AmpConfig.invalidValue(text, "expected 1 to 64 letters, digits or .:_-/ (no braces, no spaces)"))
  }),
  "AMP_REDIS_KEY_PREFIX"
).pipe(Config.withDefault(defaultKeyPrefix))

/**
 * Every variable of the Redis store (not `AMP_TOKEN_STORE`) as one `Config`.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<RedisConfig> = Config.all({
  url,
  keyPrefix,
  encryptionKeys: EncryptionKey.config
})

/**
 * Reads and validates every variable of the Redis store; fails with the first
 * `AmpConfigError`.
 *
 * @since 0.1.0
 * @category config
 */
export const load: Effect.Effect<RedisConfig, AmpConfig.AmpConfigError> = AmpConfig.read(config)
