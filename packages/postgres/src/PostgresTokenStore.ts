/**
 * A `TokenStore` in PostgreSQL, through `@effect/sql`: one token and one renewal for a whole
 * fleet, on the database it already runs. One row per account in `<schema>.<table>`, keyed by
 * the account hash (the username is never stored), created on first use by a versioned
 * migration; a fenced upsert (an older token never replaces a newer one); a session-level
 * advisory lock through `StoreLock`, which goes with a killed holder's session. Every statement
 * is bounded by `statementTimeout`; failures are `TokenStoreError`s naming Postgres, never the
 * URL's password. The token is stored in `TokenEnvelope`, sealed with `encryptionKey`
 * (`AMP_TOKEN_ENCRYPTION_KEY`) when given. The package README explains the table and the lock.
 * Needs PostgreSQL 14+.
 *
 * @example
 * ```ts
 * import { TokenService } from "@amp-effect/core"
 * import { NodeAmp } from "@amp-effect/node"
 * import { PostgresTokenStore } from "@amp-effect/postgres"
 * import { PgClient } from "@effect/sql-pg"
 * import { Effect, Layer, Redacted } from "effect"
 *
 * const program = Effect.flatMap(TokenService.TokenService, (tokens) => tokens.getToken)
 *
 * // Over the application's own pool:
 * const store = PostgresTokenStore.layer({
 *   account: { baseUrl: "https://amp.blockstream.com/api", username: "svc-issuer" }
 * }).pipe(Layer.provide(PgClient.layer({ url: Redacted.make("postgres://app@db/app") })))
 * const withStore = program.pipe(Effect.provide(NodeAmp.layerWithStore(store)))
 *
 * // Or a pool of its own, from AMP_POSTGRES_URL, AMP_POSTGRES_SCHEMA, AMP_POSTGRES_TABLE and
 * // the account from AMP_API_BASE_URL and AMP_USERNAME:
 * const fromEnv = program.pipe(Effect.provide(NodeAmp.layerWithStore(PostgresTokenStore.layerConfig())))
 * ```
 *
 * @since 0.1.0
 */
import { AmpConfig, EncryptionKey, TokenStore } from "@amp-effect/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { Array, Config, Context, Duration, Effect, ExecutionStrategy, Exit, Layer, Redacted, Scope } from "effect"
import * as internal from "./internal/postgresTokenStore.js"
import * as PostgresConfig from "./PostgresConfig.js"

/**
 * The AMP account whose token is stored. An `AmpConfig` value fits as it is.
 *
 * @since 0.1.0
 * @category models
 */
export interface Account {
  readonly baseUrl: string
  readonly username: string
}

/**
 * Options of `make` and `layer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions {
  /** Whose token this is. */
  readonly account: Account
  /** Default `public` (see `PostgresConfig.isSchemaName`); created if missing. */
  readonly schema?: string | undefined
  /** Default `amp_effect_tokens` (see `PostgresConfig.isTableName`). */
  readonly table?: string | undefined
  /**
   * How long a paused holder keeps the lock: its lock session ends after this long without an
   * extension (extended every third of it). Default 10 seconds.
   */
  readonly lockLease?: Duration.DurationInput | undefined
  /** How long `withLock` waits for another process's lock. Default 90 seconds. */
  readonly lockTimeout?: Duration.DurationInput | undefined
  /** How long one statement (or getting a connection) may take. Default 2 seconds. */
  readonly statementTimeout?: Duration.DurationInput | undefined
  /** When the lock cannot be had because Postgres is unreachable: renew without it, or fail. */
  readonly whenUnavailable?: "proceed" | "fail" | undefined
  /**
   * Seal the token at rest (AES-256-GCM, see `TokenEnvelope`): the first key seals, every key
   * opens (rotation). Default none: the token in clear.
   */
  readonly encryptionKey?: EncryptionKey.EncryptionKey | ReadonlyArray<EncryptionKey.EncryptionKey> | undefined
}

/**
 * Options of `layerUrl`: a pool of the store's own, opened on `url`.
 *
 * @since 0.1.0
 * @category models
 */
export interface UrlOptions extends StoreOptions {
  /** `postgres://user:password@host[:port]/db`. */
  readonly url: Redacted.Redacted<string>
  /** The pool's size. Default 3: one for a lock, the others for reads and writes. */
  readonly maxConnections?: number | undefined
}

/**
 * Default of `StoreOptions.lockLease`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultLockLease: Duration.Duration = Duration.seconds(10)

/**
 * Default of `StoreOptions.lockTimeout`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultLockTimeout: Duration.Duration = Duration.seconds(90)

/**
 * Default of `StoreOptions.statementTimeout`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultStatementTimeout: Duration.Duration = Duration.seconds(2)

/**
 * The key of an account's row (`account` column): 32 hex digits of SHA-256 over base URL and
 * username, the same hash as the Redis store's keys.
 *
 * @since 0.1.0
 * @category utils
 */
export const accountKey = (account: Account): string => internal.accountHash(account.baseUrl, account.username)

const positive = (name: string, input: Duration.DurationInput | undefined, fallback: Duration.Duration) => {
  const duration = Duration.decode(input ?? fallback)
  if (!Duration.greaterThan(duration, Duration.zero) || !Duration.isFinite(duration)) {
    throw new globalThis.Error(`PostgresTokenStore: ${name} must be a positive, finite duration`)
  }
  return duration
}

/** The store over `client`; invalid options are defects. */
const build = (
  client: Effect.Effect<SqlClient.SqlClient, string>,
  options: StoreOptions,
  server: string,
  secrets: ReadonlyArray<string>
) =>
  Effect.suspend(() => {
    const schema = options.schema ?? PostgresConfig.defaultSchema
    const table = options.table ?? PostgresConfig.defaultTable
    if (!PostgresConfig.isSchemaName(schema) || !PostgresConfig.isTableName(table)) {
      return Effect.dieMessage(
        `PostgresTokenStore: schema ${JSON.stringify(schema)} and table ${JSON.stringify(table)} must be ` +
          "lower-case letters, digits or _, not starting with a digit (schema 63, table 52 at most)"
      )
    }
    return internal.make({
      client,
      where: `${server} (table ${schema}.${table})`,
      secrets,
      names: { schema, table },
      account: accountKey(options.account),
      lockLease: positive("lockLease", options.lockLease, defaultLockLease),
      lockTimeout: Duration.decode(options.lockTimeout ?? defaultLockTimeout),
      statementTimeout: positive("statementTimeout", options.statementTimeout, defaultStatementTimeout),
      whenUnavailable: options.whenUnavailable ?? "proceed",
      encryptionKeys: options.encryptionKey === undefined ? [] : Array.ensure(options.encryptionKey)
    })
  })

/**
 * The store over the application's `SqlClient` (its pool, shared): a connection is reserved
 * only while this process holds the lock. The client must be a PostgreSQL one (`@effect/sql-pg`).
 * Invalid options (a table name with capitals, a zero timeout) are defects.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: StoreOptions
): Effect.Effect<TokenStore.TokenStore["Type"], never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => build(Effect.succeed(sql), options, "postgres", []))

/**
 * The store over the application's `SqlClient` (see `make`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: StoreOptions): Layer.Layer<TokenStore.TokenStore, never, SqlClient.SqlClient> =>
  Layer.scoped(TokenStore.TokenStore, make(options))

/** The URL's password in the forms a message may spell it. */
const passwordsOf = (url: string): ReadonlyArray<string> => {
  const raw = new URL(url).password
  let decoded = raw
  try {
    decoded = decodeURIComponent(raw)
  } catch {
    // kept as it is
  }
  return [...new Set([raw, decoded])].filter((secret) => secret !== "")
}

/**
 * A pool opened on first use (loading `@effect/sql-pg` only then) and kept for the scope; a
 * failed attempt (Postgres down) is closed, and the next operation tries again.
 */
const openOnDemand = (url: string, options: UrlOptions, secrets: ReadonlyArray<string>) =>
  Effect.flatMap(Effect.scope, (outer) =>
    internal.keepSuccess(Effect.gen(function*() {
      // The defect names the import's own failure (a missing package, or a bundle's missing file).
      const { layer } = yield* Effect.tryPromise({
        try: () => import("@effect/sql-pg/PgClient"),
        catch: (cause) =>
          new globalThis.Error(
            `PostgresTokenStore needs @effect/sql-pg (npm install @effect/sql-pg): ${
              cause instanceof globalThis.Error ? cause.message : String(cause)
            }`
          )
      }).pipe(Effect.orDie)
      const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
      const context = yield* Layer.buildWithScope(
        layer({
          url: Redacted.make(url),
          maxConnections: options.maxConnections ?? 3,
          connectTimeout: positive("statementTimeout", options.statementTimeout, defaultStatementTimeout),
          applicationName: "amp-effect"
        }),
        scope
      ).pipe(
        Effect.onError(() => Scope.close(scope, Exit.void)),
        Effect.mapError((error) => internal.reasonOf({ secrets }, error))
      )
      return Context.get(context, SqlClient.SqlClient)
    })))

/**
 * The store with a pool of its own, opened on `options.url` on first use and closed with the
 * scope. Postgres unreachable at start is no failure: the store behaves as for an outage until it
 * answers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeUrl = (options: UrlOptions): Effect.Effect<TokenStore.TokenStore["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const url = Redacted.value(options.url)
    if (!PostgresConfig.isPostgresUrl(url)) {
      return yield* Effect.dieMessage("PostgresTokenStore: url must be a postgres:// or postgresql:// URL")
    }
    const secrets = passwordsOf(url)
    const pool = yield* openOnDemand(url, options, secrets)
    return yield* build(pool.get, options, PostgresConfig.describeUrl(url), secrets)
  })

/**
 * A layer of `makeUrl`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerUrl = (options: UrlOptions): Layer.Layer<TokenStore.TokenStore> =>
  Layer.scoped(TokenStore.TokenStore, makeUrl(options))

/**
 * The options of `layerConfig`: the store's options that have no variable, and a `Config` for
 * each one that has (by default the variable `PostgresConfig` or `AmpConfig` reads).
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions extends Omit<UrlOptions, "account" | "url" | "schema" | "table" | "encryptionKey"> {
  /** Default `PostgresConfig.url` (`AMP_POSTGRES_URL`, required). */
  readonly url?: Config.Config<Redacted.Redacted<string>> | undefined
  /** Default `PostgresConfig.schema` (`AMP_POSTGRES_SCHEMA`, else `public`). */
  readonly schema?: Config.Config<string> | undefined
  /** Default `PostgresConfig.table` (`AMP_POSTGRES_TABLE`, else `amp_effect_tokens`). */
  readonly table?: Config.Config<string> | undefined
  /** Default `EncryptionKey.config` (`AMP_TOKEN_ENCRYPTION_KEY`, else none). */
  readonly encryptionKey?: Config.Config<ReadonlyArray<EncryptionKey.EncryptionKey>> | undefined
  /** The account's base URL. Default `AmpConfig.baseUrl` (`AMP_API_BASE_URL`). */
  readonly baseUrl?: Config.Config<string> | undefined
  /** The account's user name. Default `AMP_USERNAME` (required: the row is keyed by it). */
  readonly username?: Config.Config<string> | undefined
}

/**
 * The store from `Config`, with a pool of its own (`makeUrl`): by default `AMP_POSTGRES_URL`,
 * `AMP_POSTGRES_SCHEMA`, `AMP_POSTGRES_TABLE` (see `PostgresConfig`) and the account from
 * `AMP_API_BASE_URL` and `AMP_USERNAME`. A missing or invalid value fails the layer with an
 * `AmpConfigError` naming the variable.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (options?: ConfigOptions): Layer.Layer<TokenStore.TokenStore, AmpConfig.AmpConfigError> => {
  const { baseUrl, encryptionKey, schema, table, url, username, ...store } = options ?? {}
  return Layer.scoped(
    TokenStore.TokenStore,
    Effect.flatMap(
      AmpConfig.read(Config.all({
        url: url ?? PostgresConfig.url,
        schema: schema ?? PostgresConfig.schema,
        table: table ?? PostgresConfig.table,
        encryptionKey: encryptionKey ?? EncryptionKey.config,
        account: Config.all({ baseUrl: baseUrl ?? AmpConfig.baseUrl, username: username ?? AmpConfig.username })
      })),
      (config) => makeUrl({ ...store, ...config })
    )
  )
}
