/**
 * A `TokenStore` in Redis (or Valkey): one token and one renewal for a fleet of processes on any
 * number of machines. A save is a compare-and-set that never replaces a newer token, the lock is
 * core's `StoreLock` over `SET NX PX`, every command has a timeout, and the token can be sealed
 * with core's `EncryptionKey`s. The package README tells how each part works and fails.
 *
 * With `@amp-effect/node`, `AMP_TOKEN_STORE=redis` picks this store by itself; or explicitly:
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
 * // Or from AMP_REDIS_URL, AMP_REDIS_KEY_PREFIX, AMP_TOKEN_ENCRYPTION_KEY, AMP_API_BASE_URL, AMP_USERNAME:
 * const fromEnv = program.pipe(Effect.provide(NodeAmp.layerWithStore(RedisTokenStore.layerConfig())))
 * ```
 *
 * @since 0.1.0
 */
import { AmpConfig, EncryptionKey, TokenStore } from "@amp-effect/core"
import { Config, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import * as internal from "./internal/redisTokenStore.js"
import * as RedisConfig from "./RedisConfig.js"

/**
 * The AMP account whose token is stored (an `AmpConfig.Credentials` fits); its keys are named
 * from a hash of both.
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
  /** Redis unreachable for the lock: `"proceed"` (default) renews without it, `"fail"` fails. */
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
 * An account's token key and lock key (`amp-effect:{3f2a…}:token`, `…:lock`), for `redis-cli`.
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
      const rule = "must be 1 to 64 letters, digits or .:_-/"
      throw new globalThis.Error(`RedisTokenStore: keyPrefix ${JSON.stringify(prefix)} ${rule}`)
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
 * The store over an application's own connected client, which it never closes.
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
 * The store with a client of its own, closed with the scope. It waits up to `commandTimeout`
 * for the first connection; when Redis cannot be reached it still succeeds, with a warning.
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
 * A layer of `make`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<TokenStore.TokenStore> =>
  Layer.scoped(TokenStore.TokenStore, make(options))

/**
 * A layer of `makeFromClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (client: RedisClient, options: StoreOptions): Layer.Layer<TokenStore.TokenStore> =>
  Layer.scoped(TokenStore.TokenStore, makeFromClient(client, options))

/**
 * The options of `layerConfig`: those without a variable, and a `Config` for those with one.
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

/**
 * The store from `AMP_REDIS_URL`, `AMP_REDIS_KEY_PREFIX`, `AMP_TOKEN_ENCRYPTION_KEY`,
 * `AMP_API_BASE_URL` and `AMP_USERNAME` (unless `options` reads them elsewhere); a bad value
 * fails the layer with an `AmpConfigError` naming the variable.
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
    account: Config.all({ baseUrl: baseUrl ?? AmpConfig.baseUrl, username: username ?? AmpConfig.username })
  })
  return Layer.scoped(
    TokenStore.TokenStore,
    Effect.flatMap(AmpConfig.read(config), (read) => make({ ...store, ...read }))
  )
}
