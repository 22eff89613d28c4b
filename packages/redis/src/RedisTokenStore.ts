/**
 * A `TokenStore` in Redis (or Valkey): one token and one renewal for a whole fleet of processes
 * on any number of machines. `TokenService` renews under the store's lock and re-reads the store
 * first, so N replicas make one login, not N.
 *
 * - **Keys**: `<prefix>:{<hash>}:token` and `:lock`, the hash of base URL and username (never
 *   the username in clear) doubling as a Redis Cluster hash tag.
 * - **Save** is a compare-and-set in one Lua script: the token is written if nothing newer is
 *   stored, or if the stored token is the one it replaces (a fingerprint beside it). A refused
 *   save answers the stored token, which the service then serves. The key expires with the token.
 * - **The lock** is `SET NX PX` under core's `StoreLock`, its lease extended while the renewal
 *   runs, released by a compare-and-delete; a holder that lost its lease is fenced by the save.
 * - **Redis down or stalled**: every command has a timeout; `load` and `save` failures are
 *   `TokenStoreError`s the service survives; a renewal goes ahead without the lock unless
 *   `whenUnavailable: "fail"`.
 * - **Encryption at rest** (optional) with core's `TokenEnvelope` and `EncryptionKey`: a value
 *   that does not open counts as no token, with a warning and a metric.
 *
 * With `@amp-effect/node`, `AMP_TOKEN_STORE=redis` picks this store by itself
 * (`NodeAmp.layerConfig`); the example gives it explicitly.
 *
 * @example
 * ```ts
 * import { TokenService } from "@amp-effect/core"
 * import { NodeAmp } from "@amp-effect/node"
 * import { RedisTokenStore } from "@amp-effect/redis"
 * import { Effect, Redacted } from "effect"
 *
 * const program = Effect.flatMap(TokenService.TokenService, (tokens) => tokens.getToken)
 *
 * const store = RedisTokenStore.layer({
 *   url: Redacted.make("redis://cache:6379"),
 *   account: { baseUrl: "https://amp.blockstream.com/api", username: "svc-issuer" }
 * })
 * const withStore = program.pipe(Effect.provide(NodeAmp.layerWithStore(store)))
 *
 * // Or everything from AMP_REDIS_URL, AMP_REDIS_KEY_PREFIX, AMP_TOKEN_ENCRYPTION_KEY, and the
 * // account from AMP_API_BASE_URL and AMP_USERNAME:
 * const fromEnv = program.pipe(Effect.provide(NodeAmp.layerWithStore(RedisTokenStore.layerConfig())))
 * ```
 *
 * @since 0.1.0
 */
import { AmpConfig, EncryptionKey, TokenStore } from "@amp-effect/core"
import { Config, Duration, Effect, Either, Layer, Option, Redacted, type Scope } from "effect"
import * as internal from "./internal/redisTokenStore.js"
import * as RedisConfig from "./RedisConfig.js"

/**
 * The AMP account whose token is stored: its keys are named from a hash of both. An
 * `AmpConfig` or `AmpConfig.Credentials` value fits as it is.
 *
 * @since 0.1.0
 * @category models
 */
export interface Account {
  readonly baseUrl: string
  readonly username: string
}

/**
 * What the store needs of a node-redis client: `RedisClientType` of `redis` 5 and 6 fits, as
 * do clients from `client.duplicate()` or `client.withTypeMapping(...)`.
 *
 * @since 0.1.0
 * @category models
 */
export type RedisClient = internal.RedisClient

/**
 * Options shared by every constructor.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions {
  readonly account: Account
  /** First part of every key, `amp-effect` by default (see `RedisConfig.isKeyPrefix`). */
  readonly keyPrefix?: string | undefined
  /** How long a killed holder blocks the others; extended every third of it. Default 10 s. */
  readonly lockLease?: Duration.DurationInput | undefined
  /** How long `withLock` waits for another process's lock; over one renewal. Default 90 s. */
  readonly lockTimeout?: Duration.DurationInput | undefined
  /** How long one Redis command may take before it counts as failed. Default 2 s. */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /** Seals the stored token; with several keys the first seals and all open. Default: none. */
  readonly encryptionKey?: EncryptionKey.EncryptionKey | ReadonlyArray<EncryptionKey.EncryptionKey> | undefined
  /**
   * When Redis cannot be reached for the lock: `"proceed"` (the default) renews without it, so
   * an outage costs one login per replica and never a token; `"fail"` fails the renewal with a
   * `TokenStoreError` (operation `"lock"`).
   */
  readonly whenUnavailable?: "proceed" | "fail" | undefined
}

/**
 * Options of `make` and `layer`: the store's own client, opened on `url`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends StoreOptions {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. */
  readonly url: Redacted.Redacted<string> | string
}

/**
 * The names of an account's token key and lock key, for `redis-cli` and tools:
 * `amp-effect:{3f2a…}:token` and `amp-effect:{3f2a…}:lock`.
 *
 * @since 0.1.0
 * @category utils
 */
export const keys = (
  account: Account,
  keyPrefix: string = RedisConfig.defaultKeyPrefix
): { readonly token: string; readonly lock: string } =>
  internal.keysFor(keyPrefix, internal.accountHash(account.baseUrl, account.username))

/** The settings of `options`; invalid ones (a prefix with braces, a zero timeout) are defects. */
const settingsOf = (options: StoreOptions, where: string, secrets: ReadonlyArray<string>) =>
  Effect.suspend(() => {
    const duration = (name: string, input: Duration.DurationInput) => {
      const value = Duration.decode(input)
      if (Duration.greaterThan(value, Duration.zero) && Duration.isFinite(value)) return value
      throw new globalThis.Error(`RedisTokenStore: ${name} must be a positive, finite duration`)
    }
    const prefix = options.keyPrefix ?? RedisConfig.defaultKeyPrefix
    if (!RedisConfig.isKeyPrefix(prefix)) {
      throw new globalThis.Error(
        `RedisTokenStore: keyPrefix ${JSON.stringify(prefix)} must be 1 to 64 of [A-Za-z0-9.:_-/]`
      )
    }
    const account = internal.accountHash(options.account.baseUrl, options.account.username)
    const key = options.encryptionKey ?? []
    return Effect.succeed<internal.Settings>({
      where,
      secrets,
      account,
      keys: internal.keysFor(prefix, account),
      lockLease: duration("lockLease", options.lockLease ?? "10 seconds"),
      lockTimeout: Duration.decode(options.lockTimeout ?? "90 seconds"),
      commandTimeout: duration("commandTimeout", options.commandTimeout ?? "2 seconds"),
      encryptionKeys: Array.isArray(key) ? key : [key as EncryptionKey.EncryptionKey],
      whenUnavailable: options.whenUnavailable ?? "proceed"
    })
  })

/**
 * The store over an application's own connected client, for the lifetime of the scope. It adds
 * two event listeners (removed when the scope closes) and never closes the client.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeFromClient = (
  client: RedisClient,
  options: StoreOptions
): Effect.Effect<TokenStore.TokenStore["Type"], never, Scope.Scope> =>
  settingsOf(options, "redis (an application's client)", []).pipe(
    Effect.flatMap((settings) => internal.make(client, settings)),
    Effect.map(({ store }) => store)
  )

/**
 * The store with a client of its own, opened on `options.url` and closed with the scope. It
 * waits up to `commandTimeout` for the first connection; when Redis cannot be reached it still
 * succeeds, with a warning, and behaves as in an outage while the client reconnects.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<TokenStore.TokenStore["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
    if (!RedisConfig.isRedisUrl(url)) {
      return yield* Effect.dieMessage("RedisTokenStore: url must be a redis:// or rediss:// URL")
    }
    const settings = yield* settingsOf(options, RedisConfig.describeUrl(url), internal.secretsOf(url))
    const client = yield* internal.openClient(url, settings.commandTimeout)
    const { link, store } = yield* internal.make(client, settings)
    yield* internal.connectFirst(link)
    return store
  })

/**
 * A layer of `make`: the store and its own client, closed when the layer is released.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<TokenStore.TokenStore> =>
  Layer.scoped(TokenStore.TokenStore, make(options))

/**
 * A layer of `makeFromClient`: the store over an application's client, which stays open.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (client: RedisClient, options: StoreOptions): Layer.Layer<TokenStore.TokenStore> =>
  Layer.scoped(TokenStore.TokenStore, makeFromClient(client, options))

/**
 * The options of `layerConfig`: those without a variable, and a `Config` for each one with a
 * variable (by default the one `RedisConfig`, `EncryptionKey` or `AmpConfig` reads).
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions extends Omit<StoreOptions, "account" | "keyPrefix" | "encryptionKey"> {
  readonly url?: Config.Config<Redacted.Redacted<string>> | undefined
  readonly keyPrefix?: Config.Config<string> | undefined
  readonly encryptionKey?: Config.Config<ReadonlyArray<EncryptionKey.EncryptionKey>> | undefined
  readonly baseUrl?: Config.Config<string> | undefined
  readonly username?: Config.Config<string> | undefined
}

/** `AMP_USERNAME`, with what the store needs it for when it is missing. */
const accountUsername: Config.Config<string> = Config.option(Config.nonEmptyString()).pipe(
  Config.mapOrFail(Option.match({
    onNone: () => Either.left(AmpConfig.notSet("the Redis token store names its keys after the account")),
    onSome: Either.right
  })),
  Config.nested("AMP_USERNAME")
)

/**
 * The store from `Config`: `AMP_REDIS_URL`, `AMP_REDIS_KEY_PREFIX`, `AMP_TOKEN_ENCRYPTION_KEY`,
 * and the account from `AMP_API_BASE_URL` and `AMP_USERNAME`, unless `options` reads them
 * elsewhere. A missing or invalid value fails the layer with an `AmpConfigError` naming it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (options?: ConfigOptions): Layer.Layer<TokenStore.TokenStore, AmpConfig.AmpConfigError> => {
  const { baseUrl, encryptionKey, keyPrefix, url, username, ...store } = options ?? {}
  const config = Config.all({
    url: url ?? RedisConfig.url,
    keyPrefix: keyPrefix ?? RedisConfig.keyPrefix,
    encryptionKey: encryptionKey ?? EncryptionKey.config,
    account: Config.all({ baseUrl: baseUrl ?? AmpConfig.baseUrl, username: username ?? accountUsername })
  })
  return Layer.scoped(
    TokenStore.TokenStore,
    Effect.flatMap(AmpConfig.read(config), (read) => make({ ...store, ...read }))
  )
}
