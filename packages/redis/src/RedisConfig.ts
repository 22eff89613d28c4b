/**
 * The Redis store's configuration, read through Effect's `Config` (tests swap a
 * `ConfigProvider`) and validated variable by variable, failing with the core's
 * `AmpConfigError` so that an application has one configuration error to handle.
 *
 * | variable | default |
 * | --- | --- |
 * | `AMP_TOKEN_STORE` | `file` (`file`, `redis`, `memory` or `none`) |
 * | `AMP_REDIS_URL` | required for the Redis store: `redis://[[user]:password@]host[:port][/db]` or `rediss://…` |
 * | `AMP_REDIS_KEY_PREFIX` | `amp-effect` |
 * | `AMP_TOKEN_ENCRYPTION_KEY` | unset: tokens stored in clear. Base64 of 32 bytes; several, comma-separated, to rotate |
 *
 * The URL (it may hold a password) and the encryption keys are `Redacted` from the moment they
 * are read, and no error message quotes them.
 *
 * @since 0.1.0
 */
import { AmpConfig } from "@amp-effect/core"
import { Config, ConfigError, Effect, Either, Option, Redacted } from "effect"
import * as EncryptionKey from "./EncryptionKey.js"

/**
 * Where tokens are kept, as `AMP_TOKEN_STORE` names it.
 *
 * @since 0.1.0
 * @category models
 */
export type StoreKind = "file" | "redis" | "memory" | "none"

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

const readError = (variable: string) => (error: unknown) =>
  new AmpConfig.AmpConfigError({ variable, reason: `could not be read: ${error}` })

const text = (variable: string) =>
  Effect.mapError(
    Config.option(Config.string(variable)),
    readError(variable)
  ).pipe(Effect.map(Option.filter((value) => value.trim().length > 0)))

const secret = (variable: string) =>
  Effect.mapError(Config.option(Config.redacted(variable)), readError(variable)).pipe(
    Effect.map(Option.filter((value) => Redacted.value(value).trim().length > 0))
  )

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
 * `AMP_TOKEN_STORE`: `file` (the default), `redis`, `memory` or `none`, any case.
 *
 * @since 0.1.0
 * @category config
 */
export const tokenStore: Effect.Effect<StoreKind, AmpConfig.AmpConfigError> = Effect.flatMap(
  text("AMP_TOKEN_STORE"),
  Option.match({
    onNone: () => Effect.succeed<StoreKind>("file"),
    onSome: (value) =>
      Option.match(parseStoreKind(value), {
        onNone: () =>
          Effect.fail(
            new AmpConfig.AmpConfigError({
              variable: "AMP_TOKEN_STORE",
              value,
              reason: "expected file, redis, memory or none"
            })
          ),
        onSome: (kind) => Effect.succeed(kind)
      })
  })
)

/**
 * `AMP_TOKEN_STORE` as a `Config`, for `Options.withFallbackConfig` in a CLI: the same values
 * and default as `tokenStore`, failing with a `ConfigError`.
 *
 * @since 0.1.0
 * @category config
 */
export const tokenStoreConfig: Config.Config<StoreKind> = Config.string("AMP_TOKEN_STORE").pipe(
  Config.mapOrFail((value) =>
    Either.fromOption(
      parseStoreKind(value),
      () => ConfigError.InvalidData([], `expected file, redis, memory or none, not ${JSON.stringify(value)}`)
    )
  ),
  Config.withDefault<StoreKind>("file")
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
 * `AMP_REDIS_URL`, required: `redis://` or `rediss://` (TLS), with the password if any.
 *
 * @since 0.1.0
 * @category config
 */
export const url: Effect.Effect<Redacted.Redacted<string>, AmpConfig.AmpConfigError> = Effect.flatMap(
  secret("AMP_REDIS_URL"),
  Option.match({
    onNone: () =>
      Effect.fail(
        new AmpConfig.AmpConfigError({
          variable: "AMP_REDIS_URL",
          reason: "is not set: the Redis token store needs it (redis://host:6379 or rediss://… for TLS)"
        })
      ),
    onSome: (value) =>
      isRedisUrl(Redacted.value(value).trim())
        ? Effect.succeed(Redacted.make(Redacted.value(value).trim()))
        : Effect.fail(
          new AmpConfig.AmpConfigError({
            variable: "AMP_REDIS_URL",
            // The value is not quoted: it may hold a password.
            reason: "is not a Redis URL: expected redis://[[user]:password@]host[:port][/db] or rediss://…"
          })
        )
  })
)

/**
 * Whether `prefix` can start the store's keys: 1 to 64 characters among letters, digits and
 * `.:_-/`. Braces are refused since they would change the Redis Cluster hash tag.
 *
 * @since 0.1.0
 * @category utils
 */
export const isKeyPrefix = (prefix: string): boolean => /^[A-Za-z0-9.:_\-/]{1,64}$/.test(prefix)

/**
 * `AMP_REDIS_KEY_PREFIX`, `amp-effect` by default: lets several applications or environments
 * share one Redis without sharing a token.
 *
 * @since 0.1.0
 * @category config
 */
export const keyPrefix: Effect.Effect<string, AmpConfig.AmpConfigError> = Effect.flatMap(
  text("AMP_REDIS_KEY_PREFIX"),
  Option.match({
    onNone: () => Effect.succeed(defaultKeyPrefix),
    onSome: (value) =>
      isKeyPrefix(value.trim())
        ? Effect.succeed(value.trim())
        : Effect.fail(
          new AmpConfig.AmpConfigError({
            variable: "AMP_REDIS_KEY_PREFIX",
            value,
            reason: "expected 1 to 64 letters, digits or .:_-/ (no braces, no spaces)"
          })
        )
  })
)

/**
 * `AMP_TOKEN_ENCRYPTION_KEY`: none by default; otherwise one or more base64 keys of 32 bytes,
 * comma-separated, the first encrypting. The message of a bad key says which one and why,
 * never what it holds.
 *
 * @since 0.1.0
 * @category config
 */
export const encryptionKeys: Effect.Effect<ReadonlyArray<EncryptionKey.EncryptionKey>, AmpConfig.AmpConfigError> =
  Effect.flatMap(
    secret("AMP_TOKEN_ENCRYPTION_KEY"),
    Option.match({
      onNone: () => Effect.succeed([]),
      onSome: (value) => {
        const parts = Redacted.value(value).split(",").map((part) => part.trim())
        const keys: Array<EncryptionKey.EncryptionKey> = []
        for (const [index, part] of parts.entries()) {
          const key = EncryptionKey.fromBase64(part)
          if (Either.isLeft(key)) {
            return Effect.fail(
              new AmpConfig.AmpConfigError({
                variable: "AMP_TOKEN_ENCRYPTION_KEY",
                reason:
                  `is invalid: ${parts.length > 1 ? `in key ${index + 1} of ${parts.length}, ` : ""}${key.left} ` +
                  "(expected the base64 of 32 random bytes, such as the output of openssl rand -base64 32)"
              })
            )
          }
          keys.push(key.right)
        }
        return Effect.succeed(keys)
      }
    })
  )

/**
 * Every variable of the Redis store (not `AMP_TOKEN_STORE`), validated; fails with the first
 * `AmpConfigError`.
 *
 * @since 0.1.0
 * @category config
 */
export const load: Effect.Effect<RedisConfig, AmpConfig.AmpConfigError> = Effect.all({
  url,
  keyPrefix,
  encryptionKeys
})
