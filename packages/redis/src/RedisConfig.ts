/**
 * The Redis store's variables as `Config` values, each validated as it is read:
 * `AMP_REDIS_URL` (required, redacted), `AMP_REDIS_KEY_PREFIX` (`amp-effect`), and with
 * `AMP_TOKEN_ENCRYPTION_KEY` (core's `EncryptionKey.config`). Read through `AmpConfig.read` (as
 * `load` and `RedisTokenStore.layerConfig` do), a bad value fails with core's `AmpConfigError`.
 *
 * @since 0.1.0
 */
import { AmpConfig, EncryptionKey } from "@amp-effect/core"
import { Config, ConfigError, Either, Redacted } from "effect"
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
  /** The first seals, all open; empty when `AMP_TOKEN_ENCRYPTION_KEY` is unset. */
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
 * A Redis URL without its user name and password, for messages:
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
 * `AMP_REDIS_URL`, required: `redis://` or `rediss://` (TLS), with the password if any. Redacted
 * from the moment it is read (so even Effect's own errors never show it); blank is unset.
 *
 * @since 0.1.0
 * @category config
 */
export const url: Config.Config<Redacted.Redacted<string>> = Config.redacted().pipe(
  Config.mapOrFail((value) => {
    const text = Redacted.value(value).trim()
    const rule = "not a Redis URL: expected redis://[[user]:password@]host[:port][/db] or rediss://…"
    return text === ""
      ? Either.left(AmpConfig.notSet())
      : isRedisUrl(text)
      ? Either.right(Redacted.make(text))
      : Either.left(ConfigError.InvalidData([], rule))
  }),
  Config.nested("AMP_REDIS_URL")
)

/**
 * Whether `prefix` can start the store's keys: 1 to 64 letters, digits or `.:_-/`. Braces would
 * change the Redis Cluster hash tag.
 *
 * @since 0.1.0
 * @category utils
 */
export const isKeyPrefix = (prefix: string): boolean => /^[A-Za-z0-9.:_\-/]{1,64}$/.test(prefix)

/**
 * `AMP_REDIS_KEY_PREFIX`, `amp-effect` when unset or blank: lets several applications or
 * environments share one Redis without sharing a token.
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
 * Reads and validates every variable of the Redis store; fails with the first `AmpConfigError`.
 *
 * @since 0.1.0
 * @category config
 */
export const load: Effect.Effect<RedisConfig, AmpConfig.AmpConfigError> = AmpConfig.read(config)
