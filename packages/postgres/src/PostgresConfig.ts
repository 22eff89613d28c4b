/**
 * The Postgres store's configuration as `Config` values, each validated as it is read; through
 * `AmpConfig.read`, a bad value fails with an `AmpConfigError` naming the variable.
 *
 * | variable | default |
 * | --- | --- |
 * | `AMP_POSTGRES_URL` | required: `postgres://user:password@host:5432/db` (or `postgresql://`) |
 * | `AMP_POSTGRES_SCHEMA` | `public` |
 * | `AMP_POSTGRES_TABLE` | `amp_effect_tokens` (the migrations go in `<table>_migrations`) |
 *
 * The URL is `Redacted` from the moment it is read, and no error quotes it.
 *
 * @since 0.1.0
 */
import { AmpConfig } from "@amp-effect/core"
import { Config, ConfigError, Either, Redacted } from "effect"
import * as internal from "./internal/migrations.js"

/**
 * The schema used when none is configured.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultSchema = "public"

/**
 * The table used when none is configured.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultTable = "amp_effect_tokens"

/**
 * Whether `name` may name the store's schema: lower-case letters, digits and `_`, not starting
 * with a digit, at most 63 characters (names that need no quotes in psql).
 *
 * @since 0.1.0
 * @category utils
 */
export const isSchemaName = (name: string): boolean => internal.isIdentifier(name, 63)

/**
 * Whether `name` may name the store's table: as `isSchemaName`, at most 52 characters, so that
 * `<table>_migrations` fits Postgres's 63.
 *
 * @since 0.1.0
 * @category utils
 */
export const isTableName = (name: string): boolean => internal.isIdentifier(name, 52)

/**
 * Whether `url` is a connection URL the store accepts: `postgres:` or `postgresql:` with a host.
 *
 * @since 0.1.0
 * @category utils
 */
export const isPostgresUrl = (url: string): boolean => {
  if (!URL.canParse(url)) return false
  const parsed = new URL(url)
  return (parsed.protocol === "postgres:" || parsed.protocol === "postgresql:") && parsed.hostname !== ""
}

/**
 * A connection URL without user, password or parameters, for messages:
 * `postgres://app:secret@db:5432/app?sslmode=require` → `postgres://db:5432/app`.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeUrl = (url: string): string => {
  if (!URL.canParse(url)) return "postgres (an unparsable URL)"
  const parsed = new URL(url)
  return `${parsed.protocol}//${parsed.host}${parsed.pathname === "/" ? "" : parsed.pathname}`
}

/**
 * `AMP_POSTGRES_URL`, required, redacted as it is read.
 *
 * @since 0.1.0
 * @category config
 */
export const url: Config.Config<Redacted.Redacted<string>> = Config.redacted().pipe(
  Config.mapOrFail((value) => {
    const text = Redacted.value(value).trim()
    if (text === "") return Either.left(AmpConfig.notSet())
    return isPostgresUrl(text)
      ? Either.right(Redacted.make(text))
      // The value is not quoted: it may hold a password.
      : Either.left(ConfigError.InvalidData([], "not a Postgres URL: expected postgres://user:password@host[:port]/db"))
  }),
  Config.nested("AMP_POSTGRES_URL")
)

const identifier = (variable: string, limit: number, fallback: string) =>
  Config.nested(
    Config.primitive("an identifier", (text) => {
      const name = text.trim()
      if (name === "") return Either.left(AmpConfig.notSet())
      return internal.isIdentifier(name, limit) ? Either.right(name) : Either.left(AmpConfig.invalidValue(
        text,
        `expected 1 to ${limit} lower-case letters, digits or _, not starting with a digit`
      ))
    }),
    variable
  ).pipe(Config.withDefault(fallback))

/**
 * `AMP_POSTGRES_SCHEMA`, `public` by default (also when blank); created on first use if missing.
 *
 * @since 0.1.0
 * @category config
 */
export const schema: Config.Config<string> = identifier("AMP_POSTGRES_SCHEMA", 63, defaultSchema)

/**
 * `AMP_POSTGRES_TABLE`, `amp_effect_tokens` by default (also when blank); created on first use.
 *
 * @since 0.1.0
 * @category config
 */
export const table: Config.Config<string> = identifier("AMP_POSTGRES_TABLE", 52, defaultTable)
